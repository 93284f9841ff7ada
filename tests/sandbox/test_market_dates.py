"""The sandbox's markets are dated from its clock: whatever day it starts, today's events
are open, yesterday's closed, tomorrow's not open yet; the same day gives the same
markets, and another day the same markets moved by whole days, tickers unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signing_proxy.sandbox.markets import generate_markets
from signing_proxy.sandbox.state import SandboxState

TIMES = ("created_time", "open_time", "close_time", "updated_time", "expected_expiration_time",
         "expiration_time", "latest_expiration_time")  # fmt: skip
# 2026-11-30 15:00 UTC: a real clock of late 2026, months after the June the tickers name.
NOVEMBER = datetime(2026, 11, 30, 15, tzinfo=UTC).timestamp()


def at(market: dict[str, Any], name: str) -> datetime:
    return datetime.fromisoformat(market[name].replace("Z", "+00:00"))


@pytest.mark.parametrize("hour", [0, 15, 23.99])
def test_each_status_is_consistent_with_the_clock(hour: float) -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC) + timedelta(hours=hour)
    markets = generate_markets(now.timestamp())
    assert {m["status"] for m in markets} == {"active", "initialized", "closed", "finalized"}
    for market in markets:
        opens, closes = at(market, "open_time"), at(market, "close_time")
        assert at(market, "created_time") < opens < closes, market["ticker"]
        assert (
            closes <= at(market, "expected_expiration_time") <= at(market, "latest_expiration_time")
        )
        if market["status"] == "active":
            assert opens <= now < closes, market["ticker"]
        elif market["status"] == "initialized":
            assert now < opens, market["ticker"]
        else:
            assert closes < now, market["ticker"]
        if market["status"] == "finalized":
            assert at(market, "latest_expiration_time") < now + timedelta(hours=24)


def test_todays_events_carry_todays_date_and_keep_their_tickers() -> None:
    markets = {m["ticker"]: m for m in generate_markets(NOVEMBER)}
    temperature = markets["KXHIGHNY-26JUN12-B74.5"]
    assert temperature["status"] == "active"
    assert "Nov 30, 2026" in temperature["title"]
    assert "Nov 30, 2026" in temperature["rules_primary"]
    assert temperature["close_time"] == "2026-12-01T20:59:00Z"
    assert markets["KXBTCD-26JUN1217-T105749.99"]["close_time"].startswith("2026-12-01")


def test_the_same_day_gives_the_same_markets_another_day_shifts_them() -> None:
    first = generate_markets(NOVEMBER)
    assert generate_markets(NOVEMBER + 3_600) == first  # later the same day
    later = generate_markets(NOVEMBER + 3 * 86_400)
    assert [m["ticker"] for m in later] == [m["ticker"] for m in first]
    for before, after in zip(first, later, strict=True):
        for name in TIMES:
            assert at(after, name) - at(before, name) == timedelta(days=3), (after["ticker"], name)


def test_the_sandbox_dates_its_markets_from_its_own_clock() -> None:
    state = SandboxState({}, clock=lambda: NOVEMBER, window_ms=5000, require_auth_everywhere=True)
    assert state.markets["KXHIGHNY-26JUN12-B74.5"]["close_time"] == "2026-12-01T20:59:00Z"
