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
COSTS_PATH: Final = "/trade-api/v2/account/endpoint_costs"

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
    rules = []
    for index, item in enumerate(costs.get("endpoint_costs") or []):
        if not isinstance(item, Mapping):
            raise LimitsAnswerError(f"endpoint_costs[{index}] is not an object")
        cost = _positive(item.get("cost"), f"endpoint_costs[{index}].cost")
        method, path = item.get("method"), item.get("path")
        if not isinstance(method, str) or not isinstance(path, str) or not path.startswith("/"):
            raise LimitsAnswerError(f"endpoint_costs[{index}] lacks a method or path")
        rules.append(CostRule(method.upper(), path, int(cost)))
    return AccountLimits(
        tier=str(limits.get("usage_tier") or "unknown"),
        read=_bucket(limits.get("read"), "read"),
        write=_bucket(limits.get("write"), "write"),
        default_cost=int(_positive(costs.get("default_cost", DEFAULT_COST), "default_cost")),
        costs=tuple(rules),
    )


def batch_items(method: str, path: str, body: bytes | None) -> int:
    """How many orders a batch call carries (1 for any other call, or a body not JSON)."""
    if (method, path.rstrip("/")) not in BATCH_ROUTES or not body:
        return 1
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return 1
    items = doc.get("orders", doc.get("ids")) if isinstance(doc, dict) else None
    return max(1, len(items)) if isinstance(items, list) else 1


def _bucket(value: Any, name: str) -> Bucket:
    if not isinstance(value, Mapping):
        raise LimitsAnswerError(f"{name} is missing")
    rate = _positive(value.get("refill_rate"), f"{name}.refill_rate")
    return Bucket(rate, _positive(value.get("bucket_capacity"), f"{name}.bucket_capacity"))


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise LimitsAnswerError(f"{name} is not a positive number")
    return float(value)
