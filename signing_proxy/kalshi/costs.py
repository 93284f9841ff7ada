"""Kalshi's rate-limit facts: its answers to GET /account/limits and GET
/account/endpoint_costs, the built-in fallback table, and which calls are billed per item.

API_FACTS.md ("Rate limits" and its last section): read both answers at run time rather
than trust a table; batches are billed per order in them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from signing_proxy.config.rate_limit import DEFAULT_COST, CostRule

LIMITS_PATH: Final = "/trade-api/v2/account/limits"
# What a believable answer holds: Kalshi's highest tier is 4,000 tokens a second.
_SMALLEST: Final = 0.001
_LARGEST: Final = 1_000_000.0
_MOST_RULES: Final = 1000
COSTS_PATH: Final = "/trade-api/v2/account/endpoint_costs"
_API: Final = "/trade-api/v2/"

# Kalshi's exceptions to the default cost, as GET /account/endpoint_costs listed them on
# demo (shared/kalshi/wire/account__endpoint_costs.json), without the V1 order writes
# Kalshi has since removed. Used only until Kalshi's own answer is read, or if it cannot be.
BUILTIN_COSTS: Final[tuple[CostRule, ...]] = (
    CostRule("POST", "/trade-api/v2/account/api_usage_level/upgrade", 30),
    CostRule("GET", "/trade-api/v2/cfbenchmarks", 150),
    CostRule("GET", "/trade-api/v2/cfbenchmarks/*endpoint", 150),
    CostRule("POST", "/trade-api/v2/communications/quotes", 2),
    CostRule("DELETE", "/trade-api/v2/communications/quotes/:quote_id", 2),
    CostRule("GET", "/trade-api/v2/margin/balance", 5),
    CostRule("PUT", "/trade-api/v2/multivariate_event_collections/:collection_ticker/lookup", 2),
    CostRule("DELETE", "/trade-api/v2/portfolio/events/orders/:order_id", 2),
    CostRule("DELETE", "/trade-api/v2/portfolio/events/orders/batched", 2),
    CostRule("GET", "/trade-api/v2/portfolio/orders/:order_id", 2),
)

# Billed once per order in the body (docs: batch-create-orders-v2, rate_limits).
BATCH_ROUTES: Final = frozenset(
    {
        ("POST", "/trade-api/v2/portfolio/events/orders/batched"),
        ("DELETE", "/trade-api/v2/portfolio/events/orders/batched"),
    }
)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One of Kalshi's token buckets: tokens per second and how many it holds."""

    refill_rate: float
    capacity: float


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """What Kalshi says this key may spend: its tier, buckets and endpoint costs."""

    tier: str
    read: Bucket
    write: Bucket
    default_cost: int
    costs: tuple[CostRule, ...]


class LimitsAnswerError(ValueError):
    """Kalshi's answer does not have the fields the limiter needs; names what is missing."""


def parse_account_limits(limits: Any, costs: Any) -> AccountLimits:
    """Both answers, checked: the buckets, the default cost and the per-endpoint costs."""
    if not isinstance(limits, Mapping) or not isinstance(costs, Mapping):
        raise LimitsAnswerError("an answer is not a JSON object")
    listed = costs.get("endpoint_costs") or []
    if not isinstance(listed, list) or len(listed) > _MOST_RULES:
        raise LimitsAnswerError(f"endpoint_costs is not a list of at most {_MOST_RULES} rules")
    rules = []
    for index, item in enumerate(listed):
        if not isinstance(item, Mapping):
            raise LimitsAnswerError(f"endpoint_costs[{index}] is not an object")
        cost = _whole(item.get("cost"), f"endpoint_costs[{index}].cost")
        method, path = item.get("method"), item.get("path")
        if not isinstance(method, str) or not isinstance(path, str) or not path.startswith(_API):
            raise LimitsAnswerError(f"endpoint_costs[{index}] lacks a method or path")
        rules.append(CostRule(method.upper(), path, int(cost)))
    return AccountLimits(
        tier=str(limits.get("usage_tier") or "unknown"),
        read=_bucket(limits.get("read"), "read"),
        write=_bucket(limits.get("write"), "write"),
        default_cost=_whole(costs.get("default_cost", DEFAULT_COST), "default_cost"),
        costs=tuple(rules),
    )


def batch_items(method: str, path: str, body: bytes | None) -> int:
    """How many orders a batch call carries (1 for any other call, or a body not JSON).

    `path` is one decoded spelling; the caller tries every spelling a server might route.
    The largest list under any key Go would read as `orders` or `ids` (its JSON decoder
    ignores letter case) is what Kalshi would bill.
    """
    plain = "/".join(segment.split(";", 1)[0] for segment in path.rstrip("/").split("/"))
    if (method, plain.lower()) not in BATCH_ROUTES or not body:
        return 1
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return 1
    if not isinstance(doc, dict):
        return 1
    sizes = [
        len(v) for k, v in doc.items() if k.lower() in ("orders", "ids") and isinstance(v, list)
    ]
    return max([1, *sizes])


def _bucket(value: Any, name: str) -> Bucket:
    if not isinstance(value, Mapping):
        raise LimitsAnswerError(f"{name} is missing")
    rate = _positive(value.get("refill_rate"), f"{name}.refill_rate")
    return Bucket(rate, _positive(value.get("bucket_capacity"), f"{name}.bucket_capacity"))


def _positive(value: Any, name: str) -> float:
    # Bounded both ways: a rate of 1e-300 would make waits infinite, 1e300 turn the limiter off.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LimitsAnswerError(f"{name} is not a number")
    if not _SMALLEST <= value <= _LARGEST:
        raise LimitsAnswerError(f"{name} is not between {_SMALLEST:g} and {_LARGEST:g}")
    return float(value)


def _whole(value: Any, name: str) -> int:
    number = _positive(value, name)
    if number != int(number) or number < 1:
        raise LimitsAnswerError(f"{name} is not a whole number of tokens")
    return int(number)
