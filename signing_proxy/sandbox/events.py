"""What the matching engine tells the WebSocket feed: levels, trades, fills, orders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from signing_proxy.sandbox.order import Order
from signing_proxy.sandbox.state import Fill, SandboxState, Trade


@dataclass(frozen=True, slots=True)
class LevelChanged:
    """Contracts bid at one price changed by `delta` (side yes: YES bids; no: NO bids)."""

    ticker: str
    side: str
    price: Decimal
    delta: Decimal
    ms: int


@dataclass(frozen=True, slots=True)
class Traded:
    """A trade printed."""

    trade: Trade


@dataclass(frozen=True, slots=True)
class Filled:
    """An account's order filled (`position` is its position in the market after)."""

    fill: Fill
    position: Decimal


@dataclass(frozen=True, slots=True)
class OrderChanged:
    """An order was placed, filled, amended, decreased or cancelled."""

    order: Order


@dataclass(frozen=True, slots=True)
class QuoteChanged:
    """The market's best bid or ask, or their sizes, changed."""

    ticker: str


@dataclass(frozen=True, slots=True)
class MarketLifecycle:
    """A market was determined or settled (market_lifecycle_v2's event_type)."""

    ticker: str
    event_type: str
    result: str
    ms: int


Event = LevelChanged | Traded | Filled | OrderChanged | QuoteChanged | MarketLifecycle
Listener = Callable[[Event], None]


def emit(state: SandboxState, event: Event) -> None:
    """Tell every listener (one per WebSocket connection) about `event`."""
    for listener in list(state.listeners):
        listener(event)
