"""The sandbox's communications endpoints (`/communications/...`): RFQs and quotes as
state, in the shapes of Kalshi's spec 3.30, with the quote paths of spec 3.21 (by quote
id) and of 3.30 (under their RFQ). How they trade: sandbox/rfq_flow.py.

Choices where Kalshi's documents are silent (the sandbox's, not recorded from Kalshi):
a deleted RFQ is gone (404, no longer listed) and its open quotes are cancelled; a
deleted quote stays listed as `cancelled`; quotes are private to their two parties, so
another member's quote is 404; ids that are not UUIDs are 400, as spec 3.30 documents.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Final

from signing_proxy.kalshi.verifier import kalshi_error
from signing_proxy.sandbox.comms import DESK_USER_ID, SANDBOX_COMMS_ID, Quote, Rfq
from signing_proxy.sandbox.matching import subaccount_number
from signing_proxy.sandbox.rfq_flow import (
    MARKET_CLOSED,
    accept,
    cancel_quote,
    confirm,
    desk_considers,
    desk_quote,
)
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
    param_error,
    parse_count,
    parse_price,
    plain_int,
    refused,
)

MAX_OPEN_RFQS: Final = 100  # Kalshi's documented cap, per member
_ZERO: Final = re.compile(r"0(\.0{1,6})?")  # a declined side
_RFQ_TYPES: Final = {
    "market_ticker": "string", "contracts": "int", "contracts_fp": "string",
    "target_cost_centi_cents": "int64", "target_cost_dollars": "string",
    "target_cost_excludes_fees": "bool", "rest_remainder": "bool", "replace_existing": "bool",
    "subtrader_id": "string", "subaccount": "int", "mve_collection_ticker": "string",
}  # fmt: skip
_QUOTE_TYPES: Final = {
    "rfq_id": "string", "yes_bid": "string", "no_bid": "string", "rest_remainder": "bool",
    "post_only": "bool", "subaccount": "int",
}  # fmt: skip
_TOO_MANY: Final = kalshi_error(
    "too_many_open_rfqs", f"at most {MAX_OPEN_RFQS} open RFQs", service="exchange"
)


def _uuid(value: str, name: str) -> str:
    """`value` if it is a UUID; else the 400 spec 3.30 documents for a malformed id."""
    try:
        uuid.UUID(value)
    except ValueError:
        raise refused(f"{name} must be a UUID") from None
    return value


def self_filter(call: Call, name: str, operation: str) -> bool:
    """Whether the UserFilter parameter `name` asks for `self` (the only value it takes)."""
    value = first_param(call.query, name)
    if value not in ("", "self"):
        raise param_error(operation, "UserFilter", "oneof")
    return value == "self"


def comms_id(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /communications/id: the user's public communications id."""
    return 200, {"communications_id": SANDBOX_COMMS_ID}


# --- RFQs -------------------------------------------------------------------------------------


def list_rfqs(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /communications/rfqs: newest first, by market, event, status, creator."""
    limit = page_limit(call.query, "GetRFQs", 100, 100)
    after = decode_cursor(call.query, "rfqs")
    mine = self_filter(call, "user_filter", "GetRFQs")
    market, event = (
        first_param(call.query, "market_ticker"),
        first_param(call.query, "event_ticker"),
    )
    status, creator = first_param(call.query, "status"), first_param(call.query, "creator_user_id")
    raw_sub = first_param(call.query, "subaccount")
    subaccount = plain_int(raw_sub) if raw_sub else None
    if raw_sub and (subaccount is None or subaccount < 0):
        raise param_error("GetRFQs", "Subaccount", "numeric")
    rows = [
        rfq
        for rfq in sorted(state.comms.rfqs.values(), key=lambda rfq: -rfq.seq)
        if (not mine or rfq.mine)
        and (not market or rfq.market_ticker == market)
        and (not event or state.markets[rfq.market_ticker]["event_ticker"] == event)
        and (not status or rfq.status == status)
        and (not creator or creator == (SANDBOX_USER_ID if rfq.mine else DESK_USER_ID))
        and (subaccount is None or (rfq.mine and rfq.subaccount == subaccount))
    ]
    page, cursor = paginate(rows, lambda rfq: -rfq.seq, after, limit, "rfqs")
    return 200, {"cursor": cursor, "rfqs": [rfq.to_json() for rfq in page]}


def _size(doc: JSON) -> tuple[Decimal | None, Decimal | None]:
    """(contracts, target cost): exactly one of them, each given once or consistently."""
    whole, fp = doc.get("contracts"), doc.get("contracts_fp")
    contracts = parse_count(fp) if fp is not None else None
    if whole is not None:
        if whole < 1 or (contracts is not None and contracts != whole):
            raise refused("contracts and contracts_fp must agree, and be positive")
        contracts = Decimal(whole)
    centi, cost_text = doc.get("target_cost_centi_cents"), doc.get("target_cost_dollars")
    cost = None if cost_text is None else _dollars(cost_text, "target_cost_dollars")
    if centi is not None:
        if centi <= 0 or (cost is not None and cost * 10_000 != centi):
            raise refused("target_cost_centi_cents and target_cost_dollars must agree")
        cost = Decimal(centi) / 10_000
    if (contracts is None) == (cost is None):
        raise refused("give exactly one of contracts (or contracts_fp) and a target cost")
    return contracts, cost


def _dollars(value: object, name: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise refused(f"{name} must be a dollar amount") from None
    if not isinstance(value, str) or not amount.is_finite() or amount <= 0:
        raise refused(f"{name} must be a positive dollar amount")
    return amount


def create_rfq(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /communications/rfqs: open an RFQ; the desk quotes it at once."""
    doc = decode_body(call.body, "CreateRFQRequest", _RFQ_TYPES)
    if doc.get("subtrader_id") or doc.get("mve_collection_ticker"):
        raise refused("the sandbox has no FCM subtraders and no multivariate collections")
    market = state.markets.get(str(doc.get("market_ticker") or ""))
    if market is None:
        raise refused("market_ticker names no market")
    if market["status"] != "active":
        raise KalshiError(400, MARKET_CLOSED)
    contracts, cost = _size(doc)
    subaccount = subaccount_number(state, doc.get("subaccount"))
    comms, now = state.comms, state.now_ms()
    if doc.get("replace_existing"):
        for old in [rfq for rfq in comms.rfqs.values() if rfq.mine and rfq.status == "open"]:
            remove_rfq(state, old)
    if sum(rfq.mine and rfq.status == "open" for rfq in comms.rfqs.values()) >= MAX_OPEN_RFQS:
        raise KalshiError(409, _TOO_MANY)
    rfq = Rfq(state.new_id(), comms.next_seq(), True, market["ticker"], contracts, cost,
              bool(doc.get("rest_remainder")), subaccount, now, now)  # fmt: skip
    comms.rfqs[rfq.rfq_id] = rfq
    desk_quote(state, rfq)
    return 201, {"id": rfq.rfq_id}


def _rfq(state: SandboxState, rfq_id: str) -> Rfq:
    rfq = state.comms.rfqs.get(_uuid(rfq_id, "rfq_id"))
    if rfq is None:
        raise KalshiError(404, NOT_FOUND)
    return rfq


def get_rfq(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /communications/rfqs/{rfq_id}."""
    return 200, {"rfq": _rfq(state, call.params[0]).to_json()}


def remove_rfq(state: SandboxState, rfq: Rfq) -> None:
    """Delete `rfq`: it is gone, and its quotes still live are cancelled."""
    del state.comms.rfqs[rfq.rfq_id]
    for quote in state.comms.quotes.values():
        if quote.rfq is rfq and quote.status in ("open", "accepted"):
            cancel_quote(state, quote, "rfq_deleted")


def delete_rfq(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """DELETE /communications/rfqs/{rfq_id}: only its creator may, while it is open."""
    rfq = _rfq(state, call.params[0])
    if not rfq.mine:
        raise refused("only the RFQ's creator may delete it")
    if rfq.status != "open":
        raise refused("the RFQ is closed")
    remove_rfq(state, rfq)
    return 204, {}


# --- quotes -----------------------------------------------------------------------------------


def _ts_param(call: Call, name: str) -> int | None:
    raw = first_param(call.query, name)
    if not raw:
        return None
    seconds = plain_int(raw)
    if seconds is None or seconds < 0:
        raise param_error("GetQuotes", name, "numeric")
    return seconds * 1000


def _quote_matches(state: SandboxState, call: Call, quote: Quote) -> bool:
    """Whether `quote` passes the GetQuotes filters other than the user filters."""
    query, rfq = call.query, quote.rfq
    market, event = first_param(query, "market_ticker"), first_param(query, "event_ticker")
    status, rfq_id = first_param(query, "status"), first_param(query, "rfq_id")
    quoter, asker = (
        first_param(query, "quote_creator_user_id"),
        first_param(query, "rfq_creator_user_id"),
    )
    since, until = _ts_param(call, "min_ts"), _ts_param(call, "max_ts")
    return (
        (not market or rfq.market_ticker == market)
        and (not event or state.markets[rfq.market_ticker]["event_ticker"] == event)
        and (not status or quote.status == status)
        and (not rfq_id or rfq.rfq_id == rfq_id)
        and (not quoter or quoter == (SANDBOX_USER_ID if quote.mine else DESK_USER_ID))
        and (not asker or asker == (SANDBOX_USER_ID if rfq.mine else DESK_USER_ID))
        and not first_param(query, "rfq_creator_subtrader_id")  # no subtraders here
        and (since is None or quote.updated_ms >= since)
        and (until is None or quote.updated_ms <= until)
    )


def list_quotes(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /communications/quotes: the user's quotes and quotes on its RFQs, newest first."""
    limit = page_limit(call.query, "GetQuotes", 500, 500)
    after = decode_cursor(call.query, "quotes")
    mine = self_filter(call, "user_filter", "GetQuotes")
    on_mine = self_filter(call, "rfq_user_filter", "GetQuotes")
    if first_param(call.query, "rfq_id"):
        _uuid(first_param(call.query, "rfq_id"), "rfq_id")
    for name in ("min_ts", "max_ts"):
        _ts_param(call, name)  # refused even when there is no quote to filter
    rows = [
        quote
        for quote in sorted(state.comms.quotes.values(), key=lambda quote: -quote.seq)
        if (quote.mine or quote.rfq.mine)  # a quote is private to its two parties
        and (not mine or quote.mine)
        and (not on_mine or quote.rfq.mine)
        and _quote_matches(state, call, quote)
    ]
    page, cursor = paginate(rows, lambda quote: -quote.seq, after, limit, "quotes")
    return 200, {"cursor": cursor, "quotes": [quote.to_json() for quote in page]}


def _bid(value: object, name: str) -> Decimal:
    """A quote's bid: on the market's cent grid, or 0 to decline that side."""
    if isinstance(value, str) and _ZERO.fullmatch(value):
        return Decimal(0)
    try:
        return parse_price(value)
    except KalshiError:
        raise refused(f"{name} must be 0 or a price from 0.01 to 0.99 in whole cents") from None


def create_quote(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """POST /communications/quotes: quote an RFQ of the desk (replacing one's last quote)."""
    doc = decode_body(call.body, "CreateQuoteRequest", _QUOTE_TYPES)
    rfq = state.comms.rfqs.get(_uuid(str(doc.get("rfq_id") or ""), "rfq_id"))
    if rfq is None or rfq.status != "open":
        raise refused("rfq_id names no open RFQ")
    if rfq.mine:
        raise refused("a member cannot quote its own RFQ")
    yes_bid, no_bid = _bid(doc.get("yes_bid"), "yes_bid"), _bid(doc.get("no_bid"), "no_bid")
    if not yes_bid and not no_bid:
        raise refused("yes_bid and no_bid cannot both be 0")
    if yes_bid + no_bid >= 1:
        raise refused("yes_bid and no_bid together must stay under 1")
    subaccount = subaccount_number(state, doc.get("subaccount"))
    comms, now = state.comms, state.now_ms()
    for old in comms.quotes.values():
        if old.rfq is rfq and old.mine and old.status in ("open", "accepted"):
            cancel_quote(state, old, "replaced")
    quote = Quote(state.new_id(), comms.next_seq(), rfq, True, yes_bid, no_bid,
                  bool(doc.get("rest_remainder")), bool(doc.get("post_only")), subaccount,
                  now, now)  # fmt: skip
    comms.quotes[quote.quote_id] = quote
    desk_considers(state, quote)
    return 201, {"id": quote.quote_id}


def _quote(state: SandboxState, call: Call) -> Quote:
    """The quote the path names (under its RFQ, in 3.30's paths), if the user may see it."""
    *rfq_id, quote_id = call.params
    quote = state.comms.quotes.get(_uuid(quote_id, "quote_id"))
    if rfq_id and (quote is None or quote.rfq.rfq_id != _uuid(rfq_id[0], "rfq_id")):
        raise KalshiError(404, NOT_FOUND)
    if quote is None or not (quote.mine or quote.rfq.mine):
        raise KalshiError(404, NOT_FOUND)
    return quote


def get_quote(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """GET /communications/quotes/{id} and /communications/rfqs/{rfq_id}/quotes/{id}."""
    return 200, {"quote": _quote(state, call).to_json()}


def delete_quote(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """DELETE a quote of the user's that has not executed: it can no longer be accepted."""
    quote = _quote(state, call)
    if not quote.mine:
        raise refused("only the quote's creator may delete it")
    if quote.status not in ("open", "accepted"):
        raise refused(f"the quote is {quote.status}")
    cancel_quote(state, quote, "deleted")
    return 204, {}


def accept_quote(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """PUT .../accept: the RFQ's creator takes one side of an open quote."""
    doc = decode_body(call.body, "AcceptQuoteRequest", {"accepted_side": "string"})
    quote = _quote(state, call)
    side = doc.get("accepted_side")
    if side not in ("yes", "no"):
        raise refused("accepted_side must be yes or no")
    if not quote.rfq.mine:
        raise refused("only the RFQ's creator may accept a quote")
    if quote.status != "open":
        raise refused(f"the quote is {quote.status}")
    if not (quote.yes_bid if side == "yes" else quote.no_bid):
        raise refused(f"the quote declines the {side} side")
    accept(state, quote, side)
    return 204, {}


def confirm_quote(state: SandboxState, call: Call) -> tuple[int, JSON]:
    """PUT .../confirm: the quoter confirms an accepted quote, which executes."""
    quote = _quote(state, call)
    if not quote.mine:
        raise refused("only the quote's creator may confirm it")
    if quote.status != "accepted":
        raise refused(f"the quote is {quote.status}, not accepted")
    confirm(state, quote)
    return 204, {}
