"""Bounded, streamed decoding of content-encoded bodies: bombs stay small, broken streams keep what decoded."""

import gzip
import tracemalloc
import zlib

import brotli
import pytest
from mitmproxy.net import encoding as mitm_encoding

from ccbridge.storage.decode import codings, decode_bounded

TEXT = b'{"type":"message","content":[{"type":"text","text":"' + b"hello world " * 5000 + b'"}]}'
ENCODINGS = ["gzip", "deflate", "br", "zstd"]


def encode(data: bytes, coding: str) -> bytes:
    return mitm_encoding.encode(data, coding)


@pytest.mark.parametrize("coding", ENCODINGS)
def test_every_coding_decodes_whole_or_in_odd_chunks(coding):
    encoded = encode(TEXT, coding)
    assert decode_bounded(coding, encoded, 10**9) == (TEXT, False, None)
    chunks = [encoded[i:i + 7] for i in range(0, len(encoded), 7)]
    assert decode_bounded(coding.upper(), chunks, 10**9) == (TEXT, False, None)


def test_raw_deflate_and_stacked_codings():
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_bounded("deflate", raw.compress(TEXT) + raw.flush(), 10**9).data == TEXT
    stacked = brotli.compress(gzip.compress(TEXT))  # Content-Encoding: gzip, br
    assert decode_bounded("gzip, br", stacked, 10**9) == (TEXT, False, None)
    assert codings(" Identity , gzip,br ") == ["gzip", "br"]


def test_concatenated_gzip_members_all_decode():
    assert decode_bounded("gzip", gzip.compress(b"one ") + gzip.compress(b"two"), 100).data == b"one two"


@pytest.mark.parametrize("coding", ENCODINGS)
def test_limit_keeps_the_start_and_marks_truncated(coding):
    decoded = decode_bounded(coding, encode(TEXT, coding), 1000)
    assert decoded == (TEXT[:1000], True, None)
    assert decode_bounded(coding, encode(TEXT, coding), len(TEXT)) == (TEXT, False, None)


def test_identity_and_no_encoding_are_bounded_too():
    assert decode_bounded(None, b"abcdef", 4) == (b"abcd", True, None)
    assert decode_bounded("identity", [b"ab", b"cd"], 10) == (b"abcd", False, None)


def test_a_50_mb_gzip_bomb_stays_small_in_memory():
    compressor = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(zeros) for _ in range(50)) + compressor.flush()
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        decoded = decode_bounded("gzip", [bomb[i:i + 4096] for i in range(0, len(bomb), 4096)], 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.truncated and decoded.problem is None and decoded.data == bytes(1024 * 1024)
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while decoding a 50 MB bomb to a 1 MB limit"


@pytest.mark.parametrize("coding", ENCODINGS)
def test_a_stream_cut_short_keeps_what_decoded(coding):
    encoded = encode(TEXT, coding)
    decoded = decode_bounded(coding, encoded[: len(encoded) * 2 // 3], 10**9)
    assert decoded.problem and coding in decoded.problem and not decoded.truncated
    assert TEXT.startswith(decoded.data)


@pytest.mark.parametrize("coding", ENCODINGS)
def test_corrupt_stream_reports_a_problem(coding):
    # at the start: zstd frames carry no checksum by default, so a flipped byte mid-stream can go unnoticed
    encoded = b"\xff" * 8 + encode(TEXT, coding)[8:]
    decoded = decode_bounded(coding, encoded, 10**9)
    assert decoded.problem is not None and coding in decoded.problem


def test_not_encoded_at_all_is_a_problem_not_a_crash():
    decoded = decode_bounded("gzip", b"plain text, not gzip", 100)
    assert decoded.data == b"" and "gzip" in decoded.problem


def test_unknown_encoding_keeps_the_bytes_as_sent():
    assert decode_bounded("compress", b"\x1f\x9d...", 100) == (b"\x1f\x9d...", False,
                                                              "unknown content-encoding 'compress': kept as sent")


@pytest.mark.parametrize("coding", ENCODINGS)
def test_empty_body_is_empty(coding):
    assert decode_bounded(coding, b"", 100) == (b"", False, None)
