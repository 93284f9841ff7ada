"""The sandbox's V2 order writes (`/portfolio/events/orders`), the only ones Kalshi serves
since 2026: create, cancel, amend, decrease, and batches of creates and cancels."""

from __future__ import annotations

from typing import Final

from signing_proxy.sandbox.handlers import cancel_resting
from signing_proxy.sandbox.matching import amend, cancel, place_order, reduce_resting
from signing_proxy.sandbox.portfolio import subaccount_of
from signing_proxy.sandbox.state import SandboxState, claim_client_order_id, order_or_404
from signing_proxy.sandbox.wire import (
    INVALID_PARAMETERS,
    JSON,
    SELF_TRADE,
    TIME_IN_FORCE,
    Call,
    KalshiError,
    choice,
    decode_body,
    dollars,
    fixed_point,
    parse_count,
    parse_price,
    typed,
)

# Kalshi caps a batch at 20 orders (docs: batch-create-orders-v2).
MAX_BATCH: Final = 20

_V2_TYPES: Final = {
    "ticker": "string", "client_order_id": "string", "side": "string", "count": "string",
    "price": "string", "time_in_force": "string", "self_trade_prevention_type": "string",
    "order_group_id": "string", "expiration_time": "int64", "post_only": "bool",
    "reduce_only": "bool", "cancel_order_on_pause": "bool", "subaccount": "int",
    "exchange_index": "int",
}  # fmt: skip
_AMEND_TYPES: Final = {
    "ticker": "string", "side": "string", "price": "string", "count": "string",
    "client_order_id": "string", "updated_client_order_id": "string", "exchange_index": "int",
}  # fmt: skip
_DECREASE_TYPES: Final = {
    "reduce_by": "string", "reduce_to": "string", "exchange_index": "int",
    "market_ticker": "string",
}  # fmt: skip


def create_order_v2(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/events/orders."""
    doc = decode_body(call.body, "CreateOrderV2Request", _V2_TYPES)
    return 201, _created(state, doc)


def _created(state: SandboxState, doc: JSON) -> JSON:
    book_side = choice(doc, "side", ("bid", "ask"))
    choice(doc, "time_in_force", TIME_IN_FORCE)  # required here, unlike the legacy endpoint
    choice(doc, "self_trade_prevention_type", SELF_TRADE)
    if not doc.get("ticker"):
        raise KalshiError(400, INVALID_PARAMETERS)
    count, price = parse_count(doc.get("count")), parse_price(doc.get("price"))
    # The V2 book is quoted from the YES side: bid buys YES, ask sells it.
    action = "buy" if book_side == "bid" else "sell"
    order = place_order(state, doc, side="yes", action=action, yes_price=price, count=count)
    answer: JSON = {
        "client_order_id": order.client_order_id,
        "fill_count": fixed_point(order.fill_count),
        "order_id": order.order_id,
        "remaining_count": fixed_point(order.remaining_count),
        "ts_ms": order.created_ms,
    }
    if order.fill_count:
        # In YES terms, as V2 prices are: an ask's own cost is the NO side's.
        paid = order.fill_cost / order.fill_count
        answer["average_fill_price"] = dollars(paid if order.book_side == "bid" else 1 - paid)
        answer["average_fee_paid"] = dollars(order.fees / order.fill_count)
    return answer


def cancel_order_v2(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """DELETE /portfolio/events/orders/{id}."""
    return 200, _canceled(state, call.params[0])


def _canceled(state: SandboxState, order_id: str) -> JSON:
    order, reduced = cancel_resting(state, order_id)
    return {
        "client_order_id": order.client_order_id,
        "order_id": order.order_id,
        "reduced_by": fixed_point(reduced),
        "ts_ms": order.updated_ms,
    }


def amend_order_v2(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/events/orders/{id}/amend: new price and total count, same book side."""
    doc = decode_body(call.body, "AmendOrderV2Request", _AMEND_TYPES)
    book_side = choice(doc, "side", ("bid", "ask"))
    price, total = parse_price(doc.get("price")), parse_count(doc.get("count"))
    order = order_or_404(state, call.params[0], resting=True)
    if doc.get("ticker") != order.ticker or book_side != order.book_side:
        raise KalshiError(400, INVALID_PARAMETERS)
    if total <= order.fill_count:
        raise KalshiError(400, INVALID_PARAMETERS)
    new_client_order_id = doc.get("updated_client_order_id")
    if new_client_order_id and new_client_order_id != order.client_order_id:
        claim_client_order_id(state, new_client_order_id)
        order.client_order_id = new_client_order_id
    amend(state, order, price, total)
    answer: JSON = {
        "client_order_id": order.client_order_id,
        "fill_count": fixed_point(order.fill_count),
        "order_id": order.order_id,
        "remaining_count": fixed_point(order.remaining_count),
        "ts_ms": order.updated_ms,
    }
    return 200, answer


def decrease_order_v2(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/events/orders/{id}/decrease: reduce_by or reduce_to, one of them."""
    doc = decode_body(call.body, "DecreaseOrderV2Request", _DECREASE_TYPES)
    by, to = doc.get("reduce_by"), doc.get("reduce_to")
    if (by is None) == (to is None):
        raise KalshiError(400, INVALID_PARAMETERS)
    order = order_or_404(state, call.params[0], resting=True)
    target = order.remaining_count - parse_count(by) if by is not None else parse_count(to)
    if target < 0 or target >= order.remaining_count:
        raise KalshiError(400, INVALID_PARAMETERS)
    reduce_resting(state, order, target)
    return 200, {
        "client_order_id": order.client_order_id,
        "order_id": order.order_id,
        "remaining_count": fixed_point(order.remaining_count),
        "ts_ms": order.updated_ms,
    }


def batch_create_v2(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /portfolio/events/orders/batched: each order placed or refused on its own."""
    items = _batch_items(call, "BatchCreateOrdersV2Request")
    results = []
    for item in items:
        try:
            results.append(_created(state, typed(item, "CreateOrderV2Request", _V2_TYPES)))
        except KalshiError as exc:
            # Echo the client's id only if it is one (a string), as a typed server would.
            echoed = item.get("client_order_id")
            named = {"client_order_id": echoed} if isinstance(echoed, str) else {}
            results.append({**named, **_error(exc)})
    return 201, {"orders": results}


def batch_cancel_v2(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """DELETE /portfolio/events/orders/batched: each order canceled or refused on its own."""
    items = _batch_items(call, "BatchCancelOrdersV2Request")
    results = []
    for item in items:
        order_id = str(item.get("order_id") or "")
        try:
            results.append(_canceled(state, order_id))
        except KalshiError as exc:
            # Spec: every entry carries reduced_by, a refused one "0.00".
            results.append({"order_id": order_id, "reduced_by": "0.00", **_error(exc)})
    return 200, {"orders": results}


def _batch_items(call: Call, struct: str) -> list[JSON]:
    doc = decode_body(call.body, struct, {"orders": "array"})
    items = doc.get("orders")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH:
        raise KalshiError(400, INVALID_PARAMETERS)
    return [typed(item, struct, {}) for item in items]


def _error(exc: KalshiError) -> JSON:
    error = exc.body.get("error", exc.body)
    return {"error": error}


def cancel_all(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """DELETE /portfolio/events/orders: every resting order (of one subaccount if named)."""
    subaccount = subaccount_of(state, call, "CancelAllOrders")
    for order in list(state.orders.values()):
        if order.status == "resting" and subaccount in (None, order.subaccount):
            cancel(state, order)
    return 204, {}
