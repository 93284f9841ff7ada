"""The sandbox's endpoints: one function per Kalshi operation, state in, status and JSON out."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.matching import _match, _place
from signing_proxy.sandbox.state import (
    SandboxState,
    _claim_client_order_id,
    _market_or_404,
    _Order,
    _order_or_404,
    _Position,
)
from signing_proxy.sandbox.wire import (
    _INVALID_PARAMETERS,
    _SELF_TRADE,
    _TIME_IN_FORCE,
    JSON,
    _Call,
    _choice,
    _decode,
    _decode_cursor,
    _dollars,
    _first,
    _fp,
    _iso_ms,
    _KalshiError,
    _limit,
    _paginate,
    _param_error,
    _parse_count,
    _parse_price,
)

# --- handlers -------------------------------------------------------------------------------

_V2_TYPES: Final = {
    "ticker": "string", "client_order_id": "string", "side": "string", "count": "string",
    "price": "string", "time_in_force": "string", "self_trade_prevention_type": "string",
    "order_group_id": "string", "expiration_time": "int64", "post_only": "bool",
    "reduce_only": "bool", "cancel_order_on_pause": "bool", "subaccount": "int",
}  # fmt: skip
_LEGACY_TYPES: Final = {
    "ticker": "string", "client_order_id": "string", "side": "string", "action": "string",
    "count": "int", "count_fp": "string", "yes_price": "int", "no_price": "int",
    "yes_price_dollars": "string", "no_price_dollars": "string", "time_in_force": "string",
    "self_trade_prevention_type": "string", "expiration_ts": "int64", "buy_max_cost": "int",
    "post_only": "bool", "reduce_only": "bool", "subaccount": "int",
    "updated_client_order_id": "string",
}  # fmt: skip
_PRICE_FIELDS: Final = ("yes_price", "no_price", "yes_price_dollars", "no_price_dollars")


def _legacy_yes_price(doc: JSON) -> Decimal:
    given = [name for name in _PRICE_FIELDS if doc.get(name) not in (None, 0, "")]
    if len(given) != 1:
        # Reported by third parties (not recorded here).
        details = "exactly one of yes_price, no_price, yes_price_dollars, or no_price_dollars"
        raise _KalshiError(
            400,
            kalshi_error("invalid_order", "invalid order", details=f"{details} should be provided"),
        )
    name = given[0]
    if name.endswith("_dollars"):
        price = _parse_price(doc[name])
    else:
        price = _parse_price(str(Decimal(doc[name]) / 100))
    return price if name.startswith("yes") else 1 - price


def _legacy_count(doc: JSON, default: Decimal | None = None) -> Decimal:
    count, count_fp = doc.get("count"), doc.get("count_fp")
    if count_fp is not None:
        parsed = _parse_count(count_fp)
        if count and Decimal(count) != parsed:
            raise _KalshiError(400, _INVALID_PARAMETERS)
        return parsed
    if count is None and default is not None:
        return default
    if not isinstance(count, int) or count < 1:
        raise _KalshiError(400, _INVALID_PARAMETERS)
    return Decimal(count)


def _exchange_status(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    return 200, {"exchange_active": True, "trading_active": True}


def _account_limits(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    return 200, {
        "grants": [],
        "read": {"bucket_capacity": 200, "refill_rate": 200},
        "usage_tier": "basic",
        "write": {"bucket_capacity": 100, "refill_rate": 100},
    }


_MARKET_STATUS: Final = {
    "unopened": ("initialized",),
    "open": ("active",),
    "paused": ("inactive",),
    "closed": ("closed",),
    "settled": ("determined", "finalized"),
}


def _list_markets(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    limit = _limit(call.query, "GetMarkets", ("gte", "lte"))
    after = _decode_cursor(call.query, "markets")
    status = _first(call.query, "status")
    if status and status not in _MARKET_STATUS:
        raise _param_error("GetMarkets", "Status", "oneof")
    event, series = _first(call.query, "event_ticker"), _first(call.query, "series_ticker")
    tickers = {t for t in _first(call.query, "tickers").split(",") if t}
    rows = [
        (i, m)
        for i, m in enumerate(state.markets.values())
        if (not status or m["status"] in _MARKET_STATUS[status])
        and (not event or m["event_ticker"] == event)
        and (not series or m["event_ticker"].split("-")[0] == series)
        and (not tickers or m["ticker"] in tickers)
    ]
    page, cursor = _paginate(rows, lambda row: row[0], after, limit, "markets")
    return 200, {"cursor": cursor, "markets": [market for _, market in page]}


def _get_market(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    return 200, {"market": _market_or_404(state, call.params[0])}


def _balance(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    exposure = sum((p.exposure for p in state.positions.values()), Decimal(0))
    return 200, {
        "balance": int(state.balance * 100),
        "balance_breakdown": [{"balance": _dollars(state.balance), "exchange_index": 0}],
        "balance_dollars": _dollars(state.balance),
        "portfolio_value": int(exposure * 100),
        "updated_ts": state.now_ms() // 1000,
    }


def _positions(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    ticker, event = _first(call.query, "ticker"), _first(call.query, "event_ticker")
    chosen = [
        p
        for p in sorted(state.positions.values(), key=lambda p: p.ticker)
        if (not ticker or p.ticker == ticker) and (not event or p.event_ticker == event)
    ]
    resting: dict[str, Decimal] = {}
    for order in state.orders.values():
        if order.status == "resting":
            resting[order.ticker] = resting.get(order.ticker, Decimal(0)) + order.remaining_count
    market_positions = [
        {
            "fees_paid_dollars": _dollars(p.fees, 6),
            "last_updated_ts": _iso_ms(p.updated_ms),
            "market_exposure_dollars": _dollars(p.exposure, 6),
            "position_fp": _fp(p.position),
            "realized_pnl_dollars": _dollars(p.realized_pnl, 6),
            "resting_orders_count": int(resting.get(p.ticker, 0)),
            "ticker": p.ticker,
            "total_traded_dollars": _dollars(p.traded, 6),
        }
        for p in chosen
    ]
    events: dict[str, list[_Position]] = {}
    for p in chosen:
        events.setdefault(p.event_ticker, []).append(p)
    event_positions = [
        {
            "event_exposure_dollars": _dollars(sum((p.exposure for p in ps), Decimal(0)), 6),
            "event_ticker": name,
            "fees_paid_dollars": _dollars(sum((p.fees for p in ps), Decimal(0)), 6),
            "realized_pnl_dollars": _dollars(sum((p.realized_pnl for p in ps), Decimal(0)), 6),
            "total_cost_dollars": _dollars(sum((p.traded for p in ps), Decimal(0)), 6),
            "total_cost_shares_fp": _fp(sum((p.traded_count for p in ps), Decimal(0))),
        }
        for name, ps in events.items()
    ]
    return 200, {
        "cursor": "",
        "event_positions": event_positions,
        "market_positions": market_positions,
    }


def _list_orders(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    limit = _limit(call.query, "GetOrders", ("min", "max"))
    after = _decode_cursor(call.query, "orders")
    ticker, status = _first(call.query, "ticker"), _first(call.query, "status")
    events = {e for e in _first(call.query, "event_ticker").split(",") if e}
    newest_first = [
        o
        for o in sorted(state.orders.values(), key=lambda o: -o.seq)
        if (not ticker or o.ticker == ticker)
        and (not status or o.status == status)
        and (not events or state.markets[o.ticker]["event_ticker"] in events)
    ]
    page, cursor = _paginate(newest_first, lambda o: -o.seq, after, limit, "orders")
    return 200, {"cursor": cursor, "orders": [o.to_json() for o in page]}


def _get_order(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    return 200, {"order": _order_or_404(state, call.params[0]).to_json()}


def _create_order(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    doc = _decode(call.body, "CreateOrderRequest", _LEGACY_TYPES)
    if not doc.get("ticker"):
        raise _KalshiError(400, _INVALID_PARAMETERS)
    side, action = _choice(doc, "side", ("yes", "no")), _choice(doc, "action", ("buy", "sell"))
    count, price = _legacy_count(doc), _legacy_yes_price(doc)
    order = _place(state, doc, side=side, action=action, yes_price=price, count=count)
    return 201, {"order": order.to_json()}


def _create_order_v2(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    doc = _decode(call.body, "CreateOrderV2Request", _V2_TYPES)
    book_side = _choice(doc, "side", ("bid", "ask"))
    _choice(doc, "time_in_force", _TIME_IN_FORCE)  # required here, unlike the legacy endpoint
    _choice(doc, "self_trade_prevention_type", _SELF_TRADE)
    if not doc.get("ticker"):
        raise _KalshiError(400, _INVALID_PARAMETERS)
    count, price = _parse_count(doc.get("count")), _parse_price(doc.get("price"))
    # The V2 book is quoted from the YES side: bid buys YES, ask sells it.
    action = "buy" if book_side == "bid" else "sell"
    order = _place(state, doc, side="yes", action=action, yes_price=price, count=count)
    answer: JSON = {
        "client_order_id": order.client_order_id,
        "fill_count": _fp(order.fill_count),
        "order_id": order.order_id,
        "remaining_count": _fp(order.remaining_count),
        "ts_ms": order.created_ms,
    }
    if order.fill_count:
        answer["average_fill_price"] = _dollars(order.fill_cost / order.fill_count)
        answer["average_fee_paid"] = _dollars(order.fees / order.fill_count)
    return 201, answer


def _amend_order(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    doc = _decode(call.body, "AmendOrderRequest", _LEGACY_TYPES)
    side, action = _choice(doc, "side", ("yes", "no")), _choice(doc, "action", ("buy", "sell"))
    yes_price = _legacy_yes_price(doc)
    order = _order_or_404(state, call.params[0], resting=True)
    book_side = "bid" if (side == "yes") == (action == "buy") else "ask"
    # `count` is the new maximum fillable: what has filled plus what should rest.
    total = _legacy_count(doc, default=order.fill_count + order.remaining_count)
    if (
        doc.get("ticker") != order.ticker
        or book_side != order.book_side
        or total <= order.fill_count
    ):
        raise _KalshiError(400, _INVALID_PARAMETERS)
    new_client_order_id = doc.get("updated_client_order_id")
    if new_client_order_id and new_client_order_id != order.client_order_id:
        _claim_client_order_id(state, new_client_order_id)
        order.client_order_id = new_client_order_id
    old = order.to_json()
    order.yes_price, order.remaining_count = yes_price, total - order.fill_count
    order.updated_ms = state.now_ms()
    _match(state, order, "good_till_canceled")
    return 200, {"old_order": old, "order": order.to_json()}


def _cancel(state: SandboxState, order_id: str) -> tuple[_Order, Decimal]:
    order = _order_or_404(state, order_id, resting=True)
    reduced = order.remaining_count
    order.remaining_count, order.status, order.updated_ms = Decimal(0), "canceled", state.now_ms()
    return order, reduced


def _cancel_order(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    order, reduced = _cancel(state, call.params[0])
    # `reduced_by_fp` is today's field (openapi.yaml); `reduced_by` is the older integer one.
    return 200, {
        "order": order.to_json(),
        "reduced_by": int(reduced),
        "reduced_by_fp": _fp(reduced),
    }


def _cancel_order_v2(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    order, reduced = _cancel(state, call.params[0])
    return 200, {
        "client_order_id": order.client_order_id,
        "order_id": order.order_id,
        "reduced_by": _fp(reduced),
        "ts_ms": order.updated_ms,
    }
