"""The intent log: an order call's journal rows, appended to a file of this process's own
before the call goes upstream; SQLite gets them while the call is in flight.

A commit to the SQLite journal took about 0.14 ms of a paced order's path (locks, the WAL,
its index); one append to a file takes a few microseconds, and survives the process being
killed just as well (both are writes to the OS; neither syncs). Each process appends to a
file of its own, locked while it lives (`<journal>-intents-<pid>-<random>`), and empties it
once every row in it is in SQLite. A process that dies leaves its file unlocked: the next
proxy to open the journal puts the rows SQLite lacks in as `pending` and removes the file.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

try:
    import fcntl
except ImportError:  # Windows: no flock, so no intent log; SQLite is written before sending
    fcntl = None  # type: ignore[assignment]

SUPPORTED: Final = fcntl is not None
_INFIX: Final = "-intents-"
# Bytes appended before the file is emptied (once nothing in it is still waiting for SQLite).
EMPTY_AFTER: Final = 1 << 20
# One call's journal rows, as Journal writes them.
Rows = list[tuple[Any, ...]]
# Values in a row as journal._row makes it, and how many.
ROW_WIDTH: Final = 20
_SCALARS: Final = (str, int, float, type(None))


class Segment:
    """One intent file of this process: locked while it lives, and its waiting intents."""

    def __init__(self, journal: Path) -> None:
        assert fcntl is not None, "check intents.SUPPORTED first"
        name = f"{journal.name}{_INFIX}{os.getpid()}-{os.urandom(4).hex()}"
        self.path = journal.with_name(name)
        # Made under a name no reader looks for, locked, then renamed: a file is never seen
        # unlocked while its writer lives.
        making = journal.with_name(f".{name}")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self.fd = os.open(making, flags, 0o600)
        # Held until this process ends: a file whose lock can be taken has no live writer.
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(making, self.path)
        self.written = 0
        self.waiting = 0  # intents appended here whose rows SQLite does not have yet

    def write(self, data: bytes) -> None:
        """Append `data`; OSError if it cannot be written."""
        # No link left to this file: deleted, or another renamed over it.
        if os.fstat(self.fd).st_nlink == 0:
            raise OSError(f"the intent file {self.path} was deleted or replaced")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.written += len(data)
        self.waiting += 1

    def empty(self) -> None:
        """Start the file again (every row in it is in SQLite)."""
        try:
            os.ftruncate(self.fd, 0)
            self.written = 0
        except OSError:
            pass  # emptied at the next chance, or read back at the next start

    def close(self) -> None:
        """Close it; remove it when SQLite has every row, else leave it to be read back."""
        if self.waiting == 0:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


class IntentLog:
    """This process's intent files: append rows, count them until SQLite has them.

    Past EMPTY_AFTER bytes, a file is emptied when none of its intents waits; when some
    do (calls overlap under steady load), the next intents go to a new file, and the full
    one is removed once SQLite has all of its rows. So the files stay small."""

    def __init__(self, journal: Path) -> None:
        self._journal = journal
        self._current = Segment(journal)
        self._full: list[Segment] = []

    @property
    def waiting(self) -> int:
        """Intents appended whose rows SQLite does not have yet."""
        return self._current.waiting + sum(segment.waiting for segment in self._full)

    def append(self, rows: Sequence[tuple[Any, ...]]) -> Segment:
        """Append one call's rows (OSError if they cannot be written: the call is not sent);
        the file they are in, to hand to `recorded`."""
        segment = self._current
        if segment.written >= EMPTY_AFTER:
            if segment.waiting == 0:
                segment.empty()
            else:
                self._full.append(segment)
                segment = self._current = Segment(self._journal)
        # Each record starts a line of its own: a record torn by a full disk spoils only itself.
        segment.write(b"\n" + _line(rows))
        return segment

    def recorded(self, segment: Segment) -> None:
        """One intent's rows (in `segment`) are in SQLite; a full file goes once all are."""
        segment.waiting -= 1
        if segment.waiting > 0:
            return
        if segment is self._current:
            if segment.written >= EMPTY_AFTER:
                segment.empty()
        elif segment in self._full:
            self._full.remove(segment)
            segment.close()

    def close(self) -> None:
        """Close every file; those with intents SQLite lacks stay, to be read back."""
        for segment in (*self._full, self._current):
            segment.close()
        self._full.clear()


def _line(rows: Sequence[tuple[Any, ...]]) -> bytes:
    """One call's rows as one line of JSON (no newline in it: strings escape theirs)."""
    try:
        return orjson.dumps(rows)  # one C call on the order's path; json's takes ~3 us
    except TypeError:  # orjson's refusal: a lone surrogate, an integer past 64 bits
        return json.dumps(rows, separators=(",", ":")).encode()


def replay_orphans(journal: Path, put: Callable[[list[Rows]], None]) -> int:
    """Hand `put` the calls (their rows) of each intent file of `journal` that no live
    process holds (its writer died), then remove the file; how many files there were."""
    if fcntl is None:
        return 0
    count = 0
    for path in _files(journal):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live proxy on the same journal is writing it
        try:
            # Another proxy starting at the same time may have put it back and removed it
            # between this one's open and its lock.
            if os.fstat(fd).st_nlink == 0:
                continue
            put(list(_records(path)))
            path.unlink()
            count += 1
        finally:
            os.close(fd)  # held while read back: another proxy starting now skips it
    return count


def read_all(journal: Path) -> list[Rows]:
    """The calls in every intent file of `journal`, live or not (for readers: no lock)."""
    calls: list[Rows] = []
    for path in _files(journal):
        try:
            calls.extend(_records(path))
        except OSError:
            continue  # emptied or removed as it was read
    return calls


def _files(journal: Path) -> list[Path]:
    """The intent files of `journal`, live or not."""
    # Escaped: a journal named `desk[1].sqlite3` must find its own files, and `j?.sqlite3`
    # must not take j1.sqlite3's.
    return sorted(journal.parent.glob(f"{glob.escape(journal.name)}{_INFIX}*"))


def _records(path: Path) -> Iterator[Rows]:
    """The calls' rows in an intent file, skipping a record a crash tore (or any garbage:
    one bad line must stop neither the next start nor a reader)."""
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            rows = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(rows, list) and rows and all(_is_row(r) for r in rows):
            yield [tuple(r) for r in rows]


def _is_row(row: Any) -> bool:
    """Whether `row` is a journal row SQLite can take (see ROW_WIDTH)."""
    return (
        isinstance(row, list)
        and len(row) == ROW_WIDTH
        and all(isinstance(value, _SCALARS) for value in row)
    )
