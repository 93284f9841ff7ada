"""The sandbox's account endpoints: its limits (the tier the sandbox keeps, if any) and
its progress toward the volume-based API usage levels."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.sandbox.handlers import account_limits as basic_limits
from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import JSON, Call, fixed_point

_DAY_MS: Final = 86_400_000
# Invented, not Kalshi's figures: contracts over 30 days to earn, then to keep, each
# volume-based level (spec 3.30 names the levels: Expert, Premier, Paragon, Prime, Prestige).
_VOLUME_GOALS: Final = (
    ("expert", Decimal(100_000), Decimal(75_000)),
    ("premier", Decimal(1_000_000), Decimal(750_000)),
    ("paragon", Decimal(5_000_000), Decimal(3_750_000)),
    ("prime", Decimal(20_000_000), Decimal(15_000_000)),
    ("prestige", Decimal(50_000_000), Decimal(37_500_000)),
)


def account_limits(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /account/limits: the tier whose limits the sandbox keeps, else Basic's figures."""
    if state.limiter is None:
        return basic_limits(state, call)
    return 200, state.limiter.limits()


def volume_progress(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /account/api_usage_level/volume_progress: the account's contracts over 30 days."""
    now = state.now_ms()
    since = now - 30 * _DAY_MS
    volume = sum((f.count for f in state.fills if f.created_ms > since), Decimal(0))
    goals = [
        {"earn_volume_goal_fp": fixed_point(earn), "keep_volume_goal_fp": fixed_point(keep),
         "level": level}
        for level, earn, keep in _VOLUME_GOALS
    ]  # fmt: skip
    progress = {"computed_ts": now // 1000, "goals": goals,
                "trailing_30d_volume_fp": fixed_point(volume)}  # fmt: skip
    return 200, {"volume_progress": [progress]}
