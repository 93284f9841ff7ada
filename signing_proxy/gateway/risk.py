"""Risk rules on order entry: an order past a limit is refused before Kalshi sees it.

Only order-entry bodies are read (V2 create, batched create, amend: small JSON), with
prices and counts parsed exactly as `Decimal`s from Kalshi's fixed-point strings. A
batch is checked order by order and refused whole if one order fails.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from signing_proxy.config.risk import RiskConfig

V2_ORDERS: Final = "/trade-api/v2/portfolio/events/orders"
ONE: Final = Decimal(1)
_WINDOW: Final = 60.0  # seconds of max_orders_per_minute


@dataclass(frozen=True, slots=True)
class Refused:
    """Why order entry was refused: status, the proxy's error code, and the words."""

    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """What a rule looks at in one V2 order: market, book side, YES price, contracts."""

    ticker: str
    side: str
    price: Decimal
    count: Decimal

    @property
    def notional(self) -> Decimal:
        """Dollars at risk: count x price for a bid, count x (1 - price) for an ask."""
        return self.count * (self.price if self.side == "bid" else ONE - self.price)


def order_entry(method: str, path: str) -> str | None:
    """Which order-entry call `method path` is: create, batch or amend; else None."""
    if method != "POST" or not path.startswith(V2_ORDERS):
        return None
    rest = path[len(V2_ORDERS) :].strip("/").split("/")
    if rest == [""]:
        return "create"
    if rest == ["batched"]:
        return "batch"
    return "amend" if len(rest) == 2 and rest[1] == "amend" else None


_RULES: Final = (
    "allow_tickers",
    "deny_tickers",
    "max_order_count",
    "price_collar",
    "max_order_notional",
    "max_orders_per_minute",
)


def active_rules(risk: RiskConfig) -> list[str]:
    """The names of the rules set, in the order they are checked."""
    return [name for name in _RULES if getattr(risk, name) not in (None, ())]


def active(risk: RiskConfig) -> bool:
    """Whether any rule is set (with none, no body is read)."""
    return bool(active_rules(risk))


def orders_of(kind: str, body: bytes | None) -> list[OrderTerms] | Refused:
    """The orders a create, batch or amend body carries, or 400 if one cannot be read."""
    try:
        doc = json.loads(body or b"")
    except (ValueError, RecursionError):
        return _invalid("the body is not JSON")
    items = doc.get("orders") if kind == "batch" and isinstance(doc, dict) else [doc]
    if not isinstance(items, list) or not items:
        return _invalid("a batch must carry a list of orders")
    orders = []
    for item in items:
        terms = _terms(item)
        if isinstance(terms, Refused):
            return terms
        orders.append(terms)
    return orders


def check(order: OrderTerms, risk: RiskConfig) -> Refused | None:
    """The first rule `order` breaks, or None."""
    ticker = order.ticker.upper()
    if risk.deny_tickers and any(fnmatch.fnmatchcase(ticker, g) for g in risk.deny_tickers):
        return _refused("deny_tickers", f"{order.ticker} matches risk.deny_tickers")
    if risk.allow_tickers and not any(fnmatch.fnmatchcase(ticker, g) for g in risk.allow_tickers):
        return _refused("allow_tickers", f"{order.ticker} matches no risk.allow_tickers glob")
    if risk.max_order_count is not None and order.count > risk.max_order_count:
        limit = risk.max_order_count
        return _refused("max_order_count", f"{order.count} contracts; the limit is {limit}")
    if risk.price_collar is not None:
        low, high = risk.price_collar
        if not low <= order.price <= high:
            return _refused("price_collar", f"price {order.price} is outside [{low}, {high}]")
    if risk.max_order_notional is not None and order.notional > risk.max_order_notional:
        limit = risk.max_order_notional
        return _refused("max_order_notional", f"${order.notional} at risk; the limit is ${limit}")
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


def _terms(item: Any) -> OrderTerms | Refused:
    if not isinstance(item, dict):
        return _invalid("an order must be a JSON object")
    ticker, side = item.get("ticker"), item.get("side")
    if not isinstance(ticker, str) or not ticker or side not in ("bid", "ask"):
        return _invalid("an order needs a ticker and side bid or ask")
    price, count = _exact(item.get("price")), _exact(item.get("count"))
    if price is None or count is None:
        return _invalid('price and count must be fixed-point strings such as "0.56" and "10"')
    return OrderTerms(ticker, str(side), price, count)


def _exact(value: Any) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() and abs(number) < 10**12 else None


def _refused(rule: str, detail: str) -> Refused:
    return Refused(403, f"proxy_risk_{rule}", f"risk.{rule}: {detail}")


def _invalid(detail: str) -> Refused:
    return Refused(400, "proxy_invalid_order", f"the risk rules need to read this order: {detail}")
