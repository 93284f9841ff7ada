"""The sandbox's matching engine: an order against the book at price-time priority.

A taker takes the best-priced, oldest resting contracts first, users' and market
makers' alike, at the resting price; what is left rests (good till canceled) or is
cancelled (immediate or cancel); fill or kill fills whole or not at all. Self-trade
prevention applies within one subaccount. Every match is a trade, and a fill for each
account that took part, with positions and cash moved as Kalshi moves them.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.book import Resting
from signing_proxy.sandbox.events import (
    Filled,
    LevelChanged,
    OrderChanged,
    QuoteChanged,
    Traded,
    emit,
)
from signing_proxy.sandbox.groups import GroupChanged, OrderGroup
from signing_proxy.sandbox.order import BookSide, Order
from signing_proxy.sandbox.state import (
    Fill,
    SandboxState,
    Trade,
    claim_client_order_id,
    levels_of,
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

# Not recorded from Kalshi: the shape of its other exchange errors.
_MARKET_CLOSED = kalshi_error("market_closed", "market closed", service="exchange")
_POST_ONLY_CROSS = kalshi_error(
    "post_only_cross", "post only order would cross", service="exchange"
)
_NOTHING_TO_REDUCE = kalshi_error(
    "reduce_only_no_position", "reduce only order has no position to reduce", service="exchange"
)
# Not recorded from Kalshi: the documented shape of an order the exchange rejects
# (docs.kalshi.com, getting_started/order_errors), with details of ours.
_NO_SUCH_GROUP = kalshi_error("invalid_order", "invalid order", details="order group not found")
_GROUP_TRIGGERED = kalshi_error(
    "invalid_order", "invalid order", details="order group is triggered until it is reset"
)


def taker_fee(count: Decimal, price: Decimal) -> Decimal:
    """Kalshi's taker fee, 0.07 x C x P x (1 - P), rounded up to a hundredth of a cent."""
    fee = Decimal("0.07") * count * price * (1 - price)
    return fee.quantize(Decimal("0.0001"), rounding=ROUND_CEILING)


def place_order(
    state: SandboxState, doc: JSON, *, side: str, action: str, yes_price: Decimal, count: Decimal
) -> Order:
    """Create an order from validated fields, match it, rest what is left, remember it."""
    time_in_force = choice(doc, "time_in_force", TIME_IN_FORCE, "good_till_canceled")
    self_trade = choice(doc, "self_trade_prevention_type", SELF_TRADE, "taker_at_cross")
    market = market_or_404(state, doc["ticker"])
    if market["status"] != "active":
        raise KalshiError(400, _MARKET_CLOSED)
    subaccount = subaccount_number(state, doc.get("subaccount"))
    group = _group_for(state, doc.get("order_group_id"), subaccount)
    book_side: BookSide = "bid" if (side == "yes") == (action == "buy") else "ask"
    if doc.get("reduce_only"):
        count = _reducible(state, subaccount, market["ticker"], book_side, count)
    if doc.get("post_only") and _crosses(state, market["ticker"], book_side, yes_price):
        raise KalshiError(400, _POST_ONLY_CROSS)
    client_order_id = str(doc.get("client_order_id") or state.new_id())
    claim_client_order_id(state, client_order_id)
    now = state.now_ms()
    order = Order(
        seq=len(state.orders) + 1,
        order_id=state.new_id(),
        client_order_id=client_order_id,
        ticker=market["ticker"],
        side=side,
        action=action,
        book_side=book_side,
        yes_price=yes_price,
        initial_count=count,
        remaining_count=count,
        self_trade_prevention_type=self_trade,
        created_ms=now,
        updated_ms=now,
        subaccount=subaccount,
        order_group_id=group.group_id if group is not None else None,
    )
    state.orders[order.order_id] = order
    if group is not None:
        group.order_ids.append(order.order_id)
        state.group_of[order.order_id] = group
    # Kalshi lists a market among the positions once an order rests in it.
    state.accounts[subaccount].position(order.ticker, market["event_ticker"], now)
    match_order(state, order, time_in_force)
    return order


def match_order(state: SandboxState, order: Order, time_in_force: str) -> None:
    """Match `order` against the book, then rest or cancel what is left."""
    book = state.books[order.ticker]
    if time_in_force == "fill_or_kill" and _fillable(state, order) < order.remaining_count:
        order.remaining_count, order.status = Decimal(0), "canceled"
        return
    maker_side: BookSide = "ask" if order.book_side == "bid" else "bid"
    filled = [order]  # the orders whose groups count these fills
    for resting in book.crossing(order.book_side, order.yes_price):
        if not order.remaining_count:
            break
        maker = resting.order
        if maker is not None and maker.subaccount == order.subaccount:
            if order.self_trade_prevention_type == "maker":
                cancel(state, maker)  # the resting order gives way
                continue
            order.remaining_count = Decimal(0)  # taker_at_cross: the taker stops here
            order.status = "canceled" if not order.fill_count else "executed"
            break
        count = min(order.remaining_count, resting.remaining)
        book.take(maker_side, resting, count)
        _trade(state, order, resting, count)
        if maker is not None:
            filled.append(maker)
    if order.remaining_count:
        if time_in_force == "good_till_canceled":
            book.add(order.book_side, Resting(order.yes_price, order.remaining_count, order))
        else:
            order.remaining_count, order.status = Decimal(0), "canceled"
    emit(state, OrderChanged(order))
    requote(state, order.ticker)
    _enforce_limits(state, filled)


def cancel(state: SandboxState, order: Order) -> Decimal:
    """Take a resting order off the book; how many contracts it had left."""
    reduced = order.remaining_count
    state.books[order.ticker].remove(order.book_side, order)
    order.remaining_count, order.status, order.updated_ms = Decimal(0), "canceled", state.now_ms()
    emit(state, OrderChanged(order))
    requote(state, order.ticker)
    return reduced


def amend(state: SandboxState, order: Order, price: Decimal, total: Decimal) -> None:
    """Give a resting order a new price and total count; it queues again at the back."""
    state.books[order.ticker].remove(order.book_side, order)
    order.yes_price, order.remaining_count = price, total - order.fill_count
    order.initial_count = total  # what was filled plus what may still fill
    order.updated_ms = state.now_ms()
    match_order(state, order, "good_till_canceled")


def reduce_resting(state: SandboxState, order: Order, to: Decimal) -> None:
    """Lower a resting order to `to` contracts, keeping its place in the queue."""
    book = state.books[order.ticker]
    for resting in book.side(order.book_side).get(order.yes_price, ()):
        if resting.order is order:
            book.take(order.book_side, resting, order.remaining_count - to)
            break
    order.remaining_count, order.updated_ms = to, state.now_ms()
    if not to:
        order.status = "canceled"
    emit(state, OrderChanged(order))
    requote(state, order.ticker)


def _trade(state: SandboxState, taker: Order, resting: Resting, count: Decimal) -> None:
    """Record one match at the resting price: the trade, and a fill per account in it."""
    now = state.now_ms()
    trade = Trade(state.new_id(), taker.ticker, count, resting.price, taker.book_side, now)
    state.trades.append(trade)
    emit(state, Traded(trade))
    fee = taker_fee(count, resting.price)
    _fill(state, taker, count, resting.price, fee, is_taker=True, trade=trade)
    if resting.order is not None:
        _fill(state, resting.order, count, resting.price, Decimal(0), is_taker=False, trade=trade)
    _printed(state, taker.ticker, resting.price, count)


def trade_off_book(
    state: SandboxState,
    ticker: str,
    count: Decimal,
    yes_price: Decimal,
    taker: Order | None,
    maker: Order | None,
    *,
    block: bool = False,
) -> Trade:
    """Record a trade agreed away from the book (an RFQ quote, a block trade) at `yes_price`.

    `taker` and `maker` are the sandbox's own orders on each side, None for the desk's
    side (sandbox/comms.py). Each order gets its fill, position and cash as one matched
    on the book would, the taker paying the taker fee; the trade prints like any other.
    """
    if taker is not None:
        taker_side = taker.book_side
    else:
        taker_side = "bid" if maker is None or maker.book_side == "ask" else "ask"
    trade = Trade(state.new_id(), ticker, count, yes_price, taker_side, state.now_ms(), block)
    state.trades.append(trade)
    emit(state, Traded(trade))
    if taker is not None:
        fee = taker_fee(count, yes_price)
        _fill(state, taker, count, yes_price, fee, is_taker=True, trade=trade)
        emit(state, OrderChanged(taker))  # _fill announces a maker's change itself
    if maker is not None:
        _fill(state, maker, count, yes_price, Decimal(0), is_taker=False, trade=trade)
    _printed(state, ticker, yes_price, count)
    _enforce_limits(state, [order for order in (taker, maker) if order is not None])
    return trade


def _printed(state: SandboxState, ticker: str, price: Decimal, count: Decimal) -> None:
    """The market's last price and volumes after a trade of `count` at `price`."""
    market = state.markets[ticker]
    market["last_price_dollars"] = dollars(price)
    market["volume_fp"] = fixed_point(Decimal(market["volume_fp"]) + count)
    market["volume_24h_fp"] = fixed_point(Decimal(market["volume_24h_fp"]) + count)


def _fill(
    state: SandboxState,
    order: Order,
    count: Decimal,
    price: Decimal,
    fee: Decimal,
    *,
    is_taker: bool,
    trade: Trade,
) -> None:
    """Book `count` contracts at YES `price` into the order, its account and position."""
    buying_yes = order.book_side == "bid"
    cost = count * (price if buying_yes else 1 - price)
    order.fill_count += count
    order.remaining_count -= count
    order.fill_cost += cost
    order.fees += fee
    order.updated_ms = trade.created_ms
    if not order.remaining_count:
        order.status = "executed"
    group = state.group_of.get(order.order_id)
    if group is not None:
        group.record(trade.created_ms, count)
    fill_id = state.new_id()
    fill = Fill(fill_id, trade.trade_id, order, count, price, is_taker, fee, trade.created_ms)
    state.fills.append(fill)
    account = state.accounts[order.subaccount]
    account.balance -= cost + fee
    event = state.markets[order.ticker]["event_ticker"]
    pos = account.position(order.ticker, event, trade.created_ms)
    pos.traded, pos.traded_count, pos.fees = (
        pos.traded + cost,
        pos.traded_count + count,
        pos.fees + fee,
    )
    pos.updated_ms = trade.created_ms
    sign = 1 if buying_yes else -1
    closing = min(count, abs(pos.position)) if (pos.position > 0) != buying_yes else Decimal(0)
    if closing:
        # A YES and a NO contract together always pay $1: netting them releases that $1 now.
        average = pos.exposure / abs(pos.position)
        pos.realized_pnl += closing * (1 - average - cost / count)
        pos.exposure -= closing * average
        pos.position += sign * closing
        account.balance += closing
    pos.position += sign * (count - closing)
    pos.exposure += (count - closing) * cost / count
    emit(state, Filled(fill, pos.position))
    if not is_taker:
        emit(state, OrderChanged(order))


def _fillable(state: SandboxState, order: Order) -> Decimal:
    """Contracts `order` could take now, stopping where self-trade prevention would."""
    total = Decimal(0)
    for resting in state.books[order.ticker].crossing(order.book_side, order.yes_price):
        maker = resting.order
        if maker is not None and maker.subaccount == order.subaccount:
            if order.self_trade_prevention_type != "maker":
                break
            continue
        total += resting.remaining
    return total


def _crosses(state: SandboxState, ticker: str, side: BookSide, price: Decimal) -> bool:
    best = state.books[ticker].best("ask" if side == "bid" else "bid")
    return best is not None and (price >= best if side == "bid" else price <= best)


def _reducible(
    state: SandboxState, subaccount: int, ticker: str, side: BookSide, count: Decimal
) -> Decimal:
    """`count` capped at the position a reduce-only order may close; refused when none."""
    held = state.accounts[subaccount].positions.get(ticker)
    position = held.position if held is not None else Decimal(0)
    # A bid buys YES, so it reduces a NO (negative) position; an ask reduces a YES one.
    closable = -position if side == "bid" else position
    if closable <= 0:
        raise KalshiError(400, _NOTHING_TO_REDUCE)
    return min(count, closable)


def subaccount_number(state: SandboxState, value: Any) -> int:
    """The subaccount a body names (the primary when absent); 400 when there is none such."""
    number = 0 if value is None else value
    if not isinstance(number, int) or number not in state.accounts:
        raise KalshiError(
            400, kalshi_error("invalid_subaccount", "invalid subaccount", service="exchange")
        )
    return number


def _group_for(state: SandboxState, group_id: Any, subaccount: int) -> OrderGroup | None:
    """The group an order is placed in, if any: it must be the subaccount's, and active."""
    if not group_id:
        return None
    group = state.order_groups.get(str(group_id))
    if group is None or group.subaccount != subaccount:
        raise KalshiError(400, _NO_SUCH_GROUP)
    if group.triggered:
        raise KalshiError(400, _GROUP_TRIGGERED)
    return group


def _enforce_limits(state: SandboxState, orders: list[Order]) -> None:
    """Trigger each group of `orders` whose window now holds more than its limit."""
    now = state.now_ms()
    groups = {g.group_id: g for o in orders if (g := state.group_of.get(o.order_id)) is not None}
    for group in groups.values():
        if not group.triggered and group.over_limit(now):
            trigger_group(state, group)


def trigger_group(state: SandboxState, group: OrderGroup) -> None:
    """Trigger `group`: announce it, cancel its resting orders; it takes none until reset."""
    group.triggered = True
    announce_group(state, group, "triggered")
    cancel_group_orders(state, group)


def cancel_group_orders(state: SandboxState, group: OrderGroup) -> None:
    """Cancel every resting order of `group` through the engine (the feed sees each)."""
    for order_id in group.order_ids:
        order = state.orders[order_id]
        if order.status == "resting":
            cancel(state, order)


def announce_group(state: SandboxState, group: OrderGroup, event_type: str) -> None:
    """Tell every listener what happened to `group` (order_group_updates)."""
    event = GroupChanged(group.group_id, event_type, group.contracts_limit, state.now_ms())
    for listener in list(state.listeners):
        listener(event)


def requote(state: SandboxState, ticker: str) -> None:
    """Announce what changed on the book, and set the market's quote fields from it."""
    book, market = state.books[ticker], state.markets[ticker]
    now, before, after = state.now_ms(), state.announced[ticker], levels_of(book)
    for key in sorted(set(before) | set(after)):
        delta = after.get(key, Decimal(0)) - before.get(key, Decimal(0))
        if delta:
            emit(state, LevelChanged(ticker, key[0], key[1], delta, now))
    state.announced[ticker] = after
    bid, ask = book.best("bid") or Decimal(0), book.best("ask") or Decimal(0)
    quote = {
        "yes_bid_dollars": dollars(bid),
        "yes_ask_dollars": dollars(ask),
        "no_bid_dollars": dollars(1 - ask),
        "no_ask_dollars": dollars(1 - bid),
        "yes_bid_size_fp": fixed_point(_size_at(book.depth("bid"), bid)),
        "yes_ask_size_fp": fixed_point(_size_at(book.depth("ask"), ask)),
    }
    if any(market[name] != value for name, value in quote.items()):
        market.update(quote)
        emit(state, QuoteChanged(ticker))


def _size_at(levels: list[tuple[Decimal, Decimal]], price: Decimal) -> Decimal:
    return next((size for level, size in levels if level == price), Decimal(0))
