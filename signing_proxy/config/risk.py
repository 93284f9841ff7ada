"""The `risk` section's values: limits on order entry, in contracts and dollars."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from signing_proxy.config.fields import keys_of, setting
from signing_proxy.config.values import string_list
from signing_proxy.errors import ConfigError, did_you_mean


def _amount(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{name}: must be a number; got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"{name}: must be a number; got {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ConfigError(f"{name}: must be a positive number; got {value!r}")
    return number


def optional_amount(value: Any, name: str, env: Mapping[str, str]) -> Decimal | None:
    """A positive number (contracts or dollars, exact), or null for no limit."""
    return None if value is None else _amount(value, name)


def optional_count(value: Any, name: str, env: Mapping[str, str]) -> int | None:
    """A positive whole number, or null for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: must be a positive whole number; got {value!r}")
    return value


def price_collar(value: Any, name: str, env: Mapping[str, str]) -> tuple[Decimal, Decimal] | None:
    """[low, high] in dollars, 0 < low <= high < 1, or null for none."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(f"{name}: must be [low, high] in dollars, e.g. [0.05, 0.95]")
    low, high = _amount(value[0], f"{name}[0]"), _amount(value[1], f"{name}[1]")
    if not low <= high < 1:
        raise ConfigError(f"{name}: must have 0 < low <= high < 1; got [{low}, {high}]")
    return low, high


def ticker_globs(value: Any, name: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """Market ticker globs ('*' matches anything), e.g. KXHIGHNY-*."""
    return tuple(glob.upper() for glob in string_list(value, name))


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Limits on order entry; an order past one is refused before Kalshi sees it."""

    max_order_count: Decimal | None = setting(
        None, "contracts per order; null: no limit", optional_amount
    )
    max_order_notional: Decimal | None = setting(
        None,
        "dollars per order: count x price (bid) or count x (1 - price) (ask); null: no limit",
        optional_amount,
    )
    price_collar: tuple[Decimal, Decimal] | None = setting(
        None, "[low, high] dollars an order's price must fall in; null: none", price_collar
    )
    allow_tickers: tuple[str, ...] = setting(
        (), "market ticker globs orders may name; empty: all", ticker_globs
    )
    deny_tickers: tuple[str, ...] = setting(
        (), "market ticker globs orders may not name", ticker_globs
    )
    max_orders_per_minute: int | None = setting(
        None, "orders per client per rolling minute; null: no limit", optional_count
    )
    max_daily_notional: Decimal | None = setting(
        None,
        "dollars of orders per client per UTC day (survives restarts with the journal); "
        "null: no limit",
        optional_amount,
    )


def overrides(value: Any, name: str, env: Mapping[str, str]) -> Mapping[str, Any]:
    """A token's `risk:` overrides, each checked as the top-level key would be."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a mapping of risk settings")
    known = {key.name: key for key in keys_of(RiskConfig)}
    parsed = {}
    for sub, raw in value.items():
        if sub not in known:
            raise ConfigError(f"unknown setting '{name}.{sub}'{did_you_mean(str(sub), known)}")
        parsed[sub] = known[sub].setting.parse(raw, f"{name}.{sub}", env)
    return parsed


def for_client(base: RiskConfig, changes: Mapping[str, Any]) -> RiskConfig:
    """`base` with a token's overrides applied."""
    return dataclasses.replace(base, **changes) if changes else base
