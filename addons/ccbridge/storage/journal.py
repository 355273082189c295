"""The journal: captured exchanges on local disk, in append-only segment files, until the database has them.

Format. A journal is a directory of segment files (`000000000001.seg`, `000000000002.seg`, ...) written in
that order. A segment is a run of records; a record is a 20-byte header (magic `CCJ1`, payload length,
CRC-32 of the rest, the append time) followed by the payload. Why this rather than an SQLite spool or a
library: an append is one `write()` to a file opened with O_APPEND (no lock, no transaction, no fsync: a
few microseconds for a Claude Code request), which the proxy's event loop can afford for every exchange,
and which needs no thread or in-memory queue that a crash would empty; reading needs nothing but the file;
a record cut short by a crash shows by its length or CRC; and deleting what the database has committed is
unlinking whole files, as with PostgreSQL's WAL or Kafka's log segments.

Durability: a `write()` that returned is in the kernel's page cache, so a proxy killed with SIGKILL loses
only the exchanges still in flight. An OS crash or power loss may lose the last seconds: an fsync per
record would cost milliseconds in the hook.

Sealing: the appender writes only to the newest segment and starts a new one at a size limit, at every
start and at a clean stop. A segment with a newer one beside it is sealed (it never grows again), so an
incomplete or damaged record at its end is a torn write to skip rather than one still under way. The
newest segment is never deleted, which keeps segment numbers increasing without any other state.

Positions are (segment number, byte offset). The writer commits its position with the rows (see
`storage/drain.py`); `Reader.release` deletes the segments that lie entirely before it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import time
import uuid
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

MAGIC = b"CCJ1"
HEADER = struct.Struct("<4sIId")  # magic, payload length, crc32 of (append time + payload), append time
SEGMENT_BYTES = 64 * 1024 * 1024
SUFFIX = ".seg"
LOCK_NAME = "journal.lock"  # held by the one proxy appending to this journal
ID_NAME = "journal.id"  # names this journal in the database's checkpoint table


class JournalBusy(RuntimeError):
    """Another process is appending to this journal."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


START = Position(0, 0)


@dataclass(frozen=True)
class Record:
    start: Position
    end: Position
    appended_at: float
    payload: bytes
    damaged: bool = False  # its CRC does not match: the payload is what was found


@dataclass
class Batch:
    """What `Reader.read` found after a position."""

    records: list[Record] = field(default_factory=list)
    end: Position = START  # where the next read starts
    torn: list[tuple[int, int]] = field(default_factory=list)  # (segment, bytes skipped) of unreadable tails


@dataclass(frozen=True)
class Backlog:
    records: int
    bytes: int
    oldest: float | None  # append time of the first pending record


def record_header(payload: bytes, appended_at: float | None = None) -> bytes:
    """The header that goes before `payload` in its record."""
    stamp = time.time() if appended_at is None else appended_at
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<d", stamp)))
    return HEADER.pack(MAGIC, len(payload), crc, stamp)


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:012d}{SUFFIX}"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The segment files, oldest first."""
    found = []
    for path in directory.glob(f"*{SUFFIX}"):
        if path.stem.isdigit():
            found.append((int(path.stem), path))
    return sorted(found)


def journal_id(directory: Path) -> str:
    """This journal's name, created with it: a wiped journal is a new one, never mistaken for the old."""
    path = directory / ID_NAME
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(f".{os.getpid()}")
        temporary.write_text(uuid.uuid4().hex)
        os.replace(temporary, path)
        return path.read_text().strip()


def is_appending(directory: Path) -> bool:
    """Whether a proxy holds this journal open."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class Appender:
    """The proxy's side: appends records to the newest segment. One per journal, enforced by a lock."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.id = journal_id(directory)
        self._lock = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise JournalBusy(f"another ccbridge proxy is using the journal {directory}") from None
        self._fd = -1
        self.segment = 0
        self.size = 0
        self._open_next()

    @property
    def position(self) -> Position:
        """Right after the last record appended."""
        return Position(self.segment, self.size)

    def append(self, payload: bytes) -> Position:
        """Write one record; returns where it ends. An OSError (disk full) is raised after sealing the segment."""
        if self.size >= self.segment_bytes:
            self.rotate()
        try:
            # header and payload written one after the other: joining them would copy a 20 MB body once more
            for part in (record_header(payload), payload):
                view = memoryview(part)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                    self.size += written
        except OSError:
            # whatever part reached the file is now a torn tail, which only a sealed segment may have
            with contextlib.suppress(OSError):
                self.rotate()
            raise
        return self.position

    def rotate(self) -> None:
        """Seal the current segment by starting the next one (nothing to do while it is empty)."""
        if self.size == 0 and self._fd >= 0:
            return
        self._open_next()

    def close(self) -> None:
        """Seal the last segment and let another proxy use the journal."""
        if self._fd < 0:
            return
        self.rotate()
        os.close(self._fd)
        self._fd = -1
        os.close(self._lock)

    def _open_next(self) -> None:
        numbers = [n for n, _ in segments(self.directory)]
        number = max([self.segment, *numbers]) + 1
        fd = os.open(segment_path(self.directory, number), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL,
                     0o600)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self.segment, self.size = fd, number, 0


class Reader:
    """The writer's side: records after a position, what is pending, and deletion of what is committed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self, after: Position, max_records: int = 200, max_bytes: int = 32 * 1024 * 1024) -> Batch:
        """Records after `after`: at most `max_records`, and past `max_bytes` only to include a first one."""
        batch = Batch(end=after)
        size = 0
        for record in self._scan(after, batch, with_payload=True):
            batch.records.append(record)
            size += len(record.payload)
            if len(batch.records) >= max_records or size >= max_bytes:
                break
        return batch

    def backlog(self, after: Position, until: Position | None = None) -> Backlog:
        """How many records, and how many bytes, lie after `after` (and before `until`)."""
        batch = Batch(end=after)
        count = total = 0
        oldest = None
        for record in self._scan(after, batch, with_payload=False):
            if until is not None and record.start >= until:
                break
            count += 1
            total += record.end.offset - record.start.offset
            oldest = record.appended_at if oldest is None else oldest
        return Backlog(count, total, oldest)

    def release(self, committed: Position) -> list[int]:
        """Delete every segment that ends before `committed` (never the newest); returns their numbers."""
        found = segments(self.directory)
        deleted = []
        for number, path in found[:-1]:
            if number < committed.segment:
                path.unlink(missing_ok=True)
                deleted.append(number)
        return deleted

    def size(self) -> int:
        """Bytes in all segments."""
        return sum(path.stat().st_size for _, path in segments(self.directory) if path.exists())

    def _scan(self, after: Position, batch: Batch, with_payload: bool) -> Iterator[Record]:
        """Records from `after` on, moving `batch.end` past each one and over sealed segments' ends."""
        for number, path in segments(self.directory):
            if number < after.segment:
                continue
            # sealed is decided before reading, so that a record written since cannot be taken for a torn one
            sealed = any(n > number for n, _ in segments(self.directory))
            offset = after.offset if number == after.segment else 0
            try:
                with path.open("rb") as file:
                    clean = yield from self._segment(file, number, offset, sealed, batch, with_payload)
            except FileNotFoundError:
                clean = True
            if not sealed:
                return
            if not clean:
                continue
            batch.end = Position(number + 1, 0)

    def _segment(self, file: BinaryIO, number: int, offset: int, sealed: bool, batch: Batch,
                 with_payload: bool) -> Generator[Record, None, bool]:
        """The records of one segment; returns False when a sealed one has an unreadable tail (recorded)."""
        file.seek(0, os.SEEK_END)
        length = file.tell()
        file.seek(offset)
        while offset < length:
            head = file.read(HEADER.size)
            magic, size, crc, stamp = HEADER.unpack(head) if len(head) == HEADER.size else (b"", 0, 0, 0.0)
            end = offset + HEADER.size + size
            if magic != MAGIC or end > length:
                if sealed:
                    batch.torn.append((number, length - offset))
                    batch.end = Position(number + 1, 0)
                    return False
                return True  # still being written
            if with_payload:
                payload = file.read(size)
                damaged = zlib.crc32(payload, zlib.crc32(struct.pack("<d", stamp))) != crc
                if damaged and not sealed:
                    return True  # a write under way can look like this; decided once the segment is sealed
            else:
                file.seek(size, os.SEEK_CUR)
                payload, damaged = b"", False
            record = Record(Position(number, offset), Position(number, end), stamp, payload, damaged)
            batch.end = record.end
            yield record
            offset = end
        return True
