"""The sandbox's matching: an order against the quotes, fills, fees, positions."""

from __future__ import annotations

import uuid
from decimal import ROUND_CEILING, Decimal

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.state import (
    Order,
    Position,
    SandboxState,
    claim_client_order_id,
    market_or_404,
)
from signing_proxy.sandbox.wire import (
    JSON,
    SELF_TRADE,
    TIME_IN_FORCE,
    KalshiError,
    choice,
    dollars,
    fixed_point,
)

# --- matching -------------------------------------------------------------------------------


def _taker_fee(count: Decimal, price: Decimal) -> Decimal:
    # Kalshi's taker fee, 0.07 x C x P x (1 - P), rounded up to a hundredth of a cent.
    fee = Decimal("0.07") * count * price * (1 - price)
    return fee.quantize(Decimal("0.0001"), rounding=ROUND_CEILING)


def _apply_fill(state: SandboxState, order: Order, count: Decimal, price: Decimal) -> None:
    """Book a taker fill of `count` contracts at YES `price` into the balance and position."""
    buying_yes = order.book_side == "bid"
    cost = count * (price if buying_yes else 1 - price)
    fee = _taker_fee(count, price)
    order.fill_count += count
    order.remaining_count -= count
    order.fill_cost += cost
    order.fees += fee
    order.status = "executed" if not order.remaining_count else order.status
    state.balance -= cost + fee
    pos = state.positions[order.ticker]
    pos.traded, pos.traded_count, pos.fees = (
        pos.traded + cost,
        pos.traded_count + count,
        pos.fees + fee,
    )
    pos.updated_ms = order.updated_ms
    sign = 1 if buying_yes else -1
    closing = min(count, abs(pos.position)) if (pos.position > 0) != buying_yes else Decimal(0)
    if closing:
        # A YES and a NO contract together always pay $1: netting them releases that $1 now.
        average = pos.exposure / abs(pos.position)
        pos.realized_pnl += closing * (1 - average - cost / count)
        pos.exposure -= closing * average
        pos.position += sign * closing
        state.balance += closing
    pos.position += sign * (count - closing)
    pos.exposure += (count - closing) * cost / count
    market = state.markets[order.ticker]
    market["last_price_dollars"] = dollars(price)
    market["volume_fp"] = fixed_point(Decimal(market["volume_fp"]) + count)
    market["volume_24h_fp"] = fixed_point(Decimal(market["volume_24h_fp"]) + count)


def match_order(state: SandboxState, order: Order, time_in_force: str) -> None:
    """Fill an order that crosses the quoted book at the touch; otherwise it rests."""
    market = state.markets[order.ticker]
    bid, ask = Decimal(market["yes_bid_dollars"]), Decimal(market["yes_ask_dollars"])
    # The quoted size is treated as unlimited: a crossing order fills completely.
    if order.book_side == "bid" and ask and order.yes_price >= ask:
        _apply_fill(state, order, order.remaining_count, ask)
    elif order.book_side == "ask" and bid and order.yes_price <= bid:
        _apply_fill(state, order, order.remaining_count, bid)
    if order.remaining_count and time_in_force != "good_till_canceled":
        order.remaining_count, order.status = Decimal(0), "canceled"


def place_order(
    state: SandboxState, doc: JSON, *, side: str, action: str, yes_price: Decimal, count: Decimal
) -> Order:
    """Create an order from validated fields, match it, and remember it."""
    time_in_force = choice(doc, "time_in_force", TIME_IN_FORCE, "good_till_canceled")
    self_trade = choice(doc, "self_trade_prevention_type", SELF_TRADE, "taker_at_cross")
    market = market_or_404(state, doc["ticker"])
    if market["status"] != "active":
        # Not recorded from Kalshi: the shape of its other exchange errors.
        raise KalshiError(400, kalshi_error("market_closed", "market closed", service="exchange"))
    client_order_id = str(doc.get("client_order_id") or uuid.uuid4())
    claim_client_order_id(state, client_order_id)
    now = state.now_ms()
    order = Order(
        seq=len(state.orders) + 1,
        order_id=str(uuid.uuid4()),
        client_order_id=client_order_id,
        ticker=market["ticker"],
        side=side,
        action=action,
        book_side="bid" if (side == "yes") == (action == "buy") else "ask",
        yes_price=yes_price,
        initial_count=count,
        remaining_count=count,
        self_trade_prevention_type=self_trade,
        created_ms=now,
        updated_ms=now,
    )
    state.orders[order.order_id] = order
    state.positions.setdefault(order.ticker, Position(order.ticker, market["event_ticker"], now))
    match_order(state, order, time_in_force)
    return order
