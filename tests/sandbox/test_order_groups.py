"""Order groups against the sandbox served for real: signed requests, the engine's fills
counted over a rolling 15 s window, the group's orders cancelled on the WebSocket too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.sandbox.groups import GroupChanged
from signing_proxy.sandbox.ws import WS_PATH
from tests.sandbox.exchange_client import GROUPS, Client, Exchange, serve
from tests.sandbox.test_sandbox import API, MARKET, NOW_MS, signed_headers
from tests.support.keys import new_rsa_key


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
async def exchange(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], key: rsa.RSAPrivateKey
) -> Exchange:
    return await serve(aiohttp_client, key)


async def test_create_list_and_get_in_kalshis_shapes(exchange: Exchange) -> None:
    created = await exchange.ok("POST", f"{GROUPS}/create", {"contracts_limit_fp": "2.50"})
    assert set(created) == {"order_group_id", "subaccount", "exchange_index"}
    assert created["subaccount"] == 0
    group_id = created["order_group_id"]
    listing = await exchange.ok("GET", GROUPS)
    assert listing == {
        "order_groups": [
            {"id": group_id, "contracts_limit_fp": "2.50", "is_auto_cancel_enabled": True,
             "exchange_index": 0}
        ]
    }  # fmt: skip
    status, order = await exchange.order("bid", "0.10", "3", order_group_id=group_id)
    assert status == 201, order
    detail = await exchange.ok("GET", f"{GROUPS}/{group_id}")
    assert detail == {"is_auto_cancel_enabled": True, "contracts_limit_fp": "2.50",
                      "orders": [order["order_id"]], "exchange_index": 0}  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [{}, {"contracts_limit": 0}, {"contracts_limit": 1_000_001}, {"contracts_limit_fp": "abc"},
     {"contracts_limit": 3, "contracts_limit_fp": "4.00"}, {"contracts_limit": 3, "subaccount": 9}],
)  # fmt: skip
async def test_create_refuses_a_bad_limit_or_subaccount(exchange: Exchange, body: Any) -> None:
    status, answer = await exchange.call("POST", f"{GROUPS}/create", body)
    assert status == 400, answer
    assert exchange.state.order_groups == {}


async def test_create_with_a_mistyped_limit_is_kalshis_decode_error(exchange: Exchange) -> None:
    status, answer = await exchange.call("POST", f"{GROUPS}/create", {"contracts_limit": "5"})
    assert status == 400
    assert answer["code"] == "bad_request"
    assert "CreateOrderGroupRequest.contracts_limit" in answer["details"]


async def test_fills_over_the_limit_cancel_the_groups_resting_orders(exchange: Exchange) -> None:
    group_id = await exchange.group(5)
    _, resting = await exchange.order("bid", "0.10", "10", order_group_id=group_id)
    _, outside = await exchange.order("bid", "0.11", "10")  # not in the group
    _, first = await exchange.order("bid", "0.32", "4", order_group_id=group_id)
    assert first["fill_count"] == "4.00"
    _, second = await exchange.order("bid", "0.32", "1", order_group_id=group_id)
    assert second["fill_count"] == "1.00"
    # 5 contracts within the window: at the limit, not over it.
    assert await exchange.status_of(resting["order_id"]) == "resting"
    detail = await exchange.ok("GET", f"{GROUPS}/{group_id}")
    assert detail["is_auto_cancel_enabled"] is True

    _, third = await exchange.order("bid", "0.32", "1", order_group_id=group_id)
    assert third["fill_count"] == "1.00"
    assert await exchange.status_of(resting["order_id"]) == "canceled"
    assert await exchange.status_of(outside["order_id"]) == "resting"
    detail = await exchange.ok("GET", f"{GROUPS}/{group_id}")
    assert detail["is_auto_cancel_enabled"] is False
    book = await exchange.ok("GET", f"{API}/markets/{MARKET}/orderbook")
    assert ["0.1000", "10.00"] not in book["orderbook_fp"]["yes_dollars"]


async def test_a_triggered_group_takes_no_order_until_reset(exchange: Exchange) -> None:
    group_id = await exchange.group(1)
    await exchange.order("bid", "0.32", "2", order_group_id=group_id)  # 2 > 1: triggered
    status, answer = await exchange.order("bid", "0.10", "1", order_group_id=group_id)
    assert status == 400
    assert answer["error"]["code"] == "invalid_order"
    assert exchange.state.orders and len(exchange.state.orders) == 1

    assert await exchange.ok("PUT", f"{GROUPS}/{group_id}/reset") == {}
    status, answer = await exchange.order("bid", "0.10", "1", order_group_id=group_id)
    assert status == 201, answer
    # The reset emptied the window: one contract more does not trigger it again.
    _, taker = await exchange.order("bid", "0.32", "1", order_group_id=group_id)
    assert taker["fill_count"] == "1.00"
    assert await exchange.status_of(answer["order_id"]) == "resting"


async def test_the_window_rolls_fills_older_than_15_s_out(exchange: Exchange) -> None:
    group_id = await exchange.group(5)
    _, resting = await exchange.order("bid", "0.10", "10", order_group_id=group_id)
    await exchange.order("bid", "0.32", "4", order_group_id=group_id)
    exchange.clock.ms += 15_001
    await exchange.order("bid", "0.32", "4", order_group_id=group_id)
    assert await exchange.status_of(resting["order_id"]) == "resting"  # 4 in the window
    exchange.clock.ms += 14_000
    await exchange.order("bid", "0.32", "2", order_group_id=group_id)  # 4 + 2 within 15 s
    assert await exchange.status_of(resting["order_id"]) == "canceled"


async def test_fills_of_a_resting_group_order_count_too(exchange: Exchange) -> None:
    group_id = await exchange.group(5)
    _, resting = await exchange.order("bid", "0.31", "10", order_group_id=group_id)
    sub = (await exchange.ok("POST", f"{API}/portfolio/subaccounts"))["subaccount_number"]
    await exchange.ok("POST", f"{API}/portfolio/subaccounts/transfer",
                      {"client_transfer_id": "t", "from_subaccount": 0, "to_subaccount": sub,
                       "amount_cents": 10_000})  # fmt: skip
    _, taker = await exchange.order("ask", "0.31", "6", subaccount=sub)
    assert taker["fill_count"] == "6.00"
    order = (await exchange.ok("GET", f"{API}/portfolio/orders/{resting['order_id']}"))["order"]
    assert (order["status"], order["fill_count_fp"]) == ("canceled", "6.00")


async def test_trigger_by_hand_and_a_limit_below_the_volume(exchange: Exchange) -> None:
    manual = await exchange.group(100)
    _, resting = await exchange.order("bid", "0.10", "3", order_group_id=manual)
    assert await exchange.ok("PUT", f"{GROUPS}/{manual}/trigger") == {}
    assert await exchange.status_of(resting["order_id"]) == "canceled"

    lowered = await exchange.group(10)
    _, kept = await exchange.order("bid", "0.10", "3", order_group_id=lowered)
    await exchange.order("bid", "0.32", "4", order_group_id=lowered)
    assert await exchange.ok("PUT", f"{GROUPS}/{lowered}/limit", {"contracts_limit": 4}) == {}
    assert await exchange.status_of(kept["order_id"]) == "resting"  # 4 is not over 4
    await exchange.ok("PUT", f"{GROUPS}/{lowered}/limit", {"contracts_limit_fp": "3.99"})
    assert await exchange.status_of(kept["order_id"]) == "canceled"
    detail = await exchange.ok("GET", f"{GROUPS}/{lowered}")
    assert (detail["contracts_limit_fp"], detail["is_auto_cancel_enabled"]) == ("3.99", False)


async def test_delete_cancels_the_orders_and_forgets_the_group(exchange: Exchange) -> None:
    group_id = await exchange.group(5)
    _, resting = await exchange.order("bid", "0.10", "3", order_group_id=group_id)
    assert await exchange.ok("DELETE", f"{GROUPS}/{group_id}") == {}
    assert await exchange.status_of(resting["order_id"]) == "canceled"
    for method, path in [("GET", ""), ("DELETE", ""), ("PUT", "/reset"), ("PUT", "/trigger")]:
        status, answer = await exchange.call(method, f"{GROUPS}/{group_id}{path}")
        assert status == 404, (method, path, answer)
    status, _ = await exchange.order("bid", "0.10", "1", order_group_id=group_id)
    assert status == 400


async def test_a_group_belongs_to_its_subaccount(exchange: Exchange) -> None:
    sub = (await exchange.ok("POST", f"{API}/portfolio/subaccounts"))["subaccount_number"]
    group_id = await exchange.group(5, subaccount=sub)
    # The primary's order may not join another subaccount's group.
    status, _ = await exchange.order("bid", "0.10", "1", order_group_id=group_id)
    assert status == 400
    # Trigger defaults to the primary subaccount, where the group is not.
    status, _ = await exchange.call("PUT", f"{GROUPS}/{group_id}/trigger")
    assert status == 404
    assert await exchange.ok("PUT", f"{GROUPS}/{group_id}/trigger?subaccount={sub}") == {}
    # Get and list look at every subaccount unless told which.
    assert (await exchange.call("GET", f"{GROUPS}/{group_id}"))[0] == 200
    assert (await exchange.call("GET", f"{GROUPS}/{group_id}?subaccount=0"))[0] == 404
    assert (await exchange.ok("GET", f"{GROUPS}?subaccount=0")) == {"order_groups": []}
    assert len((await exchange.ok("GET", GROUPS))["order_groups"]) == 1


async def test_the_websocket_sees_the_triggered_cancellations(exchange: Exchange) -> None:
    headers = signed_headers(exchange.key, "GET", WS_PATH, ts=exchange.clock.ms)
    async with exchange.client.ws_connect(WS_PATH, headers=headers) as ws:
        await ws.send_json({"id": 1, "cmd": "subscribe", "params": {"channels": ["user_orders"]}})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
        group_id = await exchange.group(2)
        _, resting = await exchange.order("bid", "0.10", "5", order_group_id=group_id)
        await exchange.order("bid", "0.32", "3", order_group_id=group_id)
        seen = await _user_orders_until_canceled(ws, resting["order_id"])
    assert seen[-1]["msg"]["remaining_count_fp"] == "0.00"


async def _user_orders_until_canceled(
    ws: aiohttp.ClientWebSocketResponse, order_id: str
) -> list[Any]:
    seen: list[Any] = []
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive_json()
            seen.append(message)
            msg = message.get("msg", {})
            if msg.get("order_id") == order_id and msg.get("status") == "canceled":
                return seen


async def test_every_change_is_announced_to_the_engines_listeners(exchange: Exchange) -> None:
    announced: list[Any] = []
    exchange.state.listeners.append(
        lambda event: announced.append(event.message()) if isinstance(event, GroupChanged) else None
    )
    group_id = await exchange.group(2)
    await exchange.order("bid", "0.32", "3", order_group_id=group_id)
    await exchange.ok("PUT", f"{GROUPS}/{group_id}/reset")
    await exchange.ok("PUT", f"{GROUPS}/{group_id}/limit", {"contracts_limit": 7})
    await exchange.ok("DELETE", f"{GROUPS}/{group_id}")
    assert [m["event_type"] for m in announced] == [
        "created", "triggered", "reset", "limit_updated", "deleted",
    ]  # fmt: skip
    assert announced[0] == {"event_type": "created", "order_group_id": group_id,
                            "contracts_limit_fp": "2.00", "ts_ms": NOW_MS}  # fmt: skip
    assert announced[3]["contracts_limit_fp"] == "7.00"
    assert "contracts_limit_fp" not in announced[1]
