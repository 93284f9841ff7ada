"""Risk rules on order entry: an order past a limit is refused before Kalshi sees it.

Only order-entry bodies are read (V2 create, batched create, amend: small JSON), with
prices and counts parsed exactly as `Decimal`s from Kalshi's fixed-point strings. A
batch is checked order by order and refused whole if one order fails. The daily
notional is counted per client and UTC day, from the journal across restarts.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from signing_proxy.config.risk import RiskConfig
from signing_proxy.gateway.orders import OrderFields

_WINDOW: Final = 60.0  # seconds of max_orders_per_minute


@dataclass(frozen=True, slots=True)
class Refused:
    """Why order entry was refused: status, the proxy's error code, and the words."""

    status: int
    code: str
    message: str


_RULES: Final = (
    "allow_tickers",
    "deny_tickers",
    "max_order_count",
    "price_collar",
    "max_order_notional",
    "max_orders_per_minute",
    "max_daily_notional",
)


# A generation's rules are one frozen object, asked about on every order call.
@functools.lru_cache(maxsize=64)
def active_rules(risk: RiskConfig) -> tuple[str, ...]:
    """The names of the rules set, in the order they are checked."""
    return tuple(name for name in _RULES if getattr(risk, name) not in (None, ()))


def active(risk: RiskConfig) -> bool:
    """Whether any rule is set (with none, no body is read)."""
    return bool(active_rules(risk))


# What each per-order rule reads; an order missing it cannot be judged (400).
_NEEDS: Final = {
    "allow_tickers": ("ticker",),
    "deny_tickers": ("ticker",),
    "max_order_count": ("count",),
    "price_collar": ("price",),
    "max_order_notional": ("side", "price", "count"),
    "max_daily_notional": ("side", "price", "count"),
}


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a generation's rules read, worked out once: the fields they need (sorted), and
    each ticker list as one pattern (fnmatch's globs, case-sensitive, joined)."""

    needed: tuple[str, ...]
    deny: re.Pattern[str] | None
    allow: re.Pattern[str] | None


@functools.lru_cache(maxsize=64)
def _plan(risk: RiskConfig) -> _Plan:
    needed = {field for name in active_rules(risk) for field in _NEEDS.get(name, ())}
    return _Plan(tuple(sorted(needed)), _globs(risk.deny_tickers), _globs(risk.allow_tickers))


def _globs(globs: Sequence[str]) -> re.Pattern[str] | None:
    """One pattern that matches where any of `globs` does (as fnmatch.fnmatchcase)."""
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in globs))


def unreadable(orders: Sequence[OrderFields] | None, risk: RiskConfig) -> Refused | None:
    """400 when a set rule needs a field that an order lacks (or the body is not JSON)."""
    if orders is None:
        return _invalid("the body is not a JSON order (or a batch of them)")
    needed = _plan(risk).needed
    for order in orders:
        missing = [field for field in needed if getattr(order, field) is None]
        if missing:
            return _invalid(
                f"{', '.join(missing)} missing or not readable (prices and counts are "
                'fixed-point strings such as "0.56" and "10"; side is bid or ask)'
            )
    return None


def check(order: OrderFields, risk: RiskConfig) -> Refused | None:
    """The first per-order rule `order` breaks, or None (its fields are known readable)."""
    ticker = (order.ticker or "").upper()
    plan = _plan(risk)
    if plan.deny is not None and plan.deny.match(ticker):
        return _refused("deny_tickers", f"{order.ticker} matches risk.deny_tickers")
    if plan.allow is not None and not plan.allow.match(ticker):
        return _refused("allow_tickers", f"{order.ticker} matches no risk.allow_tickers glob")
    limit = risk.max_order_count
    if limit is not None and order.count is not None and order.count > limit:
        return _refused("max_order_count", f"{order.count} contracts; the limit is {limit}")
    if risk.price_collar is not None and order.price is not None:
        low, high = risk.price_collar
        if not low <= order.price <= high:
            return _refused("price_collar", f"price {order.price} is outside [{low}, {high}]")
    notional, cap = order.notional, risk.max_order_notional
    if cap is not None and notional is not None and notional > cap:
        return _refused("max_order_notional", f"${notional} at risk; the limit is ${cap}")
    return None


class OrderRate:
    """Orders each client sent in the last minute, for max_orders_per_minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sent: dict[str, deque[float]] = {}
        self._clock = clock

    def take(
        self, client: str, orders: int, limit: int | None, *, count: bool = True
    ) -> Refused | None:
        """Count `orders` for `client` (unless not `count`), or refuse them past `limit`."""
        if limit is None:
            return None
        now = self._clock()
        sent = self._sent.setdefault(client, deque())
        while sent and sent[0] <= now - _WINDOW:
            sent.popleft()
        if len(sent) + orders > limit:
            return _refused(
                "max_orders_per_minute", f"{len(sent)} sent in the last minute; limit {limit}"
            )
        if count:
            sent.extend([now] * orders)
        return None


def _refused(rule: str, detail: str) -> Refused:
    return Refused(403, f"proxy_risk_{rule}", f"risk.{rule}: {detail}")


def _invalid(detail: str) -> Refused:
    return Refused(400, "proxy_invalid_order", f"the risk rules need to read this order: {detail}")


class DailyNotional:
    """Dollars of orders each client sent today (UTC), for max_daily_notional.

    Reserved when a call is admitted, so concurrent orders cannot overshoot together;
    given back for orders Kalshi refused. `load` reads a day's total from the journal
    the first time a client is seen that day, so the count survives a restart.
    """

    def __init__(self, load: Callable[[str, str], Decimal]) -> None:
        self._load = load
        self._spent: dict[tuple[str, str], Decimal] = {}

    def spent(self, client: str, day: str) -> Decimal:
        """The client's total for `day` (YYYY-MM-DD, UTC)."""
        key = (client, day)
        if key not in self._spent:
            # Only today's totals matter: older days are dropped as a new one starts.
            self._spent = {k: v for k, v in self._spent.items() if k[1] == day}
            self._spent[key] = self._load(client, day)
        return self._spent[key]

    def reserve(
        self, client: str, day: str, amount: Decimal, limit: Decimal, *, commit: bool = True
    ) -> Refused | None:
        """Add `amount` to the client's day (unless not `commit`), or refuse it past `limit`."""
        spent = self.spent(client, day)
        if spent + amount > limit:
            return _refused(
                "max_daily_notional",
                f"${spent} sent today (UTC) plus ${amount} would pass the limit of ${limit}",
            )
        if commit:
            self._spent[(client, day)] = spent + amount
        return None

    def give_back(self, client: str, day: str, amount: Decimal) -> None:
        """Return `amount` of a reservation whose orders did not reach the book."""
        key = (client, day)
        if amount and key in self._spent:
            self._spent[key] -= amount
