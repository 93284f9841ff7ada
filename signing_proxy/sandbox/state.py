"""The sandbox exchange's state in memory: markets, orders, positions, balance, requests seen."""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.book import Book, seeded
from signing_proxy.sandbox.comms import Communications
from signing_proxy.sandbox.groups import OrderGroup
from signing_proxy.sandbox.markets import generate_markets
from signing_proxy.sandbox.order import Order
from signing_proxy.sandbox.ratelimit import RateLimiter
from signing_proxy.sandbox.wire import (
    JSON,
    NOT_FOUND,
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


@dataclass(slots=True)
class Account:
    """One subaccount (0 is the primary): its cash and its positions by market."""

    number: int
    balance: Decimal = STARTING_BALANCE
    positions: dict[str, Position] = field(default_factory=dict)

    def position(self, ticker: str, event_ticker: str, now_ms: int) -> Position:
        """The position in `ticker`, opened flat if there is none yet."""
        return self.positions.setdefault(ticker, Position(ticker, event_ticker, now_ms))


@dataclass(frozen=True, slots=True)
class Trade:
    """Contracts that changed hands at one price."""

    trade_id: str
    ticker: str
    count: Decimal
    yes_price: Decimal
    taker_book_side: str
    created_ms: int
    block: bool = False  # agreed as a block trade, away from the book

    def to_json(self) -> JSON:
        """Kalshi's Trade."""
        return {
            "count_fp": fixed_point(self.count),
            "created_time": iso_ms(self.created_ms),
            "is_block_trade": self.block,
            "no_price_dollars": dollars(1 - self.yes_price),
            "taker_book_side": self.taker_book_side,
            "taker_outcome_side": "yes" if self.taker_book_side == "bid" else "no",
            "taker_side": "yes" if self.taker_book_side == "bid" else "no",
            "ticker": self.ticker,
            "trade_id": self.trade_id,
            "yes_price_dollars": dollars(self.yes_price),
        }


@dataclass(frozen=True, slots=True)
class Fill:
    """One side of a trade, as the account that took part sees it."""

    fill_id: str
    trade_id: str
    order: Order
    count: Decimal
    yes_price: Decimal
    is_taker: bool
    fee: Decimal
    created_ms: int

    def to_json(self) -> JSON:
        """Kalshi's Fill."""
        order = self.order
        return {
            "action": order.action,
            "book_side": order.book_side,
            "count_fp": fixed_point(self.count),
            "created_time": iso_ms(self.created_ms),
            "exchange_index": 0,
            "fee_cost": dollars(self.fee, 6),
            "fill_id": self.fill_id,
            "is_taker": self.is_taker,
            "market_ticker": order.ticker,
            "no_price_dollars": dollars(1 - self.yes_price),
            "order_id": order.order_id,
            "outcome_side": "yes" if order.book_side == "bid" else "no",
            "side": order.side,
            "subaccount_number": order.subaccount,
            "ticker": order.ticker,
            "trade_id": self.fill_id,  # Kalshi: the legacy name of fill_id, same value
            "ts": self.created_ms // 1000,
            "yes_price_dollars": dollars(self.yes_price),
        }


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What Kalshi lists of an API key besides its public key (GET /api_keys)."""

    name: str
    scopes: tuple[str, ...] = ("read", "write")
    subaccount: int | None = None  # None: the key may act on every subaccount


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
        rate_limit_tier: str | None = None,
        seed: int | None = None,
    ) -> None:
        # Key id -> public key: what signatures are verified against (and all a key is).
        self.keys: dict[str, RSAPublicKey] = dict(keys)
        # What GET /api_keys lists of each key; the keys given at start are "sandbox".
        self.key_info: dict[str, KeyInfo] = {key_id: KeyInfo("sandbox") for key_id in keys}
        self.clock = clock
        self.window_ms = window_ms
        self.require_auth_everywhere = require_auth_everywhere
        # Kalshi removed the V1 order writes; True serves them as they were (tests only).
        self.v1_orders_live = v1_orders_live
        # Kalshi's rate limits of one tier, or none at all (the default).
        self.limiter = None if rate_limit_tier is None else RateLimiter(rate_limit_tier, clock)
        self.markets: dict[str, JSON] = {m["ticker"]: m for m in generate_markets(clock())}
        # One book per market, market makers quoting around each market's generated price.
        self.books: dict[str, Book] = {
            ticker: seeded(
                Decimal(m["yes_bid_dollars"]),
                Decimal(m["yes_ask_dollars"]) if m["status"] == "active" else Decimal(0),
                Decimal(m["yes_bid_size_fp"]),
            )
            if m["status"] == "active"
            else Book()
            for ticker, m in self.markets.items()
        }
        self.orders: dict[str, Order] = {}
        # Kalshi never lets a client_order_id be reused, even after the order is gone.
        self.client_order_ids: set[str] = set()
        self.accounts: dict[int, Account] = {0: Account(0)}
        self.trades: list[Trade] = []
        self.settlements: list[JSON] = []
        self.started_ms = self.now_ms()
        self.transfer_ids: set[str] = set()
        self.transfers: list[JSON] = []  # Kalshi's SubaccountTransfer, oldest first
        self.netting: set[int] = set()  # subaccounts with netting turned on
        # One per WebSocket connection: called with every event of the engine (events.py).
        self.listeners: list[Callable[[Any], None]] = []
        # The book's levels as last announced, by market: (yes|no, price) -> contracts.
        self.announced: dict[str, dict[tuple[str, Decimal], Decimal]] = {
            ticker: levels_of(book) for ticker, book in self.books.items()
        }
        self.fills: list[Fill] = []
        self.order_groups: dict[str, OrderGroup] = {}
        self.group_of: dict[str, OrderGroup] = {}  # order id -> the group it was placed in
        self.seen: deque[SeenRequest] = deque(maxlen=10_000)
        self.comms = Communications(seed)  # RFQs, quotes, block trades, and the desk
        self.grants: list[JSON] = []  # API usage level grants (POST .../upgrade)
        self.intra_transfers: list[JSON] = []  # IntraExchangeInstanceTransfer, oldest first
        self.allocation: JSON = {"allocations": [], "resting_margin_reservation": "sum"}
        # The ids' own stream: with a seed, the same calls get the same ids every run.
        self._ids = random.Random(None if seed is None else f"sandbox-ids:{seed}")  # noqa: S311

    @property
    def balance(self) -> Decimal:
        """The primary account's cash."""
        return self.accounts[0].balance

    @property
    def positions(self) -> dict[str, Position]:
        """The primary account's positions."""
        return self.accounts[0].positions

    def now_ms(self) -> int:
        """The sandbox clock in milliseconds since the epoch."""
        return int(self.clock() * 1000)

    def new_id(self) -> str:
        """A fresh id (orders, trades, fills, groups, keys), a version 4 UUID as Kalshi's are."""
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))


def levels_of(book: Book) -> dict[tuple[str, Decimal], Decimal]:
    """The book as Kalshi shows it: YES bids, and NO bids (a YES ask at p is a NO bid at 1 - p)."""
    levels = {("yes", price): size for price, size in book.depth("bid")}
    levels.update({("no", 1 - price): size for price, size in book.depth("ask")})
    return levels


SANDBOX_STATE: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)


def market_or_404(state: SandboxState, ticker: str) -> JSON:
    """The market `ticker`, or Kalshi's 404."""
    market = state.markets.get(ticker)
    if market is None:
        raise KalshiError(404, NOT_FOUND)
    return market


def order_or_404(state: SandboxState, order_id: str, *, resting: bool = False) -> Order:
    """The order `order_id` (only if resting, when asked), or Kalshi's 404."""
    order = state.orders.get(order_id)
    if order is None or (resting and order.status != "resting"):
        raise KalshiError(404, NOT_FOUND)
    return order


def claim_client_order_id(state: SandboxState, client_order_id: str) -> None:
    """Take `client_order_id` for good; Kalshi's 409 if it was ever used."""
    if client_order_id in state.client_order_ids:
        raise KalshiError(
            409, kalshi_error("order_already_exists", "order already exists", service="exchange")
        )
    state.client_order_ids.add(client_order_id)
