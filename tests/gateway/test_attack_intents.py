"""Attacks on the intent log: readers racing the proxy's writes, the reader's limit, odd
journal names, two proxies putting back one dead proxy's file, garbage in a file, a log
that never empties, and a proxy killed while another already runs."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from signing_proxy.gateway import intents
from signing_proxy.gateway.journal import Journal, _rows, now_utc, read
from signing_proxy.gateway.orders import ItemResult
from tests.gateway.conftest import BOT, bid
from tests.gateway.intent_processes import (
    IN_FLIGHT,
    KILLED_WITH_ONE_ANSWERED,
    ORDERS,
    entry,
    intent_files,
    killed_after_intent,
    run_killed,
)

pytestmark = pytest.mark.skipif(not intents.SUPPORTED, reason="no flock on this system")

ACCEPTED = [ItemResult("o-1", None)]


@pytest.mark.parametrize("empty_after", [intents.EMPTY_AFTER, 1])
def test_a_reader_never_misses_a_call_answered_as_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_after: int
) -> None:
    monkeypatch.setattr(intents, "EMPTY_AFTER", empty_after)
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    try:
        sent = journal.intend(entry())
        real = intents.read_all

        def answered_meanwhile(journal_path: Path) -> list[intents.Rows]:
            # The proxy is answered and writes the call's rows (emptying its log when it is
            # large) while a reader is between its look at SQLite and at the intent logs.
            if sent.first is None:
                journal.finish(sent, 201, ACCEPTED, None)
            return real(journal_path)

        monkeypatch.setattr(intents, "read_all", answered_meanwhile)
        assert [r["request_id"] for r in read(path)] == ["r-1"]
    finally:
        journal.close()


def test_the_readers_limit_keeps_the_latest_calls_when_answers_come_out_of_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    try:
        slow = journal.intend(entry("r-1"))
        time.sleep(0.003)  # rows are timed to the millisecond
        fast = journal.intend(entry("r-2"))
        # r-2 is answered first (within PENDING_AFTER, so neither was put in as pending):
        # its rows get the lower id although r-1 was sent first.
        journal.finish(fast, 201, ACCEPTED, None)
        journal.finish(slow, 201, ACCEPTED, None)
        assert [r["request_id"] for r in read(path)] == ["r-1", "r-2"]
        assert [r["request_id"] for r in read(path, limit=1)] == ["r-2"]
    finally:
        journal.close()


def test_the_readers_limit_keeps_the_latest_calls_after_a_killed_proxys_are_put_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    run_killed(KILLED_WITH_ONE_ANSWERED, path)
    assert [r["request_id"] for r in read(path, limit=1)] == ["r-2"]
    Journal(path).close()  # the next start puts r-1 back, after r-2 (a higher id)
    assert [(r["request_id"], r["state"]) for r in read(path)] == [
        ("r-1", "pending"),
        ("r-2", "done"),
    ]
    assert [r["request_id"] for r in read(path, limit=1)] == ["r-2"]


@pytest.mark.parametrize("name", ["desk[1].sqlite3", "j?.sqlite3"])
def test_a_journal_named_with_glob_characters_keeps_its_intents(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    killed_after_intent(path)
    assert len(intent_files(path)) == 1
    # Readers see the sent order at once, and the next start puts it in SQLite.
    assert [(r["request_id"], r["state"]) for r in read(path)] == [("r-1", "pending")]
    Journal(path).close()
    assert [r["id"] for r in read(path)] == [1]
    assert intent_files(path) == []


def test_a_journal_never_takes_another_journals_intents(tmp_path: Path) -> None:
    other = tmp_path / "j1.sqlite3"
    killed_after_intent(other)
    Journal(tmp_path / "j?.sqlite3").close()  # a name that, as a pattern, matches j1's
    assert [r["request_id"] for r in read(other)] == ["r-1"]
    assert len(intent_files(other)) == 1


def test_two_proxies_starting_together_put_a_dead_proxys_file_back_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.sqlite3"
    killed_after_intent(path)
    real_flock = fcntl.flock
    other: list[Journal] = []

    def other_proxy_first(fd: int, operation: int) -> None:
        # The real lock, but another proxy starts (and puts the dead file back, removing
        # it) after this one opened the file and before it takes the lock.
        monkeypatch.setattr(intents.fcntl, "flock", real_flock)
        other.append(Journal(path))
        real_flock(fd, operation)

    monkeypatch.setattr(intents.fcntl, "flock", other_proxy_first)
    journal = Journal(path)
    monkeypatch.undo()
    journal.close()
    other[0].close()
    assert [(r["request_id"], r["state"]) for r in read(path)] == [("r-1", "pending")]
    assert intent_files(path) == []


@pytest.mark.parametrize(
    "garbage",
    [
        b'[["not a row"]]',
        b"[[]]",
        b"[" * 100_000,
        b'[[1,0,"t",[],"r","c","m","p","k","d",'
        b'"pending",null,null,null,null,null,null,null,null,null]]',
    ],
    ids=["short", "empty", "deep", "nested"],
)
def test_garbage_in_a_dead_proxys_file_spoils_only_itself(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "journal.sqlite3"
    killed_after_intent(path)
    (dead,) = intent_files(path)
    with dead.open("ab") as spoiled:
        spoiled.write(b"\n" + garbage)
    # A reader is not stopped by it, nor is the next proxy's start.
    assert [r["request_id"] for r in read(path)] == ["r-1"]
    Journal(path).close()
    assert [(r["request_id"], r["state"]) for r in read(path)] == [("r-1", "pending")]


def test_the_intent_log_knows_a_journal_rows_width() -> None:
    assert all(len(row) == intents.ROW_WIDTH for row in _rows(entry(), now_utc()))


def test_a_proxy_killed_while_another_runs_counts_in_the_others_daily_notional(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    first = subprocess.Popen([sys.executable, "-c", IN_FLIGHT, str(path)], stdout=subprocess.PIPE)
    try:
        assert first.stdout is not None and first.stdout.readline() == b"sent\n"
        # A second proxy on the file (a rolling restart): the first's file is not its to take.
        second = Journal(path)
    finally:
        first.kill()
        first.communicate()
    try:
        (sent,) = read(path)  # still shown, pending, from the dead proxy's file
        day = str(sent["time"])[:10]
        # Its order may be on the book: the second proxy's daily notional counts it, as it
        # did when a call's rows were in SQLite before it was sent.
        assert second.daily_notional("bot", day) == Decimal("1.20")
    finally:
        second.close()


def test_the_log_is_emptied_though_calls_always_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intents, "EMPTY_AFTER", 4096)
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    try:
        earlier = journal.intend(entry("r-0"))
        for number in range(1, 200):
            later = journal.intend(entry(f"r-{number}"))
            journal.finish(earlier, 201, ACCEPTED, None)  # answered while the next is in flight
            earlier = later
        assert len(read(path)) == 200
        # 199 calls are in SQLite; one waits, as one or another has at every moment. The
        # full files went as SQLite took their last rows.
        files = intent_files(path)
        assert len(files) <= 2 and sum(f.stat().st_size for f in files) < 2 * 4096
    finally:
        journal.close()


async def test_a_desks_intent_file_is_private_and_holds_no_secret_or_body(desk: Any) -> None:
    batch = {"orders": [bid(), bid(price="0.11", client_order_id="c-2")]}
    status, _ = await desk.call(BOT, "POST", f"{ORDERS}/batched", batch)
    assert status in (200, 201)
    await desk.place(BOT)
    (own,) = intent_files(desk.journal)
    assert own.stat().st_mode & 0o777 == 0o600
    data = own.read_bytes()
    assert data.count(b"\n") == 2 and b"c-2" in data  # the batch's rows are one record
    for secret in (BOT.encode(), b"time_in_force", b"KALSHI-ACCESS", b"Bearer"):
        assert secret not in data
    rows = read(desk.journal)
    assert [r["kind"] for r in rows] == ["batch", "batch", "create"]
    assert all(r["id"] is not None and r["state"] == "done" for r in rows)
