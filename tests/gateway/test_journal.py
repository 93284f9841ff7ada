"""The order journal in its SQLite file: every order call and cancel with its decision and
Kalshi's answer; nothing secret; the daily notional from it across restarts; an order
that cannot be journaled is not sent."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from signing_proxy.gateway.journal import read
from tests.gateway.conftest import BOT, DESK, OPS, ORDERS, Desk, bid
from tests.support.processes import base_env, run_cli

pytestmark = pytest.mark.usefixtures("clean_env")


def rows(desk: Desk, **filters: Any) -> list[dict[str, Any]]:
    return [r for r in read(desk.journal) if all(r[k] == v for k, v in filters.items())]


async def test_every_order_call_and_cancel_is_journaled_with_kalshis_answer(desk: Desk) -> None:
    order_id = await desk.place(BOT, client_order_id="c-1")
    batch = {"orders": [bid(price="0.11"), bid(price="0.12", subaccount=0)]}
    status, answer = await desk.call(BOT, "POST", f"{ORDERS}/batched", batch)
    assert status == 201
    await desk.call(BOT, "DELETE", f"{ORDERS}/{order_id}")
    (create,) = rows(desk, kind="create")
    assert {k: create[k] for k in ("client", "method", "path", "decision", "state", "status")} == {
        "client": "bot", "method": "POST", "path": ORDERS, "decision": "forwarded",
        "state": "done", "status": 201,
    }  # fmt: skip
    assert (create["ticker"], create["side"], create["count"], create["price"]) == (
        "KXHIGHNY-26JUN12-B74.5", "bid", "2", "0.10",
    )  # fmt: skip
    assert (create["notional"], create["client_order_id"], create["order_id"]) == (
        "0.20", "c-1", order_id,
    )  # fmt: skip
    items = rows(desk, kind="batch")
    assert [r["item"] for r in items] == [0, 1] and items[0]["call"] == items[1]["call"]
    assert [r["order_id"] for r in items] == [o["order_id"] for o in answer["orders"]]
    (cancel,) = rows(desk, kind="cancel")
    assert (cancel["order_id"], cancel["status"], cancel["state"]) == (order_id, 200, "done")


async def test_refusals_and_dry_runs_are_journaled_with_the_rule(
    desk: Desk, tmp_path: Path
) -> None:
    desk.config.write_text(
        json.dumps({"access": {"tokens": [{"name": "bot", "token": BOT, "admin": True}]},
                    "risk": {"max_order_count": 3}})
    )  # fmt: skip
    await desk.restart()
    await desk.call(BOT, "POST", ORDERS, bid(count="4"))
    await desk.call(BOT, "POST", ORDERS, bid(), **{"X-Proxy-Dry-Run": "1"})
    (refused,) = rows(desk, decision="refused")
    assert (refused["error"], refused["state"], refused["count"]) == (
        "proxy_risk_max_order_count", "done", "4",
    )  # fmt: skip
    (dry,) = rows(desk, decision="dry_run")
    assert dry["error"] is None and dry["status"] is None


async def test_no_secret_and_no_body_is_stored(desk: Desk) -> None:
    marker = "an-unusual-field-value-in-the-body"
    await desk.place(BOT, client_order_id="c-2", self_trade_prevention_type="taker_at_cross",
                     expiration_ts=None, note=marker)  # fmt: skip
    await desk.call(OPS, "GET", "/proxy/v1/status")
    for file in desk.journal.parent.glob("journal.sqlite3*"):
        content = file.read_bytes()
        for secret in (BOT, OPS, DESK, marker, "KALSHI-ACCESS", "PRIVATE KEY"):
            assert secret.encode() not in content, (file.name, secret)
    assert desk.journal.stat().st_mode & 0o077 == 0


async def test_daily_notional_counts_across_a_restart(desk: Desk) -> None:
    tokens = [{"name": "bot", "token": BOT}, {"name": "desk", "token": DESK}]
    desk.config.write_text(
        json.dumps({"access": {"tokens": tokens}, "risk": {"max_daily_notional": "1.00"}})
    )
    await desk.restart()
    await desk.place(BOT, price="0.10", count="6")  # $0.60
    # Kalshi refuses this one (no such market): it is given back.
    status, _ = await desk.call(BOT, "POST", ORDERS, bid(ticker="NO-SUCH-MARKET", count="3"))
    assert status == 404
    await desk.place(BOT, price="0.10", count="4")  # $0.40: exactly $1.00 in all
    await desk.restart()
    status, answer = await desk.call(BOT, "POST", ORDERS, bid(price="0.10", count="1"))
    assert status == 403 and answer["error"]["code"] == "proxy_risk_max_daily_notional"
    assert "$1.00 sent today" in answer["error"]["message"]
    await desk.place(DESK, price="0.10", count="9")  # another client's day is its own


async def test_an_order_whose_intent_cannot_be_written_is_not_sent(desk: Desk) -> None:
    resting = await desk.place(BOT)
    (intent_file,) = desk.journal.parent.glob("journal.sqlite3-intents-*")
    intent_file.unlink()  # someone removed the intent log: nothing written there survives
    before = len(desk.state.orders)
    status, answer = await desk.call(BOT, "POST", ORDERS, bid())
    assert status == 503 and answer["error"]["code"] == "proxy_journal_unavailable"
    assert "nothing was sent" in answer["error"]["message"]
    assert len(desk.state.orders) == before
    status, _ = await desk.call(BOT, "DELETE", f"{ORDERS}/{resting}")
    assert status == 200 and resting not in desk.resting()  # a cancel goes regardless


async def test_while_sqlite_refuses_rows_no_further_order_is_sent(desk: Desk) -> None:
    resting = await desk.place(BOT)
    blocker = sqlite3.connect(desk.journal, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file
    try:
        # The first order's intent is in the intent log: it goes, and its rows wait.
        first = await desk.place(BOT, price="0.13")
        before = len(desk.state.orders)
        status, answer = await desk.call(BOT, "POST", ORDERS, bid())
        assert status == 503 and answer["error"]["code"] == "proxy_journal_unavailable"
        assert len(desk.state.orders) == before
        status, _ = await desk.call(BOT, "DELETE", f"{ORDERS}/{resting}")
        assert status == 200 and resting not in desk.resting()  # a cancel goes regardless
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await desk.place(BOT)  # SQLite takes the waiting rows first, then this order goes
    waited = rows(desk, price="0.13")
    assert len(waited) == 1 and waited[0]["state"] == "pending"  # its answer went unrecorded
    assert first in desk.state.orders


async def test_an_order_sent_as_the_sqlite_file_vanishes_is_put_back_at_restart(
    desk: Desk,
) -> None:
    await desk.place(BOT)
    for file in desk.journal.parent.glob("journal.sqlite3*"):
        if "-intents-" not in file.name:
            file.unlink()  # the SQLite file (and its WAL) removed; the intent log is kept
    # Its intent is in the intent log; SQLite's loss is noticed as its rows are written.
    sent = await desk.place(BOT, price="0.15")
    status, answer = await desk.call(BOT, "POST", ORDERS, bid())
    assert status == 503 and answer["error"]["code"] == "proxy_journal_unavailable"
    await desk.restart()  # a new SQLite file, and the rows of the intent log put back in it
    (row,) = rows(desk, price="0.15")
    assert (row["state"], row["client"], row["notional"]) == ("pending", "bot", "0.30")
    assert sent in desk.state.orders


async def test_the_admin_api_and_the_cli_read_the_journal(desk: Desk) -> None:
    await desk.place(BOT)
    await desk.place(DESK)
    status, answer = await desk.call(OPS, "GET", "/proxy/v1/journal?client=desk")
    assert status == 200 and [e["client"] for e in answer["entries"]] == ["desk"]
    env = base_env(SIGNING_PROXY_JOURNAL=str(desk.journal))
    table = run_cli("journal", "--since", "1h", env=env)
    assert table.returncode == 0, table.stderr
    assert "create" in table.stdout and "bot" in table.stdout and "desk" in table.stdout
    lines = run_cli("journal", "--json", "--client", "bot", env=env)
    entries = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [e["client"] for e in entries] == ["bot"] and entries[0]["status"] == 201


def test_a_journal_that_cannot_be_opened_is_exit_2(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    env = base_env(SIGNING_PROXY_JOURNAL=str(blocked / "journal.sqlite3"))
    result = run_cli("journal", env=env)
    assert result.returncode == 2 and "journal.path" in result.stderr
