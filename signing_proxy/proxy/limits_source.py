"""Kalshi's own rate limits for this key, read at start and on every reload.

With `rate_limit.source: kalshi` (the default once `rate_limit` is set), the limiter uses
what GET /account/limits and GET /account/endpoint_costs answer; the tier and the
built-in cost table are only the fallback, and the log says which is in use.
"""

from __future__ import annotations

import json

from structlog import get_logger

from signing_proxy.kalshi.costs import (
    COSTS_PATH,
    LIMITS_PATH,
    AccountLimits,
    LimitsAnswerError,
    parse_account_limits,
)
from signing_proxy.proxy.calls import CallFailed, CallRecord, UpstreamCaller
from signing_proxy.proxy.live import Live, Snapshot


async def learn_limits(caller: UpstreamCaller, live: Live) -> AccountLimits | None:
    """Read Kalshi's limits and give them to the current limiter; None if it kept its own."""
    snapshot = live.current
    limiter, settings = snapshot.limiter, snapshot.config.rate_limit
    if limiter is None or settings is None or settings.source != "kalshi":
        return None
    log = get_logger()
    try:
        limits = await _read(caller, snapshot, LIMITS_PATH)
        costs = await _read(caller, snapshot, COSTS_PATH)
        learned = parse_account_limits(limits, costs)
        limiter.adopt(learned)
    except Exception as exc:
        # Whatever the upstream answered, the limiter keeps working on its own settings.
        reason = str(exc) if isinstance(exc, LimitsAnswerError) else _reason(exc)
        log.warning(
            "rate_limit_fallback",
            reason=reason,
            using="the configured tier and the built-in cost table",
        )
        return None
    log.info(
        "rate_limit_learned",
        tier=learned.tier,
        read_per_second=limiter.rate("read"),
        write_per_second=limiter.rate("write"),
        default_cost=learned.default_cost,
        endpoint_costs=len(learned.costs),
        pinned=sorted(settings.pinned),
    )
    return learned


def _reason(exc: Exception) -> str:
    if isinstance(exc, CallFailed):
        return "no answer from the upstream"
    return f"the answer could not be used ({type(exc).__name__})"


async def _read(caller: UpstreamCaller, snapshot: Snapshot, path: str) -> object:
    record = CallRecord(request_id="rate-limit-source")
    answer = await caller.call(snapshot, record, "GET", path, None)
    if answer.status != 200:
        raise LimitsAnswerError(f"GET {path} answered {answer.status}")
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):
        raise LimitsAnswerError(f"GET {path} did not answer JSON") from None
