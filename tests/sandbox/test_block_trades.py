"""Block trade proposals (spec 3.30) against the sandbox served for real: with the desk,
or between two of the user's subaccounts; executed once both sides accept, as a trade
that prints with is_block_trade, an order and a fill for each of the user's sides."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.sandbox.comms import DESK_USER_ID
from signing_proxy.sandbox.wire import SANDBOX_USER_ID, iso_ms
from tests.sandbox.exchange_client import Client, Exchange, serve
from tests.sandbox.test_sandbox import API, MARKET, NOW_MS
from tests.support.keys import new_rsa_key

PROPOSALS = f"{API}/communications/block-trade-proposals"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
async def exchange(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> Exchange:
    return await serve(aiohttp_client, key)


def proposal(**extra: Any) -> dict[str, Any]:
    """The user buys 25 YES from the desk at 0.40, the user making; `extra` overrides."""
    return {"buyer_user_id": SANDBOX_USER_ID, "seller_user_id": DESK_USER_ID,
            "market_ticker": MARKET, "price_centi_cents": 4_000, "centicount": 2_500,
            "maker_side": "yes", "expiration_ts": iso_ms(NOW_MS + 60_000), **extra}  # fmt: skip


async def listed(exchange: Exchange, proposal_id: str) -> Any:
    """The proposal as GET /communications/block-trade-proposals lists it."""
    proposals = (await exchange.ok("GET", PROPOSALS))["block_trade_proposals"]
    return next(p for p in proposals if p["id"] == proposal_id)


async def position_of(exchange: Exchange, subaccount: int = 0) -> str:
    query = f"ticker={MARKET}&subaccount={subaccount}"
    answer = await exchange.ok("GET", f"{API}/portfolio/positions?{query}")
    return next((p["position_fp"] for p in answer["market_positions"]), "0.00")


async def test_a_block_trade_with_the_desk_executes_when_the_user_accepts(
    exchange: Exchange,
) -> None:
    created = await exchange.ok("POST", PROPOSALS, proposal())
    proposal_id = created["block_trade_proposal_id"]
    open_one = await listed(exchange, proposal_id)
    assert (open_one["status"], open_one["buyer_accepted"], open_one["seller_accepted"]) == (
        "open", False, True)  # fmt: skip
    # Each party's id is shown to that party only.
    assert (open_one["buyer_user_id"], open_one["seller_user_id"]) == (SANDBOX_USER_ID, "")
    assert (open_one["price_centi_cents"], open_one["centicount"]) == (4_000, 2_500)
    assert await position_of(exchange) == "0.00"
    accepted = await exchange.raw("POST", f"{PROPOSALS}/{proposal_id}/accept", {})
    assert accepted == (204, b"")
    done = await listed(exchange, proposal_id)
    assert done["status"] == "executed" and "executed_ts" in done and "buyer_order_id" in done
    assert await position_of(exchange) == "25.00"
    fill = (await exchange.ok("GET", f"{API}/portfolio/fills"))["fills"][0]
    assert (fill["order_id"], fill["is_taker"], fill["yes_price_dollars"]) == (
        done["buyer_order_id"], False, "0.4000")  # fmt: skip
    trades = (await exchange.ok("GET", f"{API}/markets/trades?ticker={MARKET}"))["trades"]
    assert [(t["is_block_trade"], t["count_fp"]) for t in trades] == [(True, "25.00")]
    again = await exchange.call("POST", f"{PROPOSALS}/{proposal_id}/accept", {})
    assert again[0] == 400


async def test_a_block_trade_between_two_subaccounts_needs_both(exchange: Exchange) -> None:
    await exchange.ok("POST", f"{API}/portfolio/subaccounts", {})
    body = proposal(seller_user_id=SANDBOX_USER_ID, seller_subaccount=1, maker_side="no")
    proposal_id = (await exchange.ok("POST", PROPOSALS, body))["block_trade_proposal_id"]
    # The user is both parties: the body must say which one accepts.
    assert (await exchange.call("POST", f"{PROPOSALS}/{proposal_id}/accept", {}))[0] == 400
    await exchange.raw("POST", f"{PROPOSALS}/{proposal_id}/accept", {"subaccount": 1})
    assert (await listed(exchange, proposal_id))["status"] == "open"
    await exchange.raw("POST", f"{PROPOSALS}/{proposal_id}/accept", {"subaccount": 0})
    assert (await listed(exchange, proposal_id))["status"] == "executed"
    assert (await position_of(exchange, 0), await position_of(exchange, 1)) == ("25.00", "-25.00")
    fills = (await exchange.ok("GET", f"{API}/portfolio/fills"))["fills"]
    takers = {fill["subaccount_number"]: fill["is_taker"] for fill in fills}
    assert takers == {0: True, 1: False}  # maker_side "no": the seller (of YES) made


async def test_a_proposal_expires(exchange: Exchange) -> None:
    body = proposal(expiration_ts=iso_ms(NOW_MS + 1_000))
    proposal_id = (await exchange.ok("POST", PROPOSALS, body))["block_trade_proposal_id"]
    exchange.clock.ms += 2_000
    assert (await listed(exchange, proposal_id))["status"] == "expired"
    assert (await exchange.call("POST", f"{PROPOSALS}/{proposal_id}/accept", {}))[0] == 400
    assert await position_of(exchange) == "0.00"


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"buyer_user_id": DESK_USER_ID}, 403),  # the user is no party
        ({"buyer_subtrader_id": "fcm_sub"}, 403),
        ({"seller_user_id": "someone-else"}, 400),
        ({"price_centi_cents": 4_050}, 400),  # not whole cents
        ({"centicount": 0}, 400),
        ({"maker_side": "buyer"}, 400),
        ({"expiration_ts": iso_ms(NOW_MS - 1)}, 400),
        ({"market_ticker": "KXMLBGAME-26JUN11ATLPHI-ATL"}, 400),  # closed
    ],
)
async def test_a_bad_proposal_is_refused(exchange: Exchange, extra: Any, status: int) -> None:
    answer = await exchange.call("POST", PROPOSALS, proposal(**extra))
    assert answer[0] == status, answer
    assert exchange.state.comms.proposals == {}


async def test_an_unknown_proposal_is_404(exchange: Exchange) -> None:
    status, answer = await exchange.call("POST", f"{PROPOSALS}/nope/accept", {})
    assert (status, answer["error"]["code"]) == (404, "not_found")


async def test_proposals_list_by_status_and_page(exchange: Exchange) -> None:
    first = (await exchange.ok("POST", PROPOSALS, proposal()))["block_trade_proposal_id"]
    second = (await exchange.ok("POST", PROPOSALS, proposal()))["block_trade_proposal_id"]
    await exchange.raw("POST", f"{PROPOSALS}/{first}/accept", {})
    page = await exchange.ok("GET", f"{PROPOSALS}?limit=1")
    assert [p["id"] for p in page["block_trade_proposals"]] == [second] and page["cursor"]
    rest = await exchange.ok("GET", f"{PROPOSALS}?limit=1&cursor={page['cursor']}")
    assert [p["id"] for p in rest["block_trade_proposals"]] == [first]
    executed = await exchange.ok("GET", f"{PROPOSALS}?status=executed")
    assert [p["id"] for p in executed["block_trade_proposals"]] == [first]
