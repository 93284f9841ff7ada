"""Simulated market makers: between users' orders they add and pull contracts at the
levels near the touch, so the book, the feed and the quotes move as a market's do.

Seeded, so a run with `--seed` sees the same moves in the same order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from signing_proxy.sandbox.book import CENT, Resting
from signing_proxy.sandbox.matching import requote
from signing_proxy.sandbox.order import BookSide
from signing_proxy.sandbox.state import SandboxState

# How many contracts one move adds or pulls, at most.
_MOVE: Final = 25


def move_all(state: SandboxState, rng: random.Random) -> None:
    """One maker move on every active market, in the markets' order."""
    for ticker, market in list(state.markets.items()):
        if market["status"] == "active":
            move_once(state, rng, ticker)


def move_once(state: SandboxState, rng: random.Random, ticker: str) -> None:
    """One maker move on `ticker`: add or pull contracts at one level near the touch."""
    book = state.books[ticker]
    side: BookSide = rng.choice(("bid", "ask"))
    best = book.best(side)
    other = book.best("ask" if side == "bid" else "bid")
    if best is None:
        return
    # A maker never crosses: its new contracts go at the touch or up to two cents behind it.
    step = -CENT if side == "bid" else CENT
    price = best + step * rng.randint(0, 2)
    amount = Decimal(rng.randint(1, _MOVE))
    makers = [r for r in book.side(side).get(price, ()) if r.order is None]
    if makers and rng.random() < 0.4:
        pulled = min(amount, makers[0].remaining)
        book.take(side, makers[0], pulled)
    elif CENT <= price <= 1 - CENT and (other is None or price != other):
        book.add(side, Resting(price, amount))
    requote(state, ticker)


async def run_makers(
    state: SandboxState, interval: Callable[[], float], seed: int | None = None
) -> None:
    """Move the makers every `interval()` seconds until cancelled."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    # Every market moves each interval, so a feed of one market moves as often as the
    # interval says (the old synthetic feed's pace), not once per pass over all of them.
    while True:
        await asyncio.sleep(interval())
        move_all(state, rng)
