"""RFQs and quotes against the sandbox served for real: the desk quotes the user's RFQs
and accepts the user's quotes on its own; an executed quote is a trade like any other,
with its order, fill, position and cash; deleted things are gone or cancelled."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.sandbox.comms import DESK_COMMS_ID, SANDBOX_COMMS_ID
from signing_proxy.sandbox.matching import taker_fee
from signing_proxy.sandbox.wire import SANDBOX_USER_ID
from tests.sandbox.exchange_client import Client, Exchange, serve
from tests.sandbox.test_sandbox import API, MARKET
from tests.support.keys import new_rsa_key

RFQS = f"{API}/communications/rfqs"
QUOTES = f"{API}/communications/quotes"
OTHER_MARKET = "KXBTCD-26JUN1217-T105749.99"
CLOSED_MARKET = "KXMLBGAME-26JUN11ATLPHI-ATL"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
async def exchange(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> Exchange:
    return await serve(aiohttp_client, key)


async def an_rfq(exchange: Exchange, market: str = MARKET, **extra: Any) -> str:
    """A new RFQ of the user's for 10 contracts (unless `extra` says otherwise); its id."""
    body = {"market_ticker": market, "contracts": 10, "rest_remainder": False, **extra}
    status, answer = await exchange.call("POST", RFQS, body)
    assert status == 201, answer
    return str(answer["id"])


async def the_desks_quote(exchange: Exchange, rfq_id: str) -> Any:
    """The one quote on `rfq_id` (the desk's)."""
    quotes = (await exchange.ok("GET", f"{QUOTES}?rfq_id={rfq_id}"))["quotes"]
    assert len(quotes) == 1, quotes
    return quotes[0]


async def position_of(exchange: Exchange, ticker: str) -> str:
    """The user's position_fp in `ticker` ("0.00" when none)."""
    answer = await exchange.ok("GET", f"{API}/portfolio/positions?ticker={ticker}")
    return next((p["position_fp"] for p in answer["market_positions"]), "0.00")


async def a_desk_rfq(exchange: Exchange) -> Any:
    """An open RFQ of the desk's."""
    rfqs = (await exchange.ok("GET", f"{RFQS}?status=open"))["rfqs"]
    return next(rfq for rfq in rfqs if rfq["creator_id"] == DESK_COMMS_ID)


async def test_the_desk_quotes_an_rfq_and_accepting_it_trades(exchange: Exchange) -> None:
    rfq_id = await an_rfq(exchange)
    rfq = (await exchange.ok("GET", f"{RFQS}/{rfq_id}"))["rfq"]
    assert rfq["creator_id"] == SANDBOX_COMMS_ID
    assert (rfq["status"], rfq["contracts_fp"], rfq["creator_user_id"]) == (
        "open", "10.00", SANDBOX_USER_ID)  # fmt: skip
    quote = await the_desks_quote(exchange, rfq_id)
    # The book is 0.30 bid / 0.32 ask: the desk bids at most as well as the book.
    yes_bid, no_bid = Decimal(quote["yes_bid_dollars"]), Decimal(quote["no_bid_dollars"])
    assert Decimal("0.28") <= yes_bid <= Decimal("0.30")
    assert Decimal("0.66") <= no_bid <= Decimal("0.68")
    assert quote["creator_id"] == DESK_COMMS_ID and quote["status"] == "open"
    before = Decimal((await exchange.ok("GET", f"{API}/portfolio/balance"))["balance_dollars"])
    # Accepting "no": the desk buys NO at no_bid, so the user buys YES at 1 - no_bid.
    path = f"{RFQS}/{rfq_id}/quotes/{quote['id']}/accept"
    assert await exchange.raw("PUT", path, {"accepted_side": "no"}) == (204, b"")
    done = (await exchange.ok("GET", f"{QUOTES}/{quote['id']}"))["quote"]
    assert (done["status"], done["accepted_side"]) == ("executed", "no")
    assert {"accepted_ts", "confirmed_ts", "executed_ts", "rfq_creator_order_id"} <= set(done)
    assert (await exchange.ok("GET", f"{RFQS}/{rfq_id}"))["rfq"]["status"] == "closed"
    price = 1 - no_bid
    assert await position_of(exchange, MARKET) == "10.00"
    fills = (await exchange.ok("GET", f"{API}/portfolio/fills"))["fills"]
    assert len(fills) == 1
    fill = fills[0]
    assert (fill["order_id"], fill["is_taker"]) == (done["rfq_creator_order_id"], True)
    assert (fill["yes_price_dollars"], fill["count_fp"]) == (f"{price:.4f}", "10.00")
    order = (await exchange.ok("GET", f"{API}/portfolio/orders/{fill['order_id']}"))["order"]
    assert (order["status"], order["fill_count_fp"], order["book_side"]) == (
        "executed", "10.00", "bid")  # fmt: skip
    after = Decimal((await exchange.ok("GET", f"{API}/portfolio/balance"))["balance_dollars"])
    assert before - after == 10 * price + taker_fee(Decimal(10), price)
    trades = (await exchange.ok("GET", f"{API}/markets/trades?ticker={MARKET}"))["trades"]
    assert [(t["count_fp"], t["yes_price_dollars"]) for t in trades] == [("10.00", f"{price:.4f}")]


async def test_a_quote_on_the_desks_rfq_is_accepted_then_confirmed(exchange: Exchange) -> None:
    rfq = await a_desk_rfq(exchange)
    ticker, contracts = rfq["market_ticker"], rfq["contracts_fp"]
    market = (await exchange.ok("GET", f"{API}/markets/{ticker}"))["market"]
    # A cent over the book's best YES bid: better for the desk than selling on the book.
    yes_bid = Decimal(market["yes_bid_dollars"]) + Decimal("0.01")
    body = {
        "rfq_id": rfq["id"],
        "yes_bid": f"{yes_bid:.2f}",
        "no_bid": "0",
        "rest_remainder": False,
    }
    status, created = await exchange.call("POST", QUOTES, body)
    assert status == 201, created
    quote = (await exchange.ok("GET", f"{QUOTES}/{created['id']}"))["quote"]
    assert (quote["status"], quote["accepted_side"]) == ("accepted", "yes")
    assert await position_of(exchange, ticker) == "0.00"  # nothing trades before confirming
    assert await exchange.raw("PUT", f"{QUOTES}/{created['id']}/confirm", {}) == (204, b"")
    quote = (await exchange.ok("GET", f"{QUOTES}/{created['id']}"))["quote"]
    assert quote["status"] == "executed" and "creator_order_id" in quote
    assert await position_of(exchange, ticker) == contracts  # the quoter bought YES
    fill = (await exchange.ok("GET", f"{API}/portfolio/fills"))["fills"][0]
    assert (fill["is_taker"], fill["fee_cost"], fill["order_id"]) == (
        False, "0.000000", quote["creator_order_id"])  # fmt: skip
    assert (await exchange.ok("GET", f"{RFQS}/{rfq['id']}"))["rfq"]["status"] == "closed"


async def worse_than_the_book(exchange: Exchange, rfq: Any) -> Any:
    """A quote body on `rfq` a cent under the book's best bids on both sides (0: declined)."""
    market = (await exchange.ok("GET", f"{API}/markets/{rfq['market_ticker']}"))["market"]
    yes = Decimal(market["yes_bid_dollars"]) - Decimal("0.01")
    no = Decimal(market["no_bid_dollars"]) - Decimal("0.01")
    return {"rfq_id": rfq["id"], "yes_bid": f"{max(yes, Decimal(0)):.2f}",
            "no_bid": f"{max(no, Decimal(0)):.2f}", "rest_remainder": False}  # fmt: skip


async def test_a_quote_worse_than_the_book_stays_open_and_can_be_deleted(
    exchange: Exchange,
) -> None:
    rfq = await a_desk_rfq(exchange)
    body = await worse_than_the_book(exchange, rfq)
    quote_id = (await exchange.ok("POST", QUOTES, body))["id"]
    assert (await exchange.ok("GET", f"{QUOTES}/{quote_id}"))["quote"]["status"] == "open"
    status, refused = await exchange.call("PUT", f"{QUOTES}/{quote_id}/confirm", {})
    assert status == 400 and refused["error"]["code"] == "invalid_parameters"
    assert await exchange.raw("DELETE", f"{RFQS}/{rfq['id']}/quotes/{quote_id}") == (204, b"")
    quote = (await exchange.ok("GET", f"{QUOTES}/{quote_id}"))["quote"]
    assert (quote["status"], quote["cancellation_reason"]) == ("cancelled", "deleted")
    assert "cancelled_ts" in quote
    assert (await exchange.call("DELETE", f"{QUOTES}/{quote_id}"))[0] == 400
    assert not exchange.state.fills


async def test_a_new_quote_replaces_the_users_last_on_that_rfq(exchange: Exchange) -> None:
    rfq = await a_desk_rfq(exchange)
    body = await worse_than_the_book(exchange, rfq)
    first = (await exchange.ok("POST", QUOTES, body))["id"]
    second = (await exchange.ok("POST", QUOTES, body))["id"]
    mine = (await exchange.ok("GET", f"{QUOTES}?user_filter=self&rfq_id={rfq['id']}"))["quotes"]
    assert [(q["id"], q["status"]) for q in mine] == [(second, "open"), (first, "cancelled")]


async def test_a_deleted_rfq_is_gone_and_its_quotes_cancelled(exchange: Exchange) -> None:
    rfq_id = await an_rfq(exchange)
    quote = await the_desks_quote(exchange, rfq_id)
    assert await exchange.raw("DELETE", f"{RFQS}/{rfq_id}") == (204, b"")
    assert (await exchange.call("GET", f"{RFQS}/{rfq_id}"))[0] == 404
    listed = (await exchange.ok("GET", RFQS))["rfqs"]
    assert rfq_id not in {rfq["id"] for rfq in listed}
    cancelled = (await exchange.ok("GET", f"{QUOTES}/{quote['id']}"))["quote"]
    assert (cancelled["status"], cancelled["cancellation_reason"]) == ("cancelled", "rfq_deleted")
    status, _ = await exchange.call(
        "PUT", f"{QUOTES}/{quote['id']}/accept", {"accepted_side": "yes"}
    )
    assert status == 400
    assert (await exchange.call("DELETE", f"{RFQS}/{rfq_id}"))[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/communications/rfqs/{u}", None),
        ("DELETE", "/communications/rfqs/{u}", None),
        ("GET", "/communications/quotes/{u}", None),
        ("DELETE", "/communications/quotes/{u}", None),
        ("PUT", "/communications/quotes/{u}/accept", {"accepted_side": "yes"}),
        ("PUT", "/communications/quotes/{u}/confirm", {}),
        ("GET", "/communications/rfqs/{u}/quotes/{u}", None),
        ("PUT", "/communications/rfqs/{u}/quotes/{u}/confirm", {}),
    ],
)
async def test_unknown_ids_are_404_and_malformed_ones_400(
    exchange: Exchange, method: str, path: str, body: Any
) -> None:
    unknown = str(uuid.UUID(int=7, version=4))
    status, answer = await exchange.call(method, API + path.replace("{u}", unknown), body)
    assert (status, answer["error"]["code"]) == (404, "not_found")
    status, answer = await exchange.call(method, API + path.replace("{u}", "not-a-uuid"), body)
    assert status == 400, answer


async def test_a_quote_is_404_under_another_rfq(exchange: Exchange) -> None:
    first, second = await an_rfq(exchange), await an_rfq(exchange, OTHER_MARKET)
    quote = await the_desks_quote(exchange, first)
    assert (await exchange.call("GET", f"{RFQS}/{second}/quotes/{quote['id']}"))[0] == 404
    assert (await exchange.ok("GET", f"{RFQS}/{first}/quotes/{quote['id']}"))["quote"] == quote


async def test_rfqs_list_newest_first_by_page_and_filter(exchange: Exchange) -> None:
    ids = [await an_rfq(exchange, market) for market in (MARKET, OTHER_MARKET, MARKET)]
    page = await exchange.ok("GET", f"{RFQS}?user_filter=self&limit=2")
    assert [rfq["id"] for rfq in page["rfqs"]] == ids[:0:-1] and page["cursor"]
    rest = await exchange.ok("GET", f"{RFQS}?user_filter=self&limit=2&cursor={page['cursor']}")
    assert ([rfq["id"] for rfq in rest["rfqs"]], rest["cursor"]) == ([ids[0]], "")
    by_market = await exchange.ok("GET", f"{RFQS}?user_filter=self&market_ticker={MARKET}")
    assert [rfq["id"] for rfq in by_market["rfqs"]] == [ids[2], ids[0]]
    by_event = await exchange.ok("GET", f"{RFQS}?event_ticker=KXHIGHNY-26JUN12&user_filter=self")
    assert len(by_event["rfqs"]) == 2
    everyone = (await exchange.ok("GET", RFQS))["rfqs"]
    assert len(everyone) == 3 + 3  # the desk's own three
    assert (await exchange.call("GET", f"{RFQS}?user_filter=others"))[0] == 400
    assert (await exchange.call("GET", f"{RFQS}?limit=101"))[0] == 400


async def test_quotes_list_only_the_users_two_kinds(exchange: Exchange) -> None:
    rfq_id = await an_rfq(exchange)
    desk_rfq = await a_desk_rfq(exchange)
    body = {"rfq_id": desk_rfq["id"], "yes_bid": "0.01", "no_bid": "0.01", "rest_remainder": False}
    mine = (await exchange.ok("POST", QUOTES, body))["id"]
    on_mine = (await the_desks_quote(exchange, rfq_id))["id"]
    listed = await exchange.ok("GET", QUOTES)
    assert {q["id"] for q in listed["quotes"]} == {mine, on_mine}
    assert [
        q["id"] for q in (await exchange.ok("GET", f"{QUOTES}?user_filter=self"))["quotes"]
    ] == [mine]
    on = await exchange.ok("GET", f"{QUOTES}?rfq_user_filter=self")
    assert [q["id"] for q in on["quotes"]] == [on_mine]
    page = await exchange.ok("GET", f"{QUOTES}?limit=1")
    assert len(page["quotes"]) == 1 and page["cursor"]
    assert (await exchange.ok("GET", f"{QUOTES}?status=executed"))["quotes"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"market_ticker": MARKET, "rest_remainder": False},  # no size
        {"market_ticker": MARKET, "contracts": 5, "target_cost_dollars": "10.00"},
        {"market_ticker": MARKET, "contracts": 5, "contracts_fp": "6.00"},
        {"market_ticker": "NO-SUCH-MARKET", "contracts": 5},
        {"market_ticker": CLOSED_MARKET, "contracts": 5},
        {"market_ticker": MARKET, "contracts": 5, "subaccount": 9},
    ],
)
async def test_a_bad_rfq_is_refused(exchange: Exchange, body: Any) -> None:
    status, answer = await exchange.call("POST", RFQS, body)
    assert status == 400, answer
    assert not [rfq for rfq in exchange.state.comms.rfqs.values() if rfq.mine]


async def test_a_user_cannot_quote_its_own_rfq_nor_accept_its_own_quote(
    exchange: Exchange,
) -> None:
    rfq_id = await an_rfq(exchange)
    body = {"rfq_id": rfq_id, "yes_bid": "0.20", "no_bid": "0.60", "rest_remainder": False}
    assert (await exchange.call("POST", QUOTES, body))[0] == 400
    desk_rfq = await a_desk_rfq(exchange)
    body = {"rfq_id": desk_rfq["id"], "yes_bid": "0.01", "no_bid": "0.01", "rest_remainder": False}
    mine = (await exchange.ok("POST", QUOTES, body))["id"]
    status, _ = await exchange.call("PUT", f"{QUOTES}/{mine}/accept", {"accepted_side": "yes"})
    assert status == 400


async def test_at_most_100_open_rfqs_unless_replacing(exchange: Exchange) -> None:
    for _ in range(100):
        await an_rfq(exchange)
    body = {"market_ticker": MARKET, "contracts": 1, "rest_remainder": False}
    assert (await exchange.call("POST", RFQS, body))[0] == 409
    replaced = await exchange.ok("POST", RFQS, {**body, "replace_existing": True})
    mine = (await exchange.ok("GET", f"{RFQS}?user_filter=self"))["rfqs"]
    assert [rfq["id"] for rfq in mine] == [replaced["id"]]


async def test_a_target_cost_rfq_trades_what_the_cost_buys(exchange: Exchange) -> None:
    rfq_id = await an_rfq(exchange, contracts=None, target_cost_dollars="7.00")
    quote = await the_desks_quote(exchange, rfq_id)
    yes_bid = Decimal(quote["yes_bid_dollars"])
    # Accepting yes, the user pays 1 - yes_bid a contract.
    contracts = (Decimal(7) / (1 - yes_bid)).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    assert (quote["rfq_target_cost_dollars"], quote["yes_contracts_fp"]) == (
        "7.0000",
        f"{contracts:.2f}",
    )
    accepted = await exchange.raw("PUT", f"{QUOTES}/{quote['id']}/accept", {"accepted_side": "yes"})
    assert accepted == (204, b"")
    assert await position_of(exchange, MARKET) == f"{-contracts:.2f}"  # NO contracts


async def test_the_same_seed_gives_the_desk_the_same_rfqs_and_quotes(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> None:
    async def session(seed: int) -> Any:
        exchange = await serve(aiohttp_client, key, seed=seed)
        rfqs = (await exchange.ok("GET", RFQS))["rfqs"]
        quote = await the_desks_quote(exchange, await an_rfq(exchange))
        return rfqs, quote

    first, again, other = await session(5), await session(5), await session(6)
    assert first == again
    assert [r["id"] for r in first[0]] != [r["id"] for r in other[0]]


async def test_accepting_once_the_market_closed_is_refused_and_changes_nothing(
    exchange: Exchange,
) -> None:
    rfq_id = await an_rfq(exchange)
    quote = await the_desks_quote(exchange, rfq_id)
    exchange.state.markets[MARKET]["status"] = "closed"
    path = f"{QUOTES}/{quote['id']}/accept"
    status, answer = await exchange.call("PUT", path, {"accepted_side": "yes"})
    assert (status, answer["error"]["code"]) == (400, "market_closed")
    assert (await exchange.ok("GET", f"{QUOTES}/{quote['id']}"))["quote"]["status"] == "open"
    assert not exchange.state.fills
