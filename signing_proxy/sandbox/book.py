"""One market's order book on the YES side, matched at price-time priority.

Bids buy YES, asks sell YES (a NO bid at q is a YES ask at 1 - q, so one book holds
both). Each price level is a queue: the earliest order at the best price fills first.
Simulated market makers rest beside the users' orders; they have no account.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from signing_proxy.sandbox.order import BookSide, Order

CENT: Final = Decimal("0.01")
# How deep the simulated market makers quote, in one-cent levels from the touch.
MAKER_LEVELS: Final = 3


@dataclass(slots=True)
class Resting:
    """Contracts waiting at one price: a user's order, or a market maker's (order None)."""

    price: Decimal
    remaining: Decimal
    order: Order | None = None


class Book:
    """Bids and asks by price, each level first come, first served."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[Decimal, deque[Resting]] = {}
        self.asks: dict[Decimal, deque[Resting]] = {}

    def side(self, side: BookSide) -> dict[Decimal, deque[Resting]]:
        """The levels of `side`."""
        return self.bids if side == "bid" else self.asks

    def add(self, side: BookSide, resting: Resting) -> None:
        """Queue `resting` at the back of its price level."""
        self.side(side).setdefault(resting.price, deque()).append(resting)

    def best(self, side: BookSide) -> Decimal | None:
        """The best price of `side` (highest bid, lowest ask), or None when it is empty."""
        levels = self.side(side)
        if not levels:
            return None
        return max(levels) if side == "bid" else min(levels)

    def crossing(self, taker: BookSide, limit: Decimal) -> Iterator[Resting]:
        """Resting contracts a `taker` order at `limit` can take, best price and oldest first."""
        makers = self.side("ask" if taker == "bid" else "bid")
        prices = sorted(makers, reverse=taker == "ask")
        for price in prices:
            if (price > limit) if taker == "bid" else (price < limit):
                return
            yield from list(makers.get(price, ()))

    def take(self, maker_side: BookSide, resting: Resting, count: Decimal) -> None:
        """Remove `count` contracts from `resting`, and the entry once it is empty."""
        resting.remaining -= count
        if not resting.remaining:
            self._drop(maker_side, resting)

    def remove(self, side: BookSide, order: Order) -> None:
        """Take a user's order off the book (cancelled, or filled elsewhere)."""
        for resting in list(self.side(side).get(order.yes_price, ())):
            if resting.order is order:
                self._drop(side, resting)

    def depth(self, side: BookSide) -> list[tuple[Decimal, Decimal]]:
        """(price, contracts) per level of `side`, best first."""
        levels = self.side(side)
        prices = sorted(levels, reverse=side == "bid")
        return [(p, sum((r.remaining for r in levels[p]), Decimal(0))) for p in prices]

    def ahead_of(self, side: BookSide, order: Order) -> Decimal:
        """Contracts queued before `order` at its price (its queue position)."""
        ahead = Decimal(0)
        for resting in self.side(side).get(order.yes_price, ()):
            if resting.order is order:
                return ahead
            ahead += resting.remaining
        return ahead

    def _drop(self, side: BookSide, resting: Resting) -> None:
        levels = self.side(side)
        queue = levels.get(resting.price)
        if queue is None:
            return
        try:
            queue.remove(resting)
        except ValueError:
            return
        if not queue:
            del levels[resting.price]


def seeded(bid: Decimal, ask: Decimal, size: Decimal) -> Book:
    """A book where market makers quote `bid` / `ask` and the next levels out, deeper."""
    book = Book()
    for level in range(MAKER_LEVELS):
        depth = size + 40 * level
        if bid and bid - level * CENT >= CENT:
            book.add("bid", Resting(bid - level * CENT, depth))
        if ask and ask + level * CENT <= 1 - CENT:
            book.add("ask", Resting(ask + level * CENT, depth + 15))
    return book
