"""RFQs, quotes and block trade proposals as the sandbox keeps them, in the shapes of
Kalshi's spec 3.30 (RFQ, Quote, BlockTradeProposal).

Two parties exist: the sandbox's user (every key signs for it) and the sandbox desk, a
simulated member that quotes the user's RFQs, asks for quotes of its own and takes part
in block trades (sandbox/rfq_flow.py says how it behaves).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Final

from signing_proxy.sandbox.wire import JSON, SANDBOX_USER_ID, dollars, fixed_point, iso_ms

# Invented, fixed ids: the public communications ids and the desk's user id.
SANDBOX_COMMS_ID: Final = "c0a1f3e2-55d4-4b6a-8e7f-3b2a1c0d9e8f"
DESK_COMMS_ID: Final = "e4d2c1b0-9a8f-4e7d-b6c5-a4b3c2d1e0f9"
DESK_USER_ID: Final = "7d3b9e21-4c5a-4f68-b1d2-9e8f7a6b5c4d"


@dataclass(slots=True)
class Rfq:
    """A request for quote: `mine` when the sandbox's user asked it, else the desk."""

    rfq_id: str
    seq: int  # creation order, for listings and cursors
    mine: bool
    market_ticker: str
    contracts: Decimal | None  # None: sized by target cost
    target_cost: Decimal | None
    rest_remainder: bool
    subaccount: int
    created_ms: int
    updated_ms: int
    status: str = "open"  # open | closed
    cancelled_ms: int | None = None
    cancellation_reason: str = ""

    def to_json(self) -> JSON:
        """Kalshi's RFQ, private fields only for its creator."""
        rfq: JSON = {
            "contracts_fp": fixed_point(self.contracts or Decimal(0)),
            "created_ts": iso_ms(self.created_ms),
            "creator_id": SANDBOX_COMMS_ID if self.mine else DESK_COMMS_ID,
            "id": self.rfq_id,
            "market_ticker": self.market_ticker,
            "rest_remainder": self.rest_remainder,
            "status": self.status,
            "updated_ts": iso_ms(self.updated_ms),
        }
        if self.target_cost is not None:
            rfq["target_cost_dollars"] = dollars(self.target_cost)
        if self.mine:
            rfq["creator_user_id"] = SANDBOX_USER_ID
            rfq["creator_subaccount"] = self.subaccount
        if self.cancelled_ms is not None:
            rfq["cancelled_ts"] = iso_ms(self.cancelled_ms)
            rfq["cancellation_reason"] = self.cancellation_reason
        return rfq


@dataclass(slots=True)
class Quote:
    """A quote on `rfq`: the quoter buys YES at `yes_bid` or NO at `no_bid` (0: declined)."""

    quote_id: str
    seq: int
    rfq: Rfq
    mine: bool  # the sandbox's user quoted (else the desk)
    yes_bid: Decimal
    no_bid: Decimal
    rest_remainder: bool
    post_only: bool
    subaccount: int
    created_ms: int
    updated_ms: int
    status: str = "open"  # open | accepted | confirmed | executed | cancelled
    accepted_side: str = ""
    stamps: dict[str, int] = field(default_factory=dict)  # accepted, confirmed, ...
    cancellation_reason: str = ""
    order_ids: dict[str, str] = field(default_factory=dict)  # "creator" | "rfq_creator"

    def contracts(self, side: str) -> Decimal:
        """Contracts traded when `side` is accepted: the RFQ's, or what its target buys."""
        if self.rfq.contracts is not None:
            return self.rfq.contracts
        bid = self.yes_bid if side == "yes" else self.no_bid
        if not bid or self.rfq.target_cost is None:
            return Decimal(0)
        # The RFQ's creator pays 1 - bid a contract on the accepted side.
        return (self.rfq.target_cost / (1 - bid)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)

    def to_json(self) -> JSON:
        """Kalshi's Quote; a party's private fields only when that party is the caller."""
        quote: JSON = {
            "contracts_fp": fixed_point(self.rfq.contracts or Decimal(0)),
            "created_ts": iso_ms(self.created_ms),
            "creator_id": SANDBOX_COMMS_ID if self.mine else DESK_COMMS_ID,
            "id": self.quote_id,
            "market_ticker": self.rfq.market_ticker,
            "no_bid_dollars": dollars(self.no_bid),
            "rest_remainder": self.rest_remainder,
            "rfq_creator_id": SANDBOX_COMMS_ID if self.rfq.mine else DESK_COMMS_ID,
            "rfq_id": self.rfq.rfq_id,
            "status": self.status,
            "updated_ts": iso_ms(self.updated_ms),
            "yes_bid_dollars": dollars(self.yes_bid),
        }
        if self.rfq.target_cost is not None:
            quote["rfq_target_cost_dollars"] = dollars(self.rfq.target_cost)
            quote["yes_contracts_fp"] = fixed_point(self.contracts("yes"))
            quote["no_contracts_fp"] = fixed_point(self.contracts("no"))
        if self.accepted_side:
            quote["accepted_side"] = self.accepted_side
        for stamp, ms in self.stamps.items():
            quote[f"{stamp}_ts"] = iso_ms(ms)
        if self.cancellation_reason:
            quote["cancellation_reason"] = self.cancellation_reason
        quote.update(self._private())
        return quote

    def _private(self) -> JSON:
        private: JSON = {}
        if self.mine:
            private.update(creator_user_id=SANDBOX_USER_ID, creator_subaccount=self.subaccount,
                           post_only=self.post_only)  # fmt: skip
            if "creator" in self.order_ids:
                private["creator_order_id"] = self.order_ids["creator"]
        if self.rfq.mine:
            private.update(rfq_creator_user_id=SANDBOX_USER_ID,
                           rfq_creator_subaccount=self.rfq.subaccount)  # fmt: skip
            if "rfq_creator" in self.order_ids:
                private["rfq_creator_order_id"] = self.order_ids["rfq_creator"]
        return private


@dataclass(slots=True)
class BlockTrade:
    """A block trade proposal: the buyer buys YES from the seller at `price`."""

    proposal_id: str
    seq: int
    proposer: str  # user id
    buyer: str  # user id (the sandbox's user or the desk)
    seller: str
    buyer_subaccount: int
    seller_subaccount: int
    market_ticker: str
    price: Decimal  # YES price, dollars
    count: Decimal
    maker_side: str
    expires_ms: int
    created_ms: int
    updated_ms: int
    status: str = "open"  # open | executed | expired
    accepted: dict[str, int] = field(default_factory=dict)  # "buyer" | "seller" -> ms
    executed_ms: int | None = None
    order_ids: dict[str, str] = field(default_factory=dict)  # "buyer" | "seller"

    def to_json(self) -> JSON:
        """Kalshi's BlockTradeProposal: a party's ids are shown only to that party."""
        sides = {"buyer": self.buyer, "seller": self.seller}
        proposal: JSON = {
            "buyer_accepted": "buyer" in self.accepted,
            "centicount": int(self.count * 100),
            "created_ts": iso_ms(self.created_ms),
            "expiration_ts": iso_ms(self.expires_ms),
            "id": self.proposal_id,
            "maker_side": self.maker_side,
            "market_ticker": self.market_ticker,
            "price_centi_cents": int(self.price * 10_000),
            "proposer_user_id": self.proposer,
            "seller_accepted": "seller" in self.accepted,
            "status": self.status,
            "updated_ts": iso_ms(self.updated_ms),
        }
        for side, user in sides.items():
            proposal[f"{side}_user_id"] = user if user == SANDBOX_USER_ID else ""
            if side in self.accepted:
                proposal[f"{side}_accepted_ts"] = iso_ms(self.accepted[side])
            if side in self.order_ids and user == SANDBOX_USER_ID:
                proposal[f"{side}_order_id"] = self.order_ids[side]
        if self.executed_ms is not None:
            proposal["executed_ts"] = iso_ms(self.executed_ms)
        return proposal


class Communications:
    """Every RFQ, quote and block trade proposal, and the desk's own random stream."""

    def __init__(self, seed: int | None) -> None:
        self.rfqs: dict[str, Rfq] = {}
        self.quotes: dict[str, Quote] = {}
        self.proposals: dict[str, BlockTrade] = {}
        self.seq = 0
        # The desk's choices and ids: with a seed, the same every run.
        self.rng = random.Random(None if seed is None else f"sandbox-desk:{seed}")  # noqa: S311

    def next_seq(self) -> int:
        """The next number in creation order, shared by RFQs, quotes and proposals."""
        self.seq += 1
        return self.seq

    def new_id(self) -> str:
        """A version 4 UUID from the desk's stream."""
        bits = self.rng.getrandbits(128)
        return str(uuid.UUID(int=bits, version=4))
