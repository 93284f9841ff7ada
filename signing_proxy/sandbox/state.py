"""The sandbox exchange's state in memory: markets, orders, positions, balance, requests seen."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.markets import generate_markets
from signing_proxy.sandbox.wire import (
    JSON,
    NOT_FOUND,
    SANDBOX_USER_ID,
    STARTING_BALANCE,
    KalshiError,
    dollars,
    fixed_point,
    iso_ms,
)

# --- state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request as the sandbox received it, for tests to inspect."""

    method: str
    raw_path: str  # path and query exactly as received (request.raw_path), never decoded
    key_id: str | None
    authenticated: bool  # a valid signature was verified
    auth_error: str | None  # Kalshi's error `details`, else its `code`, when verification failed
    timestamp_ms: int | None
    body: bytes  # as received, byte for byte


@dataclass(slots=True)
class Order:
    seq: int
    order_id: str
    client_order_id: str
    ticker: str
    side: str  # legacy yes|no, kept as the client sent it
    action: str  # legacy buy|sell
    book_side: str  # bid buys YES; ask sells YES (that is, buys NO)
    yes_price: Decimal
    initial_count: Decimal
    remaining_count: Decimal
    self_trade_prevention_type: str
    created_ms: int
    updated_ms: int
    status: str = "resting"
    fill_count: Decimal = Decimal(0)
    fill_cost: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)

    def to_json(self) -> JSON:
        return {
            "action": self.action,
            "book_side": self.book_side,
            "client_order_id": self.client_order_id,
            "created_time": iso_ms(self.created_ms),
            "fill_count_fp": fixed_point(self.fill_count),
            "initial_count_fp": fixed_point(self.initial_count),
            "last_update_time": iso_ms(self.updated_ms),
            "maker_fees_dollars": "0.000000",
            "maker_fill_cost_dollars": "0.000000",
            "no_price_dollars": dollars(1 - self.yes_price),
            "order_id": self.order_id,
            "outcome_side": "yes" if self.book_side == "bid" else "no",
            "remaining_count_fp": fixed_point(self.remaining_count),
            "self_trade_prevention_type": self.self_trade_prevention_type,
            "side": self.side,
            "status": self.status,
            "subaccount_number": 0,
            "taker_fees_dollars": dollars(self.fees, 6),
            "taker_fill_cost_dollars": dollars(self.fill_cost, 6),
            "ticker": self.ticker,
            "type": "limit",
            "user_id": SANDBOX_USER_ID,
            "yes_price_dollars": dollars(self.yes_price),
        }


@dataclass(slots=True)
class Position:
    ticker: str
    event_ticker: str
    updated_ms: int
    position: Decimal = Decimal(0)  # positive: YES contracts; negative: NO contracts
    exposure: Decimal = Decimal(0)  # what the open contracts cost
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    traded: Decimal = Decimal(0)
    traded_count: Decimal = Decimal(0)


class SandboxState:
    """What the sandbox remembers: keys, markets, orders, positions, balance, requests seen."""

    def __init__(
        self,
        keys: Mapping[str, RSAPublicKey],
        *,
        clock: Callable[[], float],
        window_ms: int,
        require_auth_everywhere: bool,
        v1_orders_live: bool = False,
    ) -> None:
        self.keys: dict[str, RSAPublicKey] = dict(keys)
        self.clock = clock
        self.window_ms = window_ms
        self.require_auth_everywhere = require_auth_everywhere
        # Kalshi removed the V1 order writes; True serves them as they were (tests only).
        self.v1_orders_live = v1_orders_live
        self.markets: dict[str, JSON] = {m["ticker"]: m for m in generate_markets()}
        self.orders: dict[str, Order] = {}
        # Kalshi never lets a client_order_id be reused, even after the order is gone.
        self.client_order_ids: set[str] = set()
        self.positions: dict[str, Position] = {}
        self.balance: Decimal = STARTING_BALANCE
        self.seen: deque[SeenRequest] = deque(maxlen=10_000)

    def now_ms(self) -> int:
        """The sandbox clock in milliseconds since the epoch."""
        return int(self.clock() * 1000)


SANDBOX_STATE: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)


def market_or_404(state: SandboxState, ticker: str) -> JSON:
    market = state.markets.get(ticker)
    if market is None:
        raise KalshiError(404, NOT_FOUND)
    return market


def order_or_404(state: SandboxState, order_id: str, *, resting: bool = False) -> Order:
    order = state.orders.get(order_id)
    if order is None or (resting and order.status != "resting"):
        raise KalshiError(404, NOT_FOUND)
    return order


def claim_client_order_id(state: SandboxState, client_order_id: str) -> None:
    if client_order_id in state.client_order_ids:
        raise KalshiError(
            409, kalshi_error("order_already_exists", "order already exists", service="exchange")
        )
    state.client_order_ids.add(client_order_id)
