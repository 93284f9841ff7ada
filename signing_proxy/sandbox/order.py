"""One order as the sandbox exchange keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from signing_proxy.sandbox.wire import JSON, SANDBOX_USER_ID, dollars, fixed_point, iso_ms

BookSide = Literal["bid", "ask"]


@dataclass(slots=True)
class Order:
    seq: int
    order_id: str
    client_order_id: str
    ticker: str
    side: str  # legacy yes|no, kept as the client sent it
    action: str  # legacy buy|sell
    book_side: BookSide  # bid buys YES; ask sells YES (that is, buys NO)
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
    subaccount: int = 0
    order_group_id: str | None = None

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
            "subaccount_number": self.subaccount,
            **({"order_group_id": self.order_group_id} if self.order_group_id else {}),
            "taker_fees_dollars": dollars(self.fees, 6),
            "taker_fill_cost_dollars": dollars(self.fill_cost, 6),
            "ticker": self.ticker,
            "type": "limit",
            "user_id": SANDBOX_USER_ID,
            "yes_price_dollars": dollars(self.yes_price),
        }
