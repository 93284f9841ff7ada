"""The sandbox's endpoints: one function per Kalshi operation, state in, status and JSON out."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.config.rate_limit import DEFAULT_COST
from signing_proxy.kalshi.costs import BUILTIN_COSTS
from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.matching import amend, cancel, place_order
from signing_proxy.sandbox.order import Order
from signing_proxy.sandbox.portfolio import subaccount_of
from signing_proxy.sandbox.state import (
    Position,
    SandboxState,
    claim_client_order_id,
    market_or_404,
    order_or_404,
)
from signing_proxy.sandbox.wire import (
    INVALID_PARAMETERS,
    JSON,
    Call,
    KalshiError,
    choice,
    decode_body,
    decode_cursor,
    dollars,
    first_param,
    fixed_point,
    iso_ms,
    limit_param,
    paginate,
    param_error,
    parse_count,
    parse_price,
)

# --- handlers -------------------------------------------------------------------------------

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
        raise KalshiError(
            400,
            kalshi_error("invalid_order", "invalid order", details=f"{details} should be provided"),
        )
    name = given[0]
    if name.endswith("dollars"):
        price = parse_price(doc[name])
    else:
        price = parse_price(str(Decimal(doc[name]) / 100))
    return price if name.startswith("yes") else 1 - price


def _legacy_count(doc: JSON, default: Decimal | None = None) -> Decimal:
    count, count_fp = doc.get("count"), doc.get("count_fp")
    if count_fp is not None:
        parsed = parse_count(count_fp)
        if count and Decimal(count) != parsed:
            raise KalshiError(400, INVALID_PARAMETERS)
        return parsed
    if count is None and default is not None:
        return default
    if not isinstance(count, int) or count < 1:
        raise KalshiError(400, INVALID_PARAMETERS)
    return Decimal(count)


def exchange_status(state: SandboxState, call: Call) -> tuple[int, JSON]:
    return 200, {"exchange_active": True, "trading_active": True}


def account_limits(state: SandboxState, call: Call) -> tuple[int, JSON]:
    return 200, {
        "grants": [],
        "read": {"bucket_capacity": 200, "refill_rate": 200},
        "usage_tier": "basic",
        "write": {"bucket_capacity": 100, "refill_rate": 100},
    }


def endpoint_costs(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /account/endpoint_costs: the costs that differ from the default, as Kalshi lists them."""
    return 200, {
        "default_cost": DEFAULT_COST,
        "endpoint_costs": [
            {"cost": rule.cost, "method": rule.method, "path": rule.path} for rule in BUILTIN_COSTS
        ],
    }


_MARKET_STATUS: Final = {
    "unopened": ("initialized",),
    "open": ("active",),
    "paused": ("inactive",),
    "closed": ("closed",),
    "settled": ("determined", "finalized"),
}


def list_markets(state: SandboxState, call: Call) -> tuple[int, JSON]:
    limit = limit_param(call.query, "GetMarkets", ("gte", "lte"))
    after = decode_cursor(call.query, "markets")
    status = first_param(call.query, "status")
    if status and status not in _MARKET_STATUS:
        raise param_error("GetMarkets", "Status", "oneof")
    event, series = (
        first_param(call.query, "event_ticker"),
        first_param(call.query, "series_ticker"),
    )
    tickers = {t for t in first_param(call.query, "tickers").split(",") if t}
    rows = [
        (i, m)
        for i, m in enumerate(state.markets.values())
        if (not status or m["status"] in _MARKET_STATUS[status])
        and (not event or m["event_ticker"] == event)
        and (not series or m["event_ticker"].split("-")[0] == series)
        and (not tickers or m["ticker"] in tickers)
    ]
    page, cursor = paginate(rows, lambda row: row[0], after, limit, "markets")
    return 200, {"cursor": cursor, "markets": [market for _, market in page]}


def get_market(state: SandboxState, call: Call) -> tuple[int, JSON]:
    return 200, {"market": market_or_404(state, call.params[0])}


def balance(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/balance, of one subaccount (the primary by default)."""
    account = state.accounts[subaccount_of(state, call, "GetBalance") or 0]
    exposure = sum((p.exposure for p in account.positions.values()), Decimal(0))
    return 200, {
        "balance": int(account.balance * 100),
        "balance_breakdown": [{"balance": dollars(account.balance), "exchange_index": 0}],
        "balance_dollars": dollars(account.balance),
        "portfolio_value": int(exposure * 100),
        "updated_ts": state.now_ms() // 1000,
    }


def positions(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /portfolio/positions, of one subaccount (the primary by default)."""
    number = subaccount_of(state, call, "GetPositions") or 0
    ticker, event = first_param(call.query, "ticker"), first_param(call.query, "event_ticker")
    chosen = [
        p
        for p in sorted(state.accounts[number].positions.values(), key=lambda p: p.ticker)
        if (not ticker or p.ticker == ticker) and (not event or p.event_ticker == event)
    ]
    resting: dict[str, Decimal] = {}
    for order in state.orders.values():
        if order.status == "resting" and order.subaccount == number:
            resting[order.ticker] = resting.get(order.ticker, Decimal(0)) + order.remaining_count
    market_positions = [
        {
            "fees_paid_dollars": dollars(p.fees, 6),
            "last_updated_ts": iso_ms(p.updated_ms),
            "market_exposure_dollars": dollars(p.exposure, 6),
            "position_fp": fixed_point(p.position),
            "realized_pnl_dollars": dollars(p.realized_pnl, 6),
            "resting_orders_count": int(resting.get(p.ticker, 0)),
            "ticker": p.ticker,
            "total_traded_dollars": dollars(p.traded, 6),
        }
        for p in chosen
    ]
    events: dict[str, list[Position]] = {}
    for p in chosen:
        events.setdefault(p.event_ticker, []).append(p)
    event_positions = [
        {
            "event_exposure_dollars": dollars(sum((p.exposure for p in ps), Decimal(0)), 6),
            "event_ticker": name,
            "fees_paid_dollars": dollars(sum((p.fees for p in ps), Decimal(0)), 6),
            "realized_pnl_dollars": dollars(sum((p.realized_pnl for p in ps), Decimal(0)), 6),
            "total_cost_dollars": dollars(sum((p.traded for p in ps), Decimal(0)), 6),
            "total_cost_shares_fp": fixed_point(sum((p.traded_count for p in ps), Decimal(0))),
        }
        for name, ps in events.items()
    ]
    return 200, {
        "cursor": "",
        "event_positions": event_positions,
        "market_positions": market_positions,
    }


def list_orders(state: SandboxState, call: Call) -> tuple[int, JSON]:
    limit = limit_param(call.query, "GetOrders", ("min", "max"))
    after = decode_cursor(call.query, "orders")
    ticker, status = first_param(call.query, "ticker"), first_param(call.query, "status")
    events = {e for e in first_param(call.query, "event_ticker").split(",") if e}
    subaccount = subaccount_of(state, call, "GetOrders")
    newest_first = [
        o
        for o in sorted(state.orders.values(), key=lambda o: -o.seq)
        if (not ticker or o.ticker == ticker)
        and (not status or o.status == status)
        and (not events or state.markets[o.ticker]["event_ticker"] in events)
        and (subaccount is None or o.subaccount == subaccount)
    ]
    page, cursor = paginate(newest_first, lambda o: -o.seq, after, limit, "orders")
    return 200, {"cursor": cursor, "orders": [o.to_json() for o in page]}


def get_order(state: SandboxState, call: Call) -> tuple[int, JSON]:
    return 200, {"order": order_or_404(state, call.params[0]).to_json()}


def create_order(state: SandboxState, call: Call) -> tuple[int, JSON]:
    doc = decode_body(call.body, "CreateOrderRequest", _LEGACY_TYPES)
    if not doc.get("ticker"):
        raise KalshiError(400, INVALID_PARAMETERS)
    side, action = choice(doc, "side", ("yes", "no")), choice(doc, "action", ("buy", "sell"))
    count, price = _legacy_count(doc), _legacy_yes_price(doc)
    order = place_order(state, doc, side=side, action=action, yes_price=price, count=count)
    return 201, {"order": order.to_json()}


def amend_order(state: SandboxState, call: Call) -> tuple[int, JSON]:
    doc = decode_body(call.body, "AmendOrderRequest", _LEGACY_TYPES)
    side, action = choice(doc, "side", ("yes", "no")), choice(doc, "action", ("buy", "sell"))
    yes_price = _legacy_yes_price(doc)
    order = order_or_404(state, call.params[0], resting=True)
    book_side = "bid" if (side == "yes") == (action == "buy") else "ask"
    # `count` is the new maximum fillable: what has filled plus what should rest.
    total = _legacy_count(doc, default=order.fill_count + order.remaining_count)
    if (
        doc.get("ticker") != order.ticker
        or book_side != order.book_side
        or total <= order.fill_count
    ):
        raise KalshiError(400, INVALID_PARAMETERS)
    new_client_order_id = doc.get("updated_client_order_id")
    if new_client_order_id and new_client_order_id != order.client_order_id:
        claim_client_order_id(state, new_client_order_id)
        order.client_order_id = new_client_order_id
    old = order.to_json()
    amend(state, order, yes_price, total)
    return 200, {"old_order": old, "order": order.to_json()}


def cancel_resting(state: SandboxState, order_id: str) -> tuple[Order, Decimal]:
    """Cancel a resting order; the order and how many contracts were taken off the book."""
    order = order_or_404(state, order_id, resting=True)
    return order, cancel(state, order)


def cancel_order(state: SandboxState, call: Call) -> tuple[int, JSON]:
    order, reduced = cancel_resting(state, call.params[0])
    # `reduced_by_fp` is today's field (openapi.yaml); `reduced_by` is the older integer one.
    return 200, {
        "order": order.to_json(),
        "reduced_by": int(reduced),
        "reduced_by_fp": fixed_point(reduced),
    }
