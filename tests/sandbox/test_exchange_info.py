"""GET /exchange/schedule and /exchange/announcements from the sandbox served for real:
the spec's shapes, and maintenance on Thursdays 3:00-5:00 AM Eastern, summer and winter."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sandbox.exchange_client import Client, Exchange, serve
from tests.sandbox.test_sandbox import API, fetch
from tests.support.keys import new_rsa_key

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
async def exchange(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> Exchange:
    return await serve(aiohttp_client, key, require_auth_everywhere=False)


def at(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def test_schedule_has_the_specs_shape(exchange: Exchange) -> None:
    schedule = (await exchange.ok("GET", f"{API}/exchange/schedule"))["schedule"]
    assert set(schedule) == {"standard_hours", "maintenance_windows"}
    (week,) = schedule["standard_hours"]
    assert set(week) == {"start_time", "end_time", *DAYS}
    assert week["start_time"] == "2026-01-01T05:00:00Z"  # midnight ET, the year round
    assert week["end_time"] == "2027-01-01T05:00:00Z"
    for day in DAYS:
        assert week[day], day
        assert all(set(s) == {"open_time", "close_time"} for s in week[day])
    assert week["thursday"] == [
        {"open_time": "00:00", "close_time": "03:00"},
        {"open_time": "05:00", "close_time": "23:59"},
    ]


@pytest.mark.parametrize(
    ("now", "first"),
    [
        # Thursday 2026-06-11 17:46 UTC: this week's window is over; EDT, UTC-4.
        ("2026-06-11T17:46:40Z", ("2026-06-18T07:00:00Z", "2026-06-18T09:00:00Z")),
        # Thursday 2026-12-03 08:30 UTC: inside this week's window; EST, UTC-5.
        ("2026-12-03T08:30:00Z", ("2026-12-03T08:00:00Z", "2026-12-03T10:00:00Z")),
        # Monday 2026-11-02, the day after the switch back to EST.
        ("2026-11-02T12:00:00Z", ("2026-11-05T08:00:00Z", "2026-11-05T10:00:00Z")),
        # Monday 2026-10-26: the Thursday after is still EDT (the switch is Sunday 1 Nov).
        ("2026-10-26T12:00:00Z", ("2026-10-29T07:00:00Z", "2026-10-29T09:00:00Z")),
        # Monday 2026-03-02: the Thursday after is still EST (the switch is Sunday 8 March).
        ("2026-03-02T12:00:00Z", ("2026-03-05T08:00:00Z", "2026-03-05T10:00:00Z")),
        # Monday 2026-03-09, the day after the switch to EDT.
        ("2026-03-09T12:00:00Z", ("2026-03-12T07:00:00Z", "2026-03-12T09:00:00Z")),
    ],
)
async def test_maintenance_is_thursday_3_to_5_am_eastern(
    exchange: Exchange, now: str, first: tuple[str, str]
) -> None:
    exchange.clock.ms = at(now)
    windows = (await exchange.ok("GET", f"{API}/exchange/schedule"))["schedule"][
        "maintenance_windows"
    ]
    assert len(windows) == 4
    assert (windows[0]["start_datetime"], windows[0]["end_datetime"]) == first
    days = [datetime.fromisoformat(w["start_datetime"][:10]).date() for w in windows]
    assert all((later - earlier).days == 7 for earlier, later in itertools.pairwise(days))
    assert all(at(w["end_datetime"]) > exchange.clock.ms for w in windows)


async def test_announcements_have_the_specs_shape(exchange: Exchange) -> None:
    announcements = (await exchange.ok("GET", f"{API}/exchange/announcements"))["announcements"]
    assert announcements
    for item in announcements:
        assert set(item) == {"type", "message", "delivery_time", "status"}
        assert item["type"] in ("info", "warning", "error")
        assert item["status"] in ("active", "inactive")
        assert at(item["delivery_time"]) <= exchange.clock.ms
    schedule = (await exchange.ok("GET", f"{API}/exchange/schedule"))["schedule"]
    assert schedule["maintenance_windows"][0]["start_datetime"] in announcements[1]["message"]


@pytest.mark.parametrize("path", ["schedule", "announcements"])
async def test_both_are_public(exchange: Exchange, path: str) -> None:
    status, _ = await fetch(exchange.client, "GET", f"{API}/exchange/{path}", {})
    assert status == 200
