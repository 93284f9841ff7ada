"""Kalshi's rate limits, when the sandbox is asked to keep them: a read and a write token
bucket of the account's tier (API_FACTS.md, "Rate limits"), each request costing what
GET /account/endpoint_costs says (10 by default, a batch per order). A request over
budget is refused at once, as Kalshi refuses it: 429 `{"error": "too many requests"}`,
no Retry-After header. Written apart from the proxy's limiter, which it is there to test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from signing_proxy.config.rate_limit import (
    BASIC_WRITE_CAPACITY_SECONDS,
    DEFAULT_COST,
    READ_CAPACITY_SECONDS,
    TIERS,
    WRITE_CAPACITY_SECONDS,
    CostRule,
    bucket_of,
)
from signing_proxy.kalshi.costs import BUILTIN_COSTS, batch_items
from signing_proxy.sandbox.wire import JSON

TOO_MANY_REQUESTS: Final[JSON] = {"error": "too many requests"}


def check_tier(tier: str) -> str:
    """`tier` if Kalshi has it (basic, advanced, premier, paragon, prime); else ValueError."""
    if tier not in TIERS:
        raise ValueError(f"unknown rate limit tier {tier!r}; one of {', '.join(TIERS)}")
    return tier


@dataclass(slots=True)
class Bucket:
    """Tokens refilled at `rate` a second up to `capacity`; full at the start."""

    rate: float
    capacity: float
    tokens: float
    at_ms: int  # when `tokens` was last brought up to date

    def take(self, cost: float, now_ms: int) -> bool:
        """Spend `cost` tokens if the bucket holds them now; else spend none."""
        # Whole milliseconds: 50 ms at 200 a second is 10 tokens exactly, not 9.99999.
        refill = max(0, now_ms - self.at_ms) * self.rate / 1000
        self.tokens = min(self.capacity, self.tokens + refill)
        self.at_ms = max(self.at_ms, now_ms)
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True


class RateLimiter:
    """The account's two buckets and the cost of each endpoint."""

    def __init__(self, tier: str, clock: Callable[[], float]) -> None:
        self.tier = check_tier(tier)
        self._clock = clock
        read_rate, write_rate = TIERS[tier]
        write_seconds = BASIC_WRITE_CAPACITY_SECONDS if tier == "basic" else WRITE_CAPACITY_SECONDS
        read_capacity = read_rate * READ_CAPACITY_SECONDS
        write_capacity = write_rate * write_seconds
        now = self._now_ms()
        self.buckets = {
            "read": Bucket(read_rate, read_capacity, read_capacity, now),
            "write": Bucket(write_rate, write_capacity, write_capacity, now),
        }

    def allow(self, method: str, path: str, body: bytes) -> bool:
        """Charge one request (`path` as sent, without the query); False when over budget."""
        cost = cost_of(method, path) * batch_items(method, path, body)
        return self.buckets[bucket_of(method)].take(cost, self._now_ms())

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)

    def limits(self) -> JSON:
        """GET /account/limits for this tier."""
        return {
            "grants": [],
            "read": _bucket_limit(self.buckets["read"]),
            "usage_tier": self.tier,
            "write": _bucket_limit(self.buckets["write"]),
        }


def _bucket_limit(bucket: Bucket) -> JSON:
    return {"bucket_capacity": int(bucket.capacity), "refill_rate": int(bucket.rate)}


def cost_of(method: str, path: str, rules: tuple[CostRule, ...] = BUILTIN_COSTS) -> int:
    """The endpoint's cost: the most specific rule matching it, else the default."""
    segments = [unquote(part) for part in path.split("/")]
    best: tuple[int, int] | None = None  # (literal segments, cost)
    for rule in rules:
        if rule.method != method.upper():
            continue
        literals = _matches(rule.path.split("/"), segments)
        if literals is not None and (best is None or literals > best[0]):
            best = (literals, rule.cost)
    return DEFAULT_COST if best is None else best[1]


def _matches(pattern: list[str], segments: list[str]) -> int | None:
    """How many literal segments of `pattern` match `segments`; None when it does not."""
    literals = 0
    for index, want in enumerate(pattern):
        if want.startswith("*"):  # the rest of the path, one segment at least
            return literals if len(segments) > index and segments[index] else None
        if index >= len(segments):
            return None
        got = segments[index]
        if want.startswith(":"):
            if not got:
                return None
        elif want == got:
            literals += 1
        else:
            return None
    return literals if len(segments) == len(pattern) else None
