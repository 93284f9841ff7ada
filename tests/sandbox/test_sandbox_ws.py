"""The sandbox's WebSocket commands, through the proxy: binary command frames and
skip_ticker_ack, as Kalshi takes them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestServer

from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.ws import SANDBOX_WS, WsSettings
from tests.support.keys import KEY_ID

pytestmark = pytest.mark.usefixtures("clean_env")

MARKET = "KXHIGHNY-26JUN12-B74.5"
OTHER = "KXHIGHNY-26JUN12-B72.5"


@pytest.fixture
async def ws(key_material, make_proxy) -> AsyncIterator[Any]:
    app = create_sandbox_app({KEY_ID: key_material.public_key})
    app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=3600)
    sandbox = TestServer(app)
    await sandbox.start_server()
    client = await make_proxy(str(sandbox.make_url("")).rstrip("/"))
    async with client.ws_connect("/trade-api/ws/v2") as connection:
        yield connection
    await sandbox.close()


async def reply(ws: Any) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def test_a_command_in_a_binary_frame_is_taken(ws: Any) -> None:
    await ws.send_bytes(json.dumps({"id": 3, "cmd": "list_subscriptions"}).encode())
    assert await reply(ws) == {"id": 3, "type": "ok", "msg": []}


async def test_a_binary_frame_that_is_not_utf8_is_refused(ws: Any) -> None:
    await ws.send_bytes(b"\xff\xfe{")
    answer = await reply(ws)
    assert (answer["type"], answer["msg"]["code"]) == ("error", 1)


@pytest.mark.parametrize(("skip", "listed"), [(False, True), (True, False)])
async def test_skip_ticker_ack_leaves_the_market_list_out(
    ws: Any, skip: bool, listed: bool
) -> None:
    params = {"channels": ["ticker"], "market_tickers": [MARKET], "skip_ticker_ack": skip}
    await ws.send_json({"id": 1, "cmd": "subscribe", "params": params})
    assert (await reply(ws))["type"] == "subscribed"
    update = {"sids": [1], "market_tickers": [OTHER], "action": "add_markets"}
    await ws.send_json({"id": 2, "cmd": "update_subscription", "params": update})
    answer = await reply(ws)
    assert answer["type"] == "ok"
    assert ("market_tickers" in answer["msg"]) is listed


async def test_order_group_changes_reach_order_group_updates(key_material, make_proxy) -> None:
    app = create_sandbox_app({KEY_ID: key_material.public_key})
    app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=3600)
    sandbox = TestServer(app)
    await sandbox.start_server()
    try:
        client = await make_proxy(str(sandbox.make_url("")).rstrip("/"))
        async with client.ws_connect("/trade-api/ws/v2") as ws:
            params = {"channels": ["order_group_updates"]}
            await ws.send_json({"id": 1, "cmd": "subscribe", "params": params})
            assert (await reply(ws))["type"] == "subscribed"
            created = await client.post(
                "/trade-api/v2/portfolio/order_groups/create", json={"contracts_limit": 5}
            )
            group_id = (await created.json())["order_group_id"]
            update = await reply(ws)
            assert (update["type"], update["seq"]) == ("order_group_updates", 1)
            assert isinstance(update["msg"].pop("ts_ms"), int)
            assert update["msg"] == {
                "event_type": "created", "order_group_id": group_id, "contracts_limit_fp": "5.00"
            }  # fmt: skip
    finally:
        await sandbox.close()
