"""How RFQs and quotes trade in the sandbox: the desk's behaviour, and execution.

A quote's `yes_bid` is what its creator pays for a YES contract, `no_bid` for a NO one
(Kalshi's book shows bids only; "0" declines that side). The RFQ's creator accepts one
side of the quote: accepting `yes` sells YES to the quoter at `yes_bid`, so the quoter
ends up holding YES at `yes_bid` and the RFQ's creator NO at 1 - `yes_bid` (`no`
likewise). The quoter then confirms and the trade executes at once (Kalshi waits an
execution timeout; the sandbox does not), for the whole size: nothing is left to rest.
The RFQ's creator takes (and pays the taker fee), the quoter makes.

The desk (sandbox/comms.py), with its own seeded random stream:
- asks for quotes itself: a few open RFQs on active markets from the start;
- quotes every RFQ of the user at once, a cent or two behind the book's best bids;
- accepts a quote of the user on its RFQs at once when one side is at least as good
  for it as the book (the better side), and leaves it open otherwise;
- confirms at once any of its quotes the user accepts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.comms import Quote, Rfq
from signing_proxy.sandbox.matching import trade_off_book
from signing_proxy.sandbox.order import BookSide, Order
from signing_proxy.sandbox.state import SandboxState, claim_client_order_id
from signing_proxy.sandbox.wire import CENT, KalshiError

DESK_RFQS: Final = 3  # the desk's open RFQs at start
_DESK_SIZES: Final = (50, 100, 250, 500)
# Not recorded from Kalshi: invented codes, in the shape of its other exchange errors.
MARKET_CLOSED: Final = kalshi_error("market_closed", "market closed", service="exchange")


def seed_desk(state: SandboxState) -> None:
    """The desk's own open RFQs at start, on active markets its stream picks."""
    comms, now = state.comms, state.now_ms()
    active = sorted(t for t, m in state.markets.items() if m["status"] == "active")
    for ticker in comms.rng.sample(active, DESK_RFQS):
        size = Decimal(comms.rng.choice(_DESK_SIZES))
        rfq = Rfq(comms.new_id(), comms.next_seq(), False, ticker, size, None, False, 0, now, now)
        comms.rfqs[rfq.rfq_id] = rfq


def desk_quote(state: SandboxState, rfq: Rfq) -> Quote | None:
    """The desk's quote on the user's `rfq`, behind the book's best bids; None if no book."""
    comms, book = state.comms, state.books[rfq.market_ticker]
    best_bid, best_ask = book.best("bid"), book.best("ask")
    yes_bid = _behind(best_bid, comms.rng.choice((0, 1, 2)))
    no_bid = _behind(None if best_ask is None else 1 - best_ask, comms.rng.choice((0, 1, 2)))
    if not yes_bid and not no_bid:
        return None
    now = state.now_ms()
    quote = Quote(comms.new_id(), comms.next_seq(), rfq, False, yes_bid, no_bid,
                  False, False, 0, now, now)  # fmt: skip
    comms.quotes[quote.quote_id] = quote
    return quote


def _behind(best: Decimal | None, cents: int) -> Decimal:
    """`cents` below `best`, or 0 (declined) when there is no bid or nothing is left."""
    if best is None:
        return Decimal(0)
    price = best - cents * CENT
    return price if price >= CENT else Decimal(0)


def desk_considers(state: SandboxState, quote: Quote) -> None:
    """The desk, as the RFQ's creator, accepts the user's `quote` if a side beats the book."""
    book = state.books[quote.rfq.market_ticker]
    best_bid, best_ask = book.best("bid"), book.best("ask")
    # What selling each side on the book would fetch the desk instead.
    gains = {
        "yes": quote.yes_bid - (best_bid or Decimal(0)) if quote.yes_bid else None,
        "no": quote.no_bid - (1 - best_ask if best_ask else Decimal(0)) if quote.no_bid else None,
    }
    offered = {side: gain for side, gain in gains.items() if gain is not None and gain >= 0}
    if offered:
        accept(state, quote, max(offered, key=lambda side: (offered[side], side == "yes")))


def accept(state: SandboxState, quote: Quote, side: str) -> None:
    """The RFQ's creator accepts `side` of `quote`; the desk confirms its own quotes at once."""
    if state.markets[quote.rfq.market_ticker]["status"] != "active":
        raise KalshiError(400, MARKET_CLOSED)  # before anything changes
    now = state.now_ms()
    quote.status, quote.accepted_side, quote.updated_ms = "accepted", side, now
    quote.stamps["accepted"] = now
    if not quote.mine:
        confirm(state, quote)


def confirm(state: SandboxState, quote: Quote) -> None:
    """The quoter confirms `quote`: it executes, and its RFQ closes."""
    market = state.markets[quote.rfq.market_ticker]
    if market["status"] != "active":
        raise KalshiError(400, MARKET_CLOSED)
    side, rfq, now = quote.accepted_side, quote.rfq, state.now_ms()
    count = quote.contracts(side)
    # The quoter buys the accepted side at its bid; the RFQ's creator the other side.
    quoter_side: BookSide = "bid" if side == "yes" else "ask"
    yes_price = quote.yes_bid if side == "yes" else 1 - quote.no_bid
    taker = maker = None
    if rfq.mine:
        creator_side: BookSide = "ask" if quoter_side == "bid" else "bid"
        taker = party_order(
            state, rfq.market_ticker, creator_side, yes_price, count, rfq.subaccount
        )
        quote.order_ids["rfq_creator"] = taker.order_id
    if quote.mine:
        maker = party_order(
            state, rfq.market_ticker, quoter_side, yes_price, count, quote.subaccount
        )
        quote.order_ids["creator"] = maker.order_id
    trade_off_book(state, rfq.market_ticker, count, yes_price, taker, maker)
    quote.status, quote.updated_ms = "executed", now
    quote.stamps.update(confirmed=now, executed=now)
    rfq.status, rfq.updated_ms = "closed", now
    for other in state.comms.quotes.values():
        if other.rfq is rfq and other.status in ("open", "accepted"):
            cancel_quote(state, other, "rfq_closed")


def cancel_quote(state: SandboxState, quote: Quote, reason: str) -> None:
    """`quote` can no longer be accepted or confirmed."""
    now = state.now_ms()
    quote.status, quote.updated_ms, quote.cancellation_reason = "cancelled", now, reason
    quote.stamps["cancelled"] = now


def party_order(
    state: SandboxState, ticker: str, book_side: BookSide, yes_price: Decimal, count: Decimal,
    subaccount: int,
) -> Order:  # fmt: skip
    """The sandbox user's order for its side of an off-book trade, about to fill whole."""
    client_order_id = state.new_id()
    claim_client_order_id(state, client_order_id)
    now = state.now_ms()
    order = Order(
        seq=len(state.orders) + 1,
        order_id=state.new_id(),
        client_order_id=client_order_id,
        ticker=ticker,
        side="yes",
        action="buy" if book_side == "bid" else "sell",
        book_side=book_side,
        yes_price=yes_price,
        initial_count=count,
        remaining_count=count,
        self_trade_prevention_type="taker_at_cross",
        created_ms=now,
        updated_ms=now,
        subaccount=subaccount,
    )
    state.orders[order.order_id] = order
    event = state.markets[ticker]["event_ticker"]
    state.accounts[subaccount].position(ticker, event, now)
    return order
