"""Which calls trade, and what their bodies and answers say about orders.

The gateway acts on a call by its kind: order entry (halted, judged by the risk rules,
journaled), cancels (journaled, never halted), everything else (untouched). The kind is
decided on every spelling a server might route the path as, so %6Frders is still orders.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

import orjson

from signing_proxy.kalshi.orders import fixed_point

Kind = Literal[
    "create", "batch", "amend", "decrease", "quote", "cancel", "batch_cancel", "cancel_all"
]
# Calls that can open or add to a position: refused while halted.
ENTRY_KINDS: Final = frozenset({"create", "batch", "amend", "decrease", "quote"})
# Calls whose bodies carry order terms that the risk rules judge.
JUDGED_KINDS: Final = frozenset({"create", "batch", "amend"})
# Calls whose bodies name orders one by one (a batch of creates or cancels).
_BATCH_KINDS: Final = frozenset({"batch", "batch_cancel"})
_BODY_KINDS: Final = JUDGED_KINDS | _BATCH_KINDS

_ORDERS: Final = "/trade-api/v2/portfolio/events/orders"
_COMMS: Final = "/trade-api/v2/communications/"
ONE: Final = Decimal(1)


@dataclass(frozen=True, slots=True)
class OrderCall:
    """A call that trades or cancels: its kind, and the order id its path names, if any."""

    kind: Kind
    order_id: str | None = None

    @property
    def is_entry(self) -> bool:
        """Whether it can open or add to a position (refused while halted)."""
        return self.kind in ENTRY_KINDS

    @property
    def has_body_orders(self) -> bool:
        """Whether its body lists orders (read for the rules and the journal)."""
        return self.kind in _BODY_KINDS


@dataclass(frozen=True, slots=True)
class OrderFields:
    """What one order in a body says, as far as it can be read; nothing is required."""

    ticker: str | None = None
    side: str | None = None
    price: Decimal | None = None
    count: Decimal | None = None
    client_order_id: str | None = None
    subaccount: int | None = None
    order_id: str | None = None

    @property
    def notional(self) -> Decimal | None:
        """Dollars at risk: count x price for a bid, count x (1 - price) for an ask."""
        if self.price is None or self.count is None or self.side not in ("bid", "ask"):
            return None
        return self.count * (self.price if self.side == "bid" else ONE - self.price)


def classify(method: str, forms: frozenset[str]) -> OrderCall | None:
    """The order call that any of `forms` (spellings of one path) is, or None."""
    found = None
    for form in forms:
        call = _classify_one(method, form)
        if call is not None and (found is None or call.is_entry):
            found = call  # an entry reading wins: refusing more is the safe side
    return found


@functools.lru_cache(maxsize=4096)
def _classify_one(method: str, path: str) -> OrderCall | None:
    # Routes are matched in any letter case (refusing more is the safe side); ids keep theirs.
    path = path.rstrip("/")
    low = path.lower()
    if low.startswith(_COMMS):
        return _communications(method, low[len(_COMMS) :].split("/"))
    if low != _ORDERS and not low.startswith(_ORDERS + "/"):
        return None
    rest = [part for part in path[len(_ORDERS) :].split("/") if part]
    words = [part.lower() for part in rest]
    if method == "POST":
        if not rest:
            return OrderCall("create")
        if words == ["batched"]:
            return OrderCall("batch")
        if len(rest) == 2 and words[1] in ("amend", "decrease"):
            return OrderCall("amend" if words[1] == "amend" else "decrease", _text(rest[0]))
    if method == "DELETE":
        if not rest:
            return OrderCall("cancel_all")
        if words == ["batched"]:
            return OrderCall("batch_cancel")
        if len(rest) == 1:
            return OrderCall("cancel", _text(rest[0]))
    return None


def _communications(method: str, parts: list[str]) -> OrderCall | None:
    """RFQ quotes and block trades: accepting or offering one trades, so it is entry."""
    if method == "POST" and parts in (["quotes"], ["block-trade-proposals"]):
        return OrderCall("quote")
    if method in ("PUT", "POST") and parts and parts[-1] in ("accept", "confirm"):
        return OrderCall("quote")
    return None


def read_orders(kind: Kind, body: bytes | None) -> list[OrderFields] | None:
    """The orders a body lists (one for a create or amend), or None if it is not readable."""
    if kind not in _BODY_KINDS:
        return []
    try:
        doc = read_json(body)
    except (ValueError, RecursionError):
        return None
    if kind in _BATCH_KINDS:
        items = _key(doc, "orders") if isinstance(doc, dict) else None
        if kind == "batch_cancel" and items is None and isinstance(doc, dict):
            ids = _key(doc, "ids")  # the deprecated spelling: a list of bare ids
            items = [{"order_id": i} for i in ids] if isinstance(ids, list) else None
    else:
        items = [doc]
    if not isinstance(items, list) or not items:
        return None
    return [_fields(item) if isinstance(item, dict) else OrderFields() for item in items]


def read_json(body: bytes | None) -> Any:
    """A body's JSON, as Python's json reads it; ValueError (or RecursionError) if it is not."""
    data = body or b""
    try:
        # One C call on the order's path (json.loads is five Python calls, ~2 us more).
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # What orjson refuses but json reads (NaN, a lone surrogate, a BOM, UTF-16) is read
        # as before. Where both read a body they agree on every field read here (orjson
        # makes a float of an integer past 64 bits: no field takes one).
        return json.loads(data)


class _Ambiguous:
    """Two keys that Kalshi's Go decoder reads as one (e.g. count and Count)."""


AMBIGUOUS: Final = _Ambiguous()


def _key(doc: dict[str, Any], name: str) -> Any:
    """A JSON key as Kalshi's Go server reads it: in any letter case. Two spellings of one
    key are AMBIGUOUS (Go would take the last; the proxy will not guess)."""
    found = [v for k, v in doc.items() if isinstance(k, str) and k.lower() == name]
    if len(found) > 1:
        return AMBIGUOUS
    return found[0] if found else None


def _by_lower_key(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` by lower-case key, as _key reads it (two spellings of one key: AMBIGUOUS), in
    one pass: an order's seven fields are then seven lookups."""
    index: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(key, str):
            low = key.lower()
            index[low] = AMBIGUOUS if low in index else value
    return index


def _fields(item: dict[str, Any]) -> OrderFields:
    keys = _by_lower_key(item).get
    side = keys("side")
    subaccount = keys("subaccount")
    price, count = fixed_point(keys("price")), fixed_point(keys("count"))
    return OrderFields(
        ticker=_text(keys("ticker")),
        side=side if side in ("bid", "ask") else None,
        # Only a real price (between $0 and $1) and a positive count are read: a negative
        # one would make a negative notional that hides another order's.
        price=price if price is not None and 0 < price < 1 else None,
        count=count if count is not None and count > 0 else None,
        client_order_id=_text(keys("client_order_id")),
        subaccount=subaccount if type(subaccount) is int and 0 <= subaccount < 2**31 else None,
        order_id=_text(keys("order_id")),
    )


def _text(value: Any) -> str | None:
    """A short string as it can be stored and logged (lone surrogates replaced)."""
    if not isinstance(value, str) or not value:
        return None
    return value[:128].encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What Kalshi answered for one order of a call: its id, or the error code."""

    order_id: str | None
    error: str | None


def read_answer(body: bytes | None) -> list[ItemResult]:
    """Per-order results from an answer: V2 (`order_id`, `orders`) or V1 (`order`) shapes."""
    try:
        doc = read_json(body)
    except (ValueError, RecursionError):
        return []
    if not isinstance(doc, dict):
        return []
    items = doc.get("orders")
    if isinstance(items, list):
        return [_item(item) for item in items]
    return [_item(doc)]


def _item(item: Any) -> ItemResult:
    if not isinstance(item, dict):
        return ItemResult(None, None)
    order = item.get("order")
    source = order if isinstance(order, dict) else item
    error = item.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return ItemResult(_text(source.get("order_id")), _text(code))
