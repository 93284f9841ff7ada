"""Block trade proposals (`/communications/block-trade-proposals`, spec 3.30 only): a
trade agreed between two named members at a price, executed away from the book once
both parties accept it.

The sandbox knows two members: its user and the desk (sandbox/comms.py). A proposal
names each of them once (or the user twice, with two different subaccounts); the desk
accepts any proposal it is a party to at once, the user accepts through the endpoint,
as whichever party its `subaccount` names (the only one, when it is one party). When
both have accepted it executes: the buyer buys YES from the seller at the price, each
side of the user's gets an order and a fill, and the trade prints with
`is_block_trade: true`. Past `expiration_ts` a proposal still open is `expired`.

Kalshi documents neither the values of `maker_side` nor the proposal's statuses: here
`maker_side` is `yes` (the buyer of YES makes; the seller takes and pays the taker fee)
or `no`, and a status is `open`, `executed` or `expired`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.comms import DESK_USER_ID, BlockTrade
from signing_proxy.sandbox.matching import subaccount_number, trade_off_book
from signing_proxy.sandbox.order import BookSide
from signing_proxy.sandbox.rfq_flow import MARKET_CLOSED, party_order
from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import (
    JSON,
    NOT_FOUND,
    SANDBOX_USER_ID,
    Call,
    KalshiError,
    decode_body,
    decode_cursor,
    first_param,
    page_limit,
    paginate,
    refused,
)

_PROPOSE_TYPES: Final = {
    "buyer_user_id": "string", "buyer_subtrader_id": "string", "buyer_subaccount": "int",
    "seller_user_id": "string", "seller_subtrader_id": "string", "seller_subaccount": "int",
    "market_ticker": "string", "price_centi_cents": "int64", "centicount": "int64",
    "maker_side": "string", "expiration_ts": "string",
}  # fmt: skip
_ACCEPT_TYPES: Final = {"subtrader_id": "string", "subaccount": "int"}
# Not recorded from Kalshi: the spec names the status (403), not the body.
_FORBIDDEN: Final = kalshi_error(
    "forbidden", "the sandbox's user may propose only block trades it is a party to"
)
_FCM_ONLY: Final = kalshi_error("forbidden", "subtrader ids require an FCM member caller")


def _parties(state: SandboxState, doc: JSON) -> tuple[str, str, int, int]:
    """(buyer, seller, buyer's subaccount, seller's): known members, the user among them."""
    if doc.get("buyer_subtrader_id") or doc.get("seller_subtrader_id"):
        raise KalshiError(403, _FCM_ONLY)
    buyer, seller = doc.get("buyer_user_id"), doc.get("seller_user_id")
    known = (SANDBOX_USER_ID, DESK_USER_ID)
    if buyer not in known or seller not in known:
        raise refused("buyer_user_id and seller_user_id must name known members")
    if SANDBOX_USER_ID not in (buyer, seller):
        raise KalshiError(403, _FORBIDDEN)
    buyer_sub = subaccount_number(state, doc.get("buyer_subaccount"))
    seller_sub = subaccount_number(state, doc.get("seller_subaccount"))
    if buyer == seller and buyer_sub == seller_sub:
        raise refused("a member cannot trade with itself in one subaccount")
    return str(buyer), str(seller), buyer_sub, seller_sub


def _expiry(value: object, now_ms: int) -> int:
    """`expiration_ts` (RFC 3339) in milliseconds; it must lie ahead."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise refused("expiration_ts must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise refused("expiration_ts must carry a time zone")
    expires = int(moment.timestamp() * 1000)
    if expires <= now_ms:
        raise refused("expiration_ts has passed")
    return expires


def _terms(doc: JSON) -> tuple[Decimal, Decimal, str]:
    """(YES price, contracts, maker side) of a proposal, checked."""
    price, count = doc.get("price_centi_cents"), doc.get("centicount")
    if not isinstance(price, int) or price % 100 or not 100 <= price <= 9_900:
        raise refused("price_centi_cents must be whole cents from 100 to 9900")
    if not isinstance(count, int) or count <= 0:
        raise refused("centicount must be positive")
    maker_side = doc.get("maker_side")
    if maker_side not in ("yes", "no"):
        raise refused("maker_side must be yes or no")
    return Decimal(price) / 10_000, Decimal(count) / 100, str(maker_side)


def propose(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /communications/block-trade-proposals; the desk accepts its side at once."""
    doc = decode_body(call.body, "ProposeBlockTradeRequest", _PROPOSE_TYPES)
    buyer, seller, buyer_sub, seller_sub = _parties(state, doc)
    market = state.markets.get(str(doc.get("market_ticker") or ""))
    if market is None:
        raise refused("market_ticker names no market")
    if market["status"] != "active":
        raise KalshiError(400, MARKET_CLOSED)
    price, count, maker_side = _terms(doc)
    now = state.now_ms()
    expires = _expiry(doc.get("expiration_ts"), now)
    comms = state.comms
    proposal = BlockTrade(state.new_id(), comms.next_seq(), SANDBOX_USER_ID, buyer, seller,
                          buyer_sub, seller_sub, market["ticker"], price, count, maker_side,
                          expires, now, now)  # fmt: skip
    for side, user in (("buyer", buyer), ("seller", seller)):
        if user == DESK_USER_ID:
            proposal.accepted[side] = now
    comms.proposals[proposal.proposal_id] = proposal
    return 201, {"block_trade_proposal_id": proposal.proposal_id}


def _expire(state: SandboxState) -> None:
    now = state.now_ms()
    for proposal in state.comms.proposals.values():
        if proposal.status == "open" and proposal.expires_ms <= now:
            proposal.status, proposal.updated_ms = "expired", now


def list_proposals(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /communications/block-trade-proposals: newest first, by market and status."""
    _expire(state)
    limit = page_limit(call.query, "GetBlockTradeProposals", 1000, 100)
    after = decode_cursor(call.query, "proposals")
    market, status = first_param(call.query, "market_ticker"), first_param(call.query, "status")
    rows = [
        proposal
        for proposal in sorted(state.comms.proposals.values(), key=lambda p: -p.seq)
        if (not market or proposal.market_ticker == market)
        and (not status or proposal.status == status)
    ]
    page, cursor = paginate(rows, lambda p: -p.seq, after, limit, "proposals")
    return 200, {"block_trade_proposals": [p.to_json() for p in page], "cursor": cursor}


def _side_of(proposal: BlockTrade, doc: JSON) -> str:
    """The party the user accepts as: the one its `subaccount` names, or its only one."""
    if doc.get("subtrader_id"):
        raise KalshiError(403, _FCM_ONLY)
    subaccount = doc.get("subaccount")
    sides = [
        side
        for side, user, number in (
            ("buyer", proposal.buyer, proposal.buyer_subaccount),
            ("seller", proposal.seller, proposal.seller_subaccount),
        )
        if user == SANDBOX_USER_ID and (subaccount is None or subaccount == number)
    ]
    if len(sides) != 1:
        raise refused("subaccount names none of the user's sides of this proposal")
    return sides[0]


def accept_proposal(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST .../{id}/accept: the user accepts its side; with both sides in, it executes."""
    doc = decode_body(call.body or b"{}", "AcceptBlockTradeProposalRequest", _ACCEPT_TYPES)
    _expire(state)
    proposal = state.comms.proposals.get(call.params[0])
    if proposal is None:
        raise KalshiError(404, NOT_FOUND)
    if proposal.status != "open":
        raise refused(f"the proposal is {proposal.status}")
    side = _side_of(proposal, doc)
    if side in proposal.accepted:
        raise refused(f"the {side} has accepted already")
    if state.markets[proposal.market_ticker]["status"] != "active":
        raise KalshiError(400, MARKET_CLOSED)
    now = state.now_ms()
    proposal.accepted[side], proposal.updated_ms = now, now
    if len(proposal.accepted) == 2:
        _execute(state, proposal)
    return 204, {}


def _execute(state: SandboxState, proposal: BlockTrade) -> None:
    """Both sides accepted: the buyer buys YES from the seller, off the book."""
    orders = {}
    for side, user, number in (
        ("buyer", proposal.buyer, proposal.buyer_subaccount),
        ("seller", proposal.seller, proposal.seller_subaccount),
    ):
        if user == SANDBOX_USER_ID:
            book_side: BookSide = "bid" if side == "buyer" else "ask"
            orders[side] = party_order(state, proposal.market_ticker, book_side,
                                       proposal.price, proposal.count, number)  # fmt: skip
            proposal.order_ids[side] = orders[side].order_id
    maker, taker = ("buyer", "seller") if proposal.maker_side == "yes" else ("seller", "buyer")
    trade_off_book(state, proposal.market_ticker, proposal.count, proposal.price,
                   orders.get(taker), orders.get(maker), block=True)  # fmt: skip
    proposal.status = "executed"
    proposal.executed_ms = proposal.updated_ms = state.now_ms()
