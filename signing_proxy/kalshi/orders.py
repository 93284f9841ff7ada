"""Kalshi's removed V1 order writes and their V2 equivalents (API_FACTS.md, last section).

Spec 3.22 removed `POST /portfolio/orders`, `DELETE /portfolio/orders/{id}`, `.../amend`,
`.../decrease` and `/portfolio/orders/batched`; V2 writes live under
`/portfolio/events/orders`. V2 quotes every order on the YES book: a `bid` buys YES, an
`ask` sells YES, at one YES `price`. So, in V1 terms:

    buy  yes at p  ->  bid at p          sell yes at p  ->  ask at p
    buy  no  at q  ->  ask at 1 - q      sell no  at q  ->  bid at 1 - q

(buying NO at q is selling YES at 1 - q: the two legs of one contract pay $1 together).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

V2_ORDERS: Final = "/trade-api/v2/portfolio/events/orders"
V1_ORDERS: Final = "/trade-api/v2/portfolio/orders"
ONE_DOLLAR: Final = Decimal(1)
_CENTS: Final = Decimal(100)
_PRICE_STEP: Final = Decimal("0.0001")
_COUNT_STEP: Final = Decimal("0.01")
_LARGEST: Final = Decimal(10) ** 9
# Kalshi takes at most this many orders in one V2 batch (docs: batch-create-orders-v2).
MAX_BATCH: Final = 20

WriteKind = Literal["create", "cancel", "amend", "decrease", "batch_create", "batch_cancel"]


@dataclass(frozen=True, slots=True)
class V1Write:
    """One removed V1 order write: what it does, on which order, and its V2 route."""

    kind: WriteKind
    order_id: str | None
    v2_method: str
    v2_path: str


class TranslationError(ValueError):
    """A V1 body that cannot be expressed as a V2 order; the message names the field."""


def v1_order_write(method: str, path: str) -> V1Write | None:
    """The V1 write that `method path` is (a decoded path, no query), or None.

    Letter case and a trailing '/' are ignored: a server might route those spellings too.
    """
    path = path.rstrip("/")
    lowered = path.lower()
    if lowered != V1_ORDERS and not lowered.startswith(V1_ORDERS + "/"):
        return None  # not an order route (/portfolio/orders_extra, say)
    rest = path[len(V1_ORDERS) :].split("/")[1:]
    if rest and rest[0].lower() == "batched" and len(rest) == 1:
        rest = ["batched"]
    if len(rest) == 2:
        rest[1] = rest[1].lower()
    return _v1_write(method, rest)


def _v1_write(method: str, rest: list[str]) -> V1Write | None:
    if method == "POST" and not rest:
        return V1Write("create", None, "POST", V2_ORDERS)
    if rest == ["batched"] and method in ("POST", "DELETE"):
        kind: WriteKind = "batch_create" if method == "POST" else "batch_cancel"
        return V1Write(kind, None, method, f"{V2_ORDERS}/batched")
    if len(rest) == 1 and rest[0] and method == "DELETE":
        return V1Write("cancel", rest[0], "DELETE", f"{V2_ORDERS}/{rest[0]}")
    if len(rest) == 2 and rest[0] and method == "POST" and rest[1] in ("amend", "decrease"):
        kind = "amend" if rest[1] == "amend" else "decrease"
        return V1Write(kind, rest[0], "POST", f"{V2_ORDERS}/{rest[0]}/{rest[1]}")
    return None  # reads (GET /portfolio/orders...) stay in V2


def book_side(side: str, action: str) -> Literal["bid", "ask"]:
    """The V2 book side of a V1 (side, action): buying YES or selling NO is a bid."""
    return "bid" if (side == "yes") == (action == "buy") else "ask"


def v1_side_action(book: str, v1_side: str) -> tuple[str, str]:
    """The V1 (side, action) a V2 `book` side means, told in the client's own `v1_side`."""
    buys_yes = book == "bid"
    if v1_side == "yes":
        return "yes", "buy" if buys_yes else "sell"
    return "no", "sell" if buys_yes else "buy"


# Fields a V1 create shares with V2 under the same name and meaning.
_SHARED_CREATE_FIELDS: Final = (
    "ticker",
    "client_order_id",
    "time_in_force",
    "post_only",
    "reduce_only",
    "self_trade_prevention_type",
    "order_group_id",
    "cancel_order_on_pause",
    "subaccount",
    "exchange_index",
)
# Kalshi's V1 defaults where V2 requires the field.
_V1_DEFAULTS: Final = {
    "time_in_force": "good_till_canceled",
    "self_trade_prevention_type": "taker_at_cross",
}


def create_to_v2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A V1 CreateOrderRequest as a V2 CreateOrderV2Request."""
    side, action = _side(doc), _action(doc)
    if doc.get("buy_max_cost") not in (None, 0):
        raise TranslationError(
            "buy_max_cost has no V2 equivalent; send a fill_or_kill V2 order with a price"
        )
    if doc.get("type") not in (None, "limit"):
        raise TranslationError("type: Kalshi removed market orders; send a limit order")
    v2 = {name: doc[name] for name in _SHARED_CREATE_FIELDS if name in doc}
    for name, default in _V1_DEFAULTS.items():
        v2.setdefault(name, default)
    if doc.get("sell_position_floor") is not None:
        if doc["sell_position_floor"] != 0:
            raise TranslationError("sell_position_floor: only 0 was ever accepted")
        v2["reduce_only"] = True  # Kalshi: "Deprecated: use reduce_only instead"
    if doc.get("expiration_ts") is not None:
        v2["expiration_time"] = doc["expiration_ts"]
    v2["side"] = book_side(side, action)
    v2["price"] = format_price(yes_price(doc))
    v2["count"] = format_count(count_of(doc, "count"))
    return v2


def amend_to_v2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A V1 AmendOrderRequest as a V2 AmendOrderV2Request."""
    side, action = _side(doc), _action(doc)
    v2: dict[str, Any] = {"ticker": _text(doc, "ticker")}
    for name in ("client_order_id", "updated_client_order_id", "exchange_index"):
        if doc.get(name) is not None:
            v2[name] = doc[name]
    v2["side"] = book_side(side, action)
    v2["price"] = format_price(yes_price(doc))
    v2["count"] = format_count(count_of(doc, "count"))
    return v2


def decrease_to_v2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A V1 DecreaseOrderRequest as a V2 DecreaseOrderV2Request."""
    by = _optional_count(doc, "reduce_by")
    to = _optional_count(doc, "reduce_to")
    if (by is None) == (to is None):
        raise TranslationError("give exactly one of reduce_by(_fp) or reduce_to(_fp)")
    if (by is not None and by <= 0) or (to is not None and to < 0):
        raise TranslationError("reduce_by must be positive and reduce_to not negative")
    v2: dict[str, Any] = {"reduce_by": format_count(by)} if by is not None else {}
    if to is not None:
        v2["reduce_to"] = format_count(to)
    if doc.get("exchange_index") is not None:
        v2["exchange_index"] = doc["exchange_index"]
    return v2


def batch_create_to_v2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A V1 BatchCreateOrdersRequest as a V2 BatchCreateOrdersV2Request."""
    orders = doc.get("orders")
    if not isinstance(orders, list) or not 0 < len(orders) <= MAX_BATCH:
        raise TranslationError(f"orders: must be a list of 1 to {MAX_BATCH} orders")
    translated = []
    for index, order in enumerate(orders):
        if not isinstance(order, Mapping):
            raise TranslationError(f"orders[{index}]: must be an object")
        try:
            translated.append(create_to_v2(order))
        except TranslationError as exc:
            raise TranslationError(f"orders[{index}].{exc}") from None
    return {"orders": translated}


def batch_cancel_to_v2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A V1 BatchCancelOrdersRequest (ids, or orders with subaccounts) as V2's."""
    if isinstance(doc.get("orders"), list):
        orders = [dict(order) for order in doc["orders"] if isinstance(order, Mapping)]
        named = all(isinstance(o.get("order_id"), str) and o["order_id"] for o in orders)
        if len(orders) != len(doc["orders"]) or not named:
            raise TranslationError("orders: each must be an object with an order_id")
    elif isinstance(doc.get("ids"), list):
        if not all(isinstance(i, str) and i for i in doc["ids"]):
            raise TranslationError("ids: each must be a non-empty string")
        orders = [{"order_id": order_id} for order_id in doc["ids"]]
    else:
        raise TranslationError("give orders (with order_id) or ids")
    if not 0 < len(orders) <= MAX_BATCH:
        raise TranslationError(f"orders: must list 1 to {MAX_BATCH} orders")
    return {"orders": orders}


def yes_price(doc: Mapping[str, Any]) -> Decimal:
    """The YES price of a V1 order in dollars, from whichever of the four fields it gave."""
    given = {
        name: value
        for name in ("yes_price", "no_price", "yes_price_dollars", "no_price_dollars")
        if (value := doc.get(name)) is not None
    }
    if len(given) != 1:
        raise TranslationError(
            "give exactly one of yes_price, no_price, yes_price_dollars or no_price_dollars"
        )
    ((name, value),) = given.items()
    price = _decimal(value, name)
    if not name.endswith("_dollars"):
        price /= _CENTS  # V1 integer prices are cents
    # Refused, never rounded: rounding could turn a limit into a worse price, or into $0/$1.
    if price != price.quantize(_PRICE_STEP) or not Decimal(0) < price < ONE_DOLLAR:
        raise TranslationError(f"{name}: must be a price between $0.0001 and $0.9999")
    return price if name.startswith("yes") else ONE_DOLLAR - price


def count_of(doc: Mapping[str, Any], name: str) -> Decimal:
    """A V1 count given as `name` (whole contracts) or `name`_fp (a string); positive."""
    count = _optional_count(doc, name)
    if count is None or count <= 0:
        raise TranslationError(f"give {name} or {name}_fp, a positive number of contracts")
    return count


def _count_step(count: Decimal, name: str) -> Decimal:
    # Refused, never rounded: 0.001 contracts must not become 0, nor 1.999 become 2.
    if count != count.quantize(_COUNT_STEP):
        raise TranslationError(f"{name}: counts are in steps of 0.01 contracts")
    return count


def format_price(price: Decimal) -> str:
    """A dollar price as V2 takes it: four decimals."""
    return f"{price.quantize(Decimal('0.0001'))}"


def format_count(count: Decimal) -> str:
    """A count as V2 takes it: two decimals."""
    return f"{count.quantize(Decimal('0.01'))}"


def _optional_count(doc: Mapping[str, Any], name: str) -> Decimal | None:
    whole, fixed = doc.get(name), doc.get(f"{name}_fp")
    values = [
        _decimal(value, label)
        for value, label in ((whole, name), (fixed, f"{name}_fp"))
        if value is not None
    ]
    if len(values) == 2 and values[0] != values[1]:
        raise TranslationError(f"{name} and {name}_fp differ")
    return _count_step(values[0], name) if values else None


def fixed_point(value: Any) -> Decimal | None:
    """One of Kalshi's fixed-point strings ("0.5600", "10.00") as an exact Decimal; anything
    else (a number, NaN, an absurd magnitude) None."""
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() and abs(number) < 10**12 else None


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise TranslationError(f"{name}: must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise TranslationError(f"{name}: must be a number") from None
    if not number.is_finite() or abs(number) > _LARGEST:
        raise TranslationError(f"{name}: must be a number of sensible size")
    return number


def _side(doc: Mapping[str, Any]) -> str:
    side = doc.get("side")
    if side not in ("yes", "no"):
        raise TranslationError("side: must be yes or no")
    return str(side)


def _action(doc: Mapping[str, Any]) -> str:
    action = doc.get("action")
    if action not in ("buy", "sell"):
        raise TranslationError("action: must be buy or sell")
    return str(action)


def _text(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise TranslationError(f"{name}: must be a non-empty string")
    return value
