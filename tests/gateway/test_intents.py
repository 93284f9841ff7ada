"""The intent log: an order's rows are on disk before it is sent, SQLite gets them while it
is in flight, and a proxy killed in between leaves them for the next one to put back."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from signing_proxy.gateway import intents
from signing_proxy.gateway.journal import Journal, read
from signing_proxy.proxy.entry import PENDING_AFTER
from tests.gateway.intent_processes import ORDERS, entry, intent_files, killed_after_intent

pytestmark = pytest.mark.skipif(not intents.SUPPORTED, reason="no flock on this system")


def test_a_proxy_killed_before_sqlite_has_the_rows_leaves_them_to_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    killed_after_intent(path, "r-1", ORDERS)
    assert len(intent_files(path)) == 1
    # Readers see it already: from the dead proxy's intent log (no SQLite id yet).
    ((row, source),) = [(r, r["id"]) for r in read(path)]
    assert (row["state"], row["client"], row["path"], row["ticker"], row["count"]) == (
        "pending", "bot", ORDERS, "T-1", "3",
    )  # fmt: skip
    assert source is None
    journal = Journal(path)
    try:
        (put_back,) = read(path)
        assert put_back == {**row, "id": put_back["id"]} and put_back["id"] is not None
        assert [p.name.startswith("journal.sqlite3-intents-") for p in intent_files(path)] == [
            True
        ]  # only the new proxy's own file is left
    finally:
        journal.close()
    assert intent_files(path) == []
    Journal(path).close()
    assert len(read(path)) == 1  # put back once only


def test_a_dead_proxys_calls_already_in_sqlite_are_not_put_back_twice(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    killed_after_intent(path, "r-1", ORDERS, recorded=True)
    assert len(intent_files(path)) == 1 and [r["id"] for r in read(path)] == [1]
    Journal(path).close()
    assert [r["id"] for r in read(path)] == [1] and intent_files(path) == []


def test_a_live_proxys_intents_are_not_taken_by_another(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    first = Journal(path)
    in_flight = first.intend(entry())
    second = Journal(path)  # a second proxy on the same file, while the order is in flight
    try:
        assert [(r["request_id"], r["id"]) for r in read(path)] == [("r-1", None)]
        first.record(in_flight)
        assert [(r["request_id"], r["id"]) for r in read(path)] == [("r-1", 1)]
    finally:
        second.close()
        first.close()
    Journal(path).close()
    assert len(read(path)) == 1 and intent_files(path) == []


def test_a_torn_record_spoils_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    journal.intend(entry("r-1"))
    (own,) = intent_files(path)
    journal.close()  # r-1 never reached SQLite: the file stays for the next start
    with own.open("ab") as torn:
        torn.write(b'\n[["half a rec')  # a full disk cut this record short
    journal = Journal(path)
    journal.record(journal.intend(entry("r-2")))
    journal.close()
    assert [(r["request_id"], r["state"]) for r in read(path)] == [
        ("r-1", "pending"),
        ("r-2", "pending"),
    ]
    assert intent_files(path) == []


def test_the_log_is_emptied_once_sqlite_has_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intents, "EMPTY_AFTER", 1)
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    try:
        waiting = journal.intend(entry("r-1"))
        # The file is past its size and r-1 waits in it: r-2 goes to a new one.
        journal.record(journal.intend(entry("r-2")))
        assert len(intent_files(path)) == 2
        assert sum(f.stat().st_size for f in intent_files(path)) > 0  # r-1 is not in SQLite
        journal.record(waiting)
        # The full file went with its last row; the new one was emptied with its only one.
        assert [f.stat().st_size for f in intent_files(path)] == [0]
    finally:
        journal.close()


async def test_an_order_still_in_flight_is_pending_in_sqlite_within_a_moment(
    make_upstream: Any, make_proxy: Any, tmp_path: Path
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"order": {"order_id": "o-1"}}, status=201)

    upstream = await make_upstream(slow)
    path = tmp_path / "journal.sqlite3"
    client = await make_proxy(upstream.url, SIGNING_PROXY_JOURNAL=str(path))
    order = {"ticker": "T-1", "side": "bid", "price": "0.40", "count": "3"}
    posting = asyncio.create_task(client.post(ORDERS, json=order))
    await asyncio.wait_for(arrived.wait(), 10)
    await asyncio.sleep(PENDING_AFTER + 0.2)
    # In SQLite itself (not only in the intent log), as a reader of the file sees it.
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT state, ticker FROM journal").fetchall() == [("pending", "T-1")]
    release.set()
    assert (await posting).status == 201
    ((state, order_id),) = await _when_answered(path)
    assert (state, order_id) == ("done", "o-1")


async def _when_answered(path: Path) -> list[tuple[Any, ...]]:
    """The journal's rows once the answer is recorded (written just after it is relayed)."""
    for _ in range(50):
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = db.execute("SELECT state, order_id FROM journal").fetchall()
        if rows and rows[0][0] != "pending":
            return rows
        await asyncio.sleep(0.02)
    return rows
