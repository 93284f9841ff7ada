"""The sandbox's exchange schedule and announcements, in the shapes of Kalshi's spec:
trading around the clock but for the weekly maintenance, Thursdays 3:00-5:00 AM ET
(API_FACTS.md, "WebSocket"), and a few announcements dated from the sandbox clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import JSON, Call, iso

_DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_THURSDAY: Final = 3
_MAINTENANCE_ET: Final = (3, 5)  # hours, Eastern Time
# Maintenance windows listed ahead of now.
_WINDOWS_AHEAD: Final = 4


def _eastern_offset(day: date) -> timedelta:
    """UTC offset of US Eastern Time on `day` (EDT from the second Sunday of March to the
    first Sunday of November); exact for every day but the two switch-over Sundays."""
    march = date(day.year, 3, 8)
    dst_start = march + timedelta(days=(6 - march.weekday()) % 7)
    november = date(day.year, 11, 1)
    dst_end = november + timedelta(days=(6 - november.weekday()) % 7)
    return timedelta(hours=-4 if dst_start <= day < dst_end else -5)


def _eastern(day: date, hour: int) -> datetime:
    """`hour`:00 Eastern Time on `day`, as a UTC datetime."""
    local = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return local - _eastern_offset(day)


def _maintenance_windows(now: datetime) -> list[JSON]:
    """The weekly windows that have not ended yet, the next few, oldest first."""
    thursday = now.date() - timedelta(days=(now.weekday() - _THURSDAY) % 7)
    windows: list[JSON] = []
    while len(windows) < _WINDOWS_AHEAD:
        start, end = (_eastern(thursday, hour) for hour in _MAINTENANCE_ET)
        if end > now:
            windows.append({"end_datetime": iso(end), "start_datetime": iso(start)})
        thursday += timedelta(days=7)
    return windows


def _week() -> JSON:
    """Each day's sessions (ET, HH:MM): all day, but Thursday's maintenance."""
    whole_day = [{"close_time": "23:59", "open_time": "00:00"}]
    opens, closes = (f"{hour:02d}:00" for hour in _MAINTENANCE_ET)
    thursday = [
        {"close_time": opens, "open_time": "00:00"},
        {"close_time": "23:59", "open_time": closes},
    ]
    return {day: thursday if day == "thursday" else whole_day for day in _DAYS}


def exchange_schedule(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /exchange/schedule: this year's weekly hours and the coming maintenance windows."""
    now = datetime.fromtimestamp(state.now_ms() / 1000, UTC)
    year_start, next_year = date(now.year, 1, 1), date(now.year + 1, 1, 1)
    hours = {
        "end_time": iso(_eastern(next_year, 0)),
        "start_time": iso(_eastern(year_start, 0)),
        **_week(),
    }
    return 200, {
        "schedule": {
            "maintenance_windows": _maintenance_windows(now),
            "standard_hours": [hours],
        }
    }


def exchange_announcements(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /exchange/announcements: what the sandbox would have said lately, newest first."""
    now = datetime.fromtimestamp(state.now_ms() // 1000, UTC)
    windows = _maintenance_windows(now)
    announcements = [
        {
            "delivery_time": iso(now - timedelta(hours=2)),
            "message": "This is the signing-proxy sandbox: an offline exchange with generated "
            "markets and simulated market makers. No order here reaches Kalshi.",
            "status": "active",
            "type": "info",
        },
        {
            "delivery_time": iso(now - timedelta(days=1)),
            "message": f"Scheduled maintenance from {windows[0]['start_datetime']} to "
            f"{windows[0]['end_datetime']}; WebSocket connections will be closed.",
            "status": "active",
            "type": "warning",
        },
        {
            "delivery_time": iso(now - timedelta(days=9)),
            "message": "Order entry is V2 only: use /portfolio/events/orders.",
            "status": "inactive",
            "type": "info",
        },
    ]
    return 200, {"announcements": announcements}
