"""The sandbox's account endpoints: its limits (the tier the sandbox keeps, if any, or
the one an upgrade grant raised it to), its progress toward the volume-based API usage
levels, and the upgrade to Advanced.

POST /account/api_usage_level/upgrade follows its documented rule: Advanced is granted
(201, no body) when at least one of the user's last 100 orders was created through the
API, and refused with 403 otherwise. Every sandbox order comes through the API, so the
rule reads "has the user placed an order yet". The grant is permanent and shows in GET
/account/limits, whose tier and buckets become Advanced's unless the sandbox already
keeps a higher tier; when the sandbox keeps rate limits, it enforces the new ones.
Kalshi documents a grant's `source` as "volume" or "manual": this one is "manual".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.config.rate_limit import TIERS
from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.handlers import account_limits as basic_limits
from signing_proxy.sandbox.ratelimit import RateLimiter
from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import JSON, NO_BODY, Call, KalshiError, fixed_point

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
_ADVANCED_GRANT: Final = {"exchange_instance": "event_contract", "level": "advanced",
                          "source": "manual"}  # fmt: skip
# Not recorded from Kalshi: the spec names the status (403) and the reason, not the body.
_NO_API_ORDER: Final = kalshi_error(
    "api_usage_level_criteria_not_met",
    "no API-created order was found in the user's latest 100 orders",
    service="exchange",
)


def account_limits(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /account/limits: the tier whose limits the sandbox keeps, else Basic's figures,
    raised to Advanced by an upgrade grant."""
    if state.limiter is not None:
        limits = state.limiter.limits()
    elif state.grants:
        limits = RateLimiter("advanced", state.clock).limits()
    else:
        limits = basic_limits(state, call)[1]
    return 200, {**limits, "grants": [dict(grant) for grant in state.grants]}


def upgrade_usage_level(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /account/api_usage_level/upgrade: Advanced, once the user has placed an order."""
    latest = sorted(state.orders.values(), key=lambda order: -order.seq)[:100]
    if not latest:
        raise KalshiError(403, _NO_API_ORDER)
    if _ADVANCED_GRANT not in state.grants:
        state.grants.append(dict(_ADVANCED_GRANT))
    tiers = list(TIERS)
    if state.limiter is not None and tiers.index(state.limiter.tier) < tiers.index("advanced"):
        state.limiter = RateLimiter("advanced", state.clock)
    return 201, NO_BODY


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
