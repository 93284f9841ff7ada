"""The `rate_limit` section: Kalshi's tiers, cost rules and their validation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signing_proxy.errors import ConfigError, did_you_mean

READ = "read"
WRITE = "write"
READ_BUCKET_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COST_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_COST = 10


def bucket_of(method: str) -> str:
    """Which bucket a method draws from: reads are GET, HEAD and OPTIONS, all else writes."""
    return READ if method.upper() in READ_BUCKET_METHODS else WRITE


# Kalshi's tiers, tokens per second (read, write); API_FACTS.md, "Rate limits".
TIERS: dict[str, tuple[float, float]] = {
    "basic": (200.0, 100.0),
    "advanced": (300.0, 300.0),
    "premier": (1000.0, 1000.0),
    "paragon": (2000.0, 2000.0),
    "prime": (4000.0, 4000.0),
}
DEFAULT_TIER = "basic"
DEFAULT_MAX_WAIT = 1.0
# Seconds of budget each bucket holds: the write bucket holds 2 s, except on basic.
READ_CAPACITY_SECONDS = 1.0
WRITE_CAPACITY_SECONDS = 2.0
BASIC_WRITE_CAPACITY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class CostRule:
    """One endpoint's token cost; `path` may hold `:param` segments and a final `*rest`."""

    method: str
    path: str
    cost: int


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Bucket rates and sizes, the longest a request may queue, and user cost overrides."""

    read_per_second: float
    write_per_second: float
    read_capacity: float
    write_capacity: float
    max_wait: float
    costs: tuple[CostRule, ...] = ()
    # kalshi: buckets and costs from GET /account/limits and /account/endpoint_costs, the
    # values above being the fallback; config: the values above only.
    source: str = "kalshi"
    # The bucket settings the user wrote; they win over Kalshi's (a key shared with
    # another program may be given less than its whole budget).
    pinned: frozenset[str] = frozenset()


# --- configuration ----------------------------------------------------------------------

SOURCES = ("kalshi", "config")
_BUCKET_KEYS = ("read_per_second", "write_per_second", "read_capacity", "write_capacity")
_KEYS: dict[str, Any] = {
    "source": None,
    "tier": None,
    "read_per_second": None,
    "write_per_second": None,
    "read_capacity": None,
    "write_capacity": None,
    "max_wait": None,
    "costs": None,
}
_RULE_KEYS: dict[str, Any] = {"method": None, "path": None, "cost": None}
_PREFIX = "/trade-api/v2/"


def parse_rate_limit(raw: Mapping[str, Any] | None) -> RateLimitConfig | None:
    """Validate the `rate_limit` YAML section; None (absent) means rate limiting is off."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("rate_limit: must be a mapping of settings")
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(f"unknown setting 'rate_limit.{key}'{did_you_mean(str(key), _KEYS)}")
    tier = _tier(raw.get("tier"))
    tier_read, tier_write = TIERS[tier]
    read_rate = _number(raw, "read_per_second", tier_read, positive=True)
    write_rate = _number(raw, "write_per_second", tier_write, positive=True)
    write_seconds = BASIC_WRITE_CAPACITY_SECONDS if tier == "basic" else WRITE_CAPACITY_SECONDS
    read_capacity = _number(raw, "read_capacity", read_rate * READ_CAPACITY_SECONDS, positive=True)
    write_capacity = _number(raw, "write_capacity", write_rate * write_seconds, positive=True)
    max_wait = _number(raw, "max_wait", DEFAULT_MAX_WAIT, positive=False)
    costs = _cost_rules(raw.get("costs"))
    capacities = {READ: read_capacity, WRITE: write_capacity}
    for name, capacity in capacities.items():
        if capacity < DEFAULT_COST:
            # Almost every request would be refused forever: surely a mistake.
            raise ConfigError(
                f"rate_limit.{name}_capacity: must be at least {DEFAULT_COST}, "
                f"the default cost of a request; got {capacity:g}"
            )
    for index, rule in enumerate(costs):
        bucket = bucket_of(rule.method)
        if rule.cost > capacities[bucket]:
            raise ConfigError(
                f"rate_limit.costs[{index}].cost: must be at most the {bucket} bucket's "
                f"capacity, {capacities[bucket]:g}; got {rule.cost}"
            )
    # Kalshi's own dearer endpoints (cfbenchmarks, 150) may exceed a small custom bucket;
    # that is allowed, and the limiter refuses those requests at once.
    return RateLimitConfig(
        read_per_second=read_rate,
        write_per_second=write_rate,
        read_capacity=read_capacity,
        write_capacity=write_capacity,
        max_wait=max_wait,
        costs=costs,
        source=_source(raw.get("source")),
        pinned=frozenset(key for key in _BUCKET_KEYS if raw.get(key) is not None),
    )


def _source(value: Any) -> str:
    if value is None:
        return SOURCES[0]
    if value not in SOURCES:
        raise ConfigError(f"rate_limit.source: must be one of {', '.join(SOURCES)}; got {value!r}")
    return str(value)


def _tier(value: Any) -> str:
    if value is None:
        return DEFAULT_TIER
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in TIERS:
        raise ConfigError(f"rate_limit.tier: must be one of {', '.join(TIERS)}; got {value!r}")
    return text


def _number(raw: Mapping[str, Any], key: str, default: float, *, positive: bool) -> float:
    value = raw.get(key)
    if value is None:
        return default
    name = f"rate_limit.{key}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: must be a number; got {value!r}") from None
    bad = not number > 0 if positive else not number >= 0
    if isinstance(value, bool) or bad or math.isinf(number):
        kind = "positive" if positive else "non-negative"
        raise ConfigError(f"{name}: must be a {kind} number; got {value!r}")
    return number


def _cost_rules(value: Any) -> tuple[CostRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("rate_limit.costs: must be a list of {method, path, cost}")
    rules: list[CostRule] = []
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(value):
        where = f"rate_limit.costs[{index}]"
        rule = _cost_rule(item, where)
        key = (rule.method, rule.path)
        if key in seen:
            raise ConfigError(
                f"{where}: repeats {rule.method} {rule.path} from rate_limit.costs[{seen[key]}]"
            )
        seen[key] = index
        rules.append(rule)
    return tuple(rules)


def _cost_rule(item: Any, where: str) -> CostRule:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: must be a mapping with method, path and cost")
    for key in item:
        if key not in _RULE_KEYS:
            hint = did_you_mean(str(key), _RULE_KEYS)
            raise ConfigError(f"unknown setting '{where}.{key}'{hint}")
    for key in _RULE_KEYS:
        if key not in item:
            raise ConfigError(f"{where}: missing {key}")
    method = item["method"]
    text = method.strip().upper() if isinstance(method, str) else ""
    if text not in COST_METHODS:
        allowed = ", ".join(COST_METHODS)
        raise ConfigError(f"{where}.method: must be one of {allowed}; got {method!r}")
    path = _rule_path(item["path"], f"{where}.path")
    cost = item["cost"]
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ConfigError(f"{where}.cost: must be a positive integer; got {cost!r}")
    return CostRule(text, path, cost)


def _rule_path(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip().startswith(_PREFIX):
        # Kalshi lists full paths (GET /account/endpoint_costs); a bare /portfolio/... would
        # silently never match, since the proxy sees the full path.
        raise ConfigError(f"{name}: must be a full path starting with {_PREFIX}; got {value!r}")
    path = value.strip()
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if segment[:1] in (":", "*") and len(segment) == 1:
            raise ConfigError(f"{name}: parameter {segment!r} needs a name; got {path!r}")
        if segment.startswith("*") and index != len(segments) - 1:
            raise ConfigError(f"{name}: a *catch-all must be the last segment; got {path!r}")
    return path
