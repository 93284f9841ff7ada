"""A bot developer's day against the sandbox, through the proxy: two bots on two
subaccounts place crossing orders and each sees the fill in REST and on the WebSocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.ws import SANDBOX_WS, WsSettings
from tests.support.keys import KEY_ID

pytestmark = pytest.mark.usefixtures("clean_env")

MARKET = "KXHIGHNY-26JUN12-B74.5"  # makers quote 0.30 / 0.32
V2 = "/trade-api/v2"
BOT_A, BOT_B = "bot-a-token-0123456789abcdef", "bot-b-token-0123456789abcdef"


@pytest.fixture
async def proxy(key_material, make_proxy, tmp_path: Path) -> AsyncIterator[Any]:
    app = create_sandbox_app({KEY_ID: key_material.public_key}, seed=7)
    # Makers stay still here, so every delta seen is one the bots caused.
    app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=3600)
    sandbox = TestServer(app)
    await sandbox.start_server()
    config = tmp_path / "c.yaml"
    config.write_text(
        f"access: {{tokens: [{{name: a, token: {BOT_A}}}, {{name: b, token: {BOT_B}}}]}}\n"
    )
    yield await make_proxy(str(sandbox.make_url("")).rstrip("/"), config_file=config)
    await sandbox.close()


async def call(client: Any, token: str, method: str, path: str, body: Any = None) -> Any:
    reply = await client.request(
        method, V2 + path, headers={"Authorization": f"Bearer {token}"},
        data=None if body is None else json.dumps(body),
    )  # fmt: skip
    assert reply.status < 300, await reply.text()
    return await reply.json()


async def messages_until(ws: aiohttp.ClientWebSocketResponse, wanted: set[str]) -> list[Any]:
    seen: list[Any] = []
    async with asyncio.timeout(5):
        while not wanted <= {m["type"] for m in seen}:
            seen.append(json.loads((await ws.receive()).data))
    return seen


def v2_order(side: str, price: str, count: str, subaccount: int) -> dict[str, Any]:
    return {
        "ticker": MARKET, "side": side, "price": price, "count": count, "subaccount": subaccount,
        "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross",
    }  # fmt: skip


async def test_two_bots_cross_and_both_see_the_fill(proxy: Any) -> None:
    created = await call(proxy, BOT_B, "POST", "/portfolio/subaccounts")
    sub_b = created["subaccount_number"]
    transfer = {"client_transfer_id": "t-1", "from_subaccount": 0, "to_subaccount": sub_b,
                "amount_cents": 10_000}  # fmt: skip
    await call(proxy, BOT_B, "POST", "/portfolio/subaccounts/transfer", transfer)
    ws = await proxy.ws_connect("/trade-api/ws/v2", headers={"X-Proxy-Token": BOT_A})
    channels = ["orderbook_delta", "trade", "fill", "user_orders", "market_positions"]
    await ws.send_json({"id": 1, "cmd": "subscribe",
                        "params": {"channels": channels, "market_ticker": MARKET}})  # fmt: skip
    await messages_until(ws, {"subscribed", "orderbook_snapshot"})

    bid = await call(
        proxy, BOT_A, "POST", "/portfolio/events/orders", v2_order("bid", "0.31", "4", 0)
    )
    assert bid["remaining_count"] == "4.00"  # it rests, best bid now
    book = await call(proxy, BOT_A, "GET", f"/markets/{MARKET}/orderbook")
    assert ["0.3100", "4.00"] in book["orderbook_fp"]["yes_dollars"]
    resting = await messages_until(ws, {"orderbook_delta", "user_order"})
    assert any(m["type"] == "orderbook_delta" and m["msg"]["price_dollars"] == "0.3100"
               and m["msg"]["delta_fp"] == "4.00" for m in resting)  # fmt: skip

    ask = await call(proxy, BOT_B, "POST", "/portfolio/events/orders",
                     v2_order("ask", "0.31", "3", sub_b))  # fmt: skip
    assert (ask["fill_count"], ask["average_fill_price"]) == ("3.00", "0.3100")

    feed = await messages_until(ws, {"trade", "fill", "market_position", "orderbook_delta"})
    (trade,) = [m["msg"] for m in feed if m["type"] == "trade"]
    assert (trade["yes_price_dollars"], trade["count_fp"], trade["taker_book_side"]) == (
        "0.3100",
        "3.00",
        "ask",
    )
    fills = {m["msg"]["order_id"]: m["msg"] for m in feed if m["type"] == "fill"}
    assert fills[bid["order_id"]]["is_taker"] is False
    assert fills[bid["order_id"]]["post_position_fp"] == "3.00"
    await ws.close()

    # REST agrees: fills, positions and cash of both subaccounts.
    a_fills = await call(proxy, BOT_A, "GET", f"/portfolio/fills?subaccount=0&ticker={MARKET}")
    b_fills = await call(proxy, BOT_B, "GET", f"/portfolio/fills?subaccount={sub_b}")
    assert [f["count_fp"] for f in a_fills["fills"]] == ["3.00"]
    assert [(f["is_taker"], f["fee_cost"]) for f in b_fills["fills"]] == [(True, "0.045000")]
    a_pos = await call(proxy, BOT_A, "GET", "/portfolio/positions?subaccount=0")
    b_pos = await call(proxy, BOT_B, "GET", f"/portfolio/positions?subaccount={sub_b}")
    assert a_pos["market_positions"][0]["position_fp"] == "3.00"
    assert b_pos["market_positions"][0]["position_fp"] == "-3.00"
    balances = await call(proxy, BOT_A, "GET", "/portfolio/subaccounts/balances")
    cash = {b["subaccount_number"]: b["balance"] for b in balances["subaccount_balances"]}
    assert cash == {0: "899.0700", sub_b: "97.8850"}
    order = await call(proxy, BOT_A, "GET", f"/portfolio/orders/{bid['order_id']}")
    assert (order["order"]["status"], order["order"]["remaining_count_fp"]) == ("resting", "1.00")
