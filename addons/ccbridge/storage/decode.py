"""Undo a body's content-encoding for storage, streamed and bounded: a small bomb never becomes a big body.

Every coding mitmproxy knows (gzip, deflate, br, zstd, and a list of them) is decoded piece by piece, and
decoding stops once `limit` decoded bytes are kept, so memory stays near `limit` whatever the input expands
to. A stream that is cut short or corrupt keeps what decoded before the fault; an unknown coding keeps the
bytes as sent. Pure: no I/O, nothing from the proxy.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import brotli

try:
    from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
except ImportError:
    from backports import zstd  # the same module, before Python 3.14

PIECE = 64 * 1024  # decoded bytes produced per step
_NOTHING = frozenset({"", "identity", "none"})


class Decoded(NamedTuple):
    data: bytes  # at most `limit` bytes
    truncated: bool  # more decoded bytes existed than `limit` allowed to keep
    problem: str | None  # why decoding stopped early or did not happen


class BrokenStream(ValueError):
    """The encoded stream ends early or carries bytes it cannot hold."""


def codings(content_encoding: str | None) -> list[str]:
    """The codings of a Content-Encoding header in the order they were applied, without identity."""
    names = (c.strip().lower() for c in (content_encoding or "").split(","))
    return [name for name in names if name not in _NOTHING]


def decode_bounded(content_encoding: str | None, data: bytes | Iterable[bytes], limit: int) -> Decoded:
    """At most `limit` bytes of `data` (bytes or chunks) with its content-encoding removed."""
    chunks: Iterable[bytes] = [bytes(data)] if isinstance(data, bytes | bytearray | memoryview) else data
    applied = codings(content_encoding)
    unknown = [name for name in applied if name not in _STAGES]
    if unknown:
        kept, truncated = _take(iter(chunks), limit)
        return Decoded(kept, truncated, f"unknown content-encoding {unknown[0]!r}: kept as sent")
    stream: Iterator[bytes] = iter(chunks)
    for name in reversed(applied):  # the last coding applied is the first to undo
        stream = _STAGES[name](stream)
    try:
        kept, truncated = _take(stream, limit)
    except _Partial as partial:
        return Decoded(partial.kept, False, f"{content_encoding} body decoded partially: {partial.reason}")
    return Decoded(kept, truncated, None)


class _Partial(Exception):
    def __init__(self, kept: bytes, reason: str) -> None:
        super().__init__(reason)
        self.kept, self.reason = kept, reason


def _take(pieces: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    out = bytearray()
    try:
        for piece in pieces:
            room = limit - len(out)
            if len(piece) > room:
                out += piece[:room]
                return bytes(out), True
            out += piece
    except (zlib.error, brotli.error, zstd.ZstdError, BrokenStream, EOFError) as exc:
        raise _Partial(bytes(out), str(exc) or type(exc).__name__) from exc
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # stops the decoders at once instead of when they are collected
    return bytes(out), False


def _slices(chunks: Iterator[bytes]) -> Iterator[bytes]:
    # each decoder step gets a bounded input too, so one step can only expand so far
    for chunk in chunks:
        for start in range(0, len(chunk), PIECE):
            yield bytes(chunk[start:start + PIECE])


def _zlib(chunks: Iterator[bytes], first: Callable[[bytes], int], name: str, members: bool) -> Iterator[bytes]:
    """gzip or deflate: zlib with an output bound per step; gzip may hold several members."""
    decoder: zlib._Decompress | None = None
    for data in _slices(chunks):
        while data:
            if decoder is None:
                decoder = zlib.decompressobj(first(data))
            out = decoder.decompress(data, PIECE)
            if out:
                yield out
            data = decoder.unconsumed_tail
            while not data and len(out) == PIECE and not decoder.eof:  # output may still be pending
                out = decoder.decompress(b"", PIECE)
                if out:
                    yield out
            if decoder.eof:
                data = decoder.unused_data
                if data and not members:
                    raise BrokenStream(f"{len(data)} bytes after the end of the {name} stream")
                decoder = None
    if decoder is not None:
        raise BrokenStream(f"the {name} stream ends early")


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    return _zlib(chunks, lambda _: 32 + zlib.MAX_WBITS, "gzip", members=True)  # 32: gzip or zlib header


def _deflate_wbits(head: bytes) -> int:
    # HTTP's deflate is a zlib stream, but some servers send raw deflate (no header, no checksum)
    zlib_header = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS


def _deflate(chunks: Iterator[bytes]) -> Iterator[bytes]:
    return _zlib(chunks, _deflate_wbits, "deflate", members=False)


def _brotli(chunks: Iterator[bytes]) -> Iterator[bytes]:
    decoder, seen = brotli.Decompressor(), False
    for data in _slices(chunks):
        seen = True
        if decoder.is_finished():
            raise BrokenStream("bytes after the end of the br stream")
        out = decoder.process(data, output_buffer_limit=PIECE)
        if out:
            yield out
        while not decoder.can_accept_more_data():
            out = decoder.process(b"", output_buffer_limit=PIECE)
            if out:
                yield out
    if seen and not decoder.is_finished():
        raise BrokenStream("the br stream ends early")


def _zstd(chunks: Iterator[bytes]) -> Iterator[bytes]:
    decoder, seen = zstd.ZstdDecompressor(), False
    for data in _slices(chunks):
        seen = True
        while data or not (decoder.needs_input or decoder.eof):
            if decoder.eof:  # another frame follows
                decoder = zstd.ZstdDecompressor()
            out = decoder.decompress(data, PIECE)
            data = decoder.unused_data if decoder.eof else b""
            if out:
                yield out
    if seen and not decoder.eof:
        raise BrokenStream("the zstd stream ends early")


_STAGES: dict[str, Callable[[Iterator[bytes]], Iterator[bytes]]] = {
    "gzip": _gzip, "x-gzip": _gzip, "deflate": _deflate, "deflateraw": _deflate, "br": _brotli, "zstd": _zstd,
}
