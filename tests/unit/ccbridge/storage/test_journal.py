"""The journal on plain bytes: what is appended is read back in order, a torn tail is skipped only once its
segment is sealed, segments rotate, and only committed segments are deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccbridge.storage.journal import (
    HEADER,
    START,
    Appender,
    JournalBusy,
    Position,
    Reader,
    is_appending,
    journal_id,
    segments,
)


def payloads(reader: Reader, after: Position = START) -> list[bytes]:
    return [r.payload for r in reader.read(after, max_records=10_000).records]


def test_appended_records_read_back_in_order_across_restarts(tmp_path: Path):
    first = Appender(tmp_path)
    for i in range(5):
        first.append(b"one-%d" % i)
    first.close()
    second = Appender(tmp_path)
    second.append(b"two-0")
    assert payloads(Reader(tmp_path)) == [b"one-0", b"one-1", b"one-2", b"one-3", b"one-4", b"two-0"]
    second.close()


def test_reading_from_a_position_continues_after_it(tmp_path: Path):
    appender = Appender(tmp_path)
    for i in range(10):
        appender.append(b"r%d" % i)
    reader = Reader(tmp_path)
    batch = reader.read(START, max_records=4)
    assert [r.payload for r in batch.records] == [b"r0", b"r1", b"r2", b"r3"]
    assert payloads(reader, batch.end) == [b"r4", b"r5", b"r6", b"r7", b"r8", b"r9"]
    appender.close()


def test_a_torn_tail_waits_while_the_segment_is_written_and_is_skipped_once_sealed(tmp_path: Path):
    appender = Appender(tmp_path)
    appender.append(b"whole")
    path = segments(tmp_path)[-1][1]
    with path.open("ab") as file:  # what a SIGKILL in the middle of a write leaves
        file.write(HEADER.pack(b"CCJ1", 1000, 0, 0.0) + b"partial")
    reader = Reader(tmp_path)
    batch = reader.read(START)
    assert [r.payload for r in batch.records] == [b"whole"] and batch.torn == []
    appender.close()  # the next start seals it
    again = Appender(tmp_path)
    again.append(b"after")
    batch = reader.read(START)
    assert [r.payload for r in batch.records] == [b"whole", b"after"]
    assert batch.torn == [(segments(tmp_path)[0][0], HEADER.size + len(b"partial"))]
    assert reader.backlog(START).records == 2
    again.close()


def test_a_damaged_record_in_a_sealed_segment_is_reported_not_hidden(tmp_path: Path):
    appender = Appender(tmp_path)
    appender.append(b"good")
    appender.append(b"flipped")
    appender.append(b"also good")
    appender.close()
    path = segments(tmp_path)[0][1]
    data = bytearray(path.read_bytes())
    data[data.index(b"flipped")] ^= 0xFF
    path.write_bytes(bytes(data))
    records = Reader(tmp_path).read(START).records
    assert [(r.damaged, r.payload) for r in records] == [
        (False, b"good"), (True, b"\x99lipped"), (False, b"also good")]


def test_segments_rotate_at_their_size_and_only_committed_ones_are_deleted(tmp_path: Path):
    appender = Appender(tmp_path, segment_bytes=100)
    ends = [appender.append(bytes(60)) for _ in range(6)]
    assert len(segments(tmp_path)) == 3  # two records per segment
    reader = Reader(tmp_path)
    first = segments(tmp_path)[0][0]
    assert reader.release(ends[1]) == []  # the position is still inside the first segment
    assert reader.release(ends[2]) == [first]  # the third record ends in the second segment
    assert len(payloads(reader)) == 4
    assert reader.release(Position(10**9, 0)) != []
    assert len(segments(tmp_path)) == 1  # the newest is never deleted: it is still being written
    assert len(payloads(reader)) == 2
    appender.close()


def test_the_end_of_a_sealed_segment_moves_the_position_to_the_next(tmp_path: Path):
    appender = Appender(tmp_path)
    appender.append(b"x")
    appender.close()
    reader = Reader(tmp_path)
    batch = reader.read(START)
    assert batch.end == Position(segments(tmp_path)[-1][0], 0)  # past the sealed one, into the empty newest
    assert reader.read(batch.end).records == []
    reader.release(batch.end)
    assert [p.stat().st_size for _, p in segments(tmp_path)] == [0]


def test_backlog_counts_what_lies_after_a_position(tmp_path: Path):
    appender = Appender(tmp_path)
    first_end = appender.append(b"a" * 10)
    appender.append(b"b" * 20)
    backlog = Reader(tmp_path).backlog(first_end)
    assert backlog.records == 1 and backlog.bytes == HEADER.size + 20 and backlog.oldest is not None
    assert Reader(tmp_path).backlog(appender.position).records == 0
    appender.close()


def test_one_proxy_per_journal(tmp_path: Path):
    appender = Appender(tmp_path)
    assert is_appending(tmp_path)
    with pytest.raises(JournalBusy):
        Appender(tmp_path)
    appender.close()
    assert not is_appending(tmp_path)
    Appender(tmp_path).close()


def test_a_wiped_journal_gets_a_new_id(tmp_path: Path):
    before = journal_id(tmp_path / "j")
    assert journal_id(tmp_path / "j") == before
    (tmp_path / "j" / "journal.id").unlink()
    assert journal_id(tmp_path / "j") != before

