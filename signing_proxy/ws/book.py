"""Order books as Kalshi's orderbook channel describes them, kept from its snapshots and
deltas, so a client joining a book that is already streaming gets a snapshot of it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from signing_proxy.kalshi.orders import fixed_point

JSON = dict[str, Any]
_SIDES = ("yes", "no")
_ONE = Decimal(1)


class Book:
    """One market's resting bids per side (YES and NO prices as Kalshi sends them)."""

    __slots__ = ("levels", "market_id", "ticker")

    def __init__(self, ticker: str, market_id: str | None) -> None:
        self.ticker = ticker
        self.market_id = market_id
        self.levels: dict[str, dict[Decimal, Decimal]] = {"yes": {}, "no": {}}

    @classmethod
    def from_snapshot(cls, msg: JSON) -> Book:
        """The book an orderbook_snapshot's msg describes."""
        book = cls(str(msg.get("market_ticker")), msg.get("market_id"))
        for side in _SIDES:
            for level in msg.get(f"{side}_dollars_fp") or []:
                price, size = fixed_point(level[0]), fixed_point(level[1])
                if price is not None and size is not None and size > 0:
                    book.levels[side][price] = size
        return book

    def apply(self, msg: JSON) -> bool:
        """Apply an orderbook_delta's msg; False if it cannot be read (the book is then
        not to be trusted)."""
        side, price, delta = msg.get("side"), fixed_point(msg.get("price_dollars")), None
        delta = fixed_point(msg.get("delta_fp"))
        if side not in _SIDES or price is None or delta is None:
            return False
        levels = self.levels[str(side)]
        size = levels.get(price, Decimal(0)) + delta
        if size > 0:
            levels[price] = size
        else:
            levels.pop(price, None)
        return True

    def snapshot(self, use_yes_price: bool) -> JSON:
        """An orderbook_snapshot msg of the book now: each side lowest first, empty left out."""
        msg: JSON = {"market_ticker": self.ticker}
        if self.market_id is not None:
            msg["market_id"] = self.market_id
        for side in _SIDES:
            shown = sorted(
                (_shown(side, price, use_yes_price), size)
                for price, size in self.levels[side].items()
            )
            if shown:
                msg[f"{side}_dollars_fp"] = [[f"{p:.4f}", f"{n:.2f}"] for p, n in shown]
        return msg


def shown_delta(msg: JSON, use_yes_price: bool) -> JSON:
    """An orderbook_delta msg as a subscription with use_yes_price sees it."""
    if not use_yes_price or msg.get("side") != "no":
        return msg
    price = fixed_point(msg.get("price_dollars"))
    if price is None:
        return msg
    return {**msg, "price_dollars": f"{_ONE - price:.4f}"}


def _shown(side: str, price: Decimal, use_yes_price: bool) -> Decimal:
    """A NO bid's price as a subscription shows it: its own, or the YES price of it."""
    return _ONE - price if side == "no" and use_yes_price else price
