"""A seeded sandbox repeats itself: the same calls get the same ids, and the market
makers make the same moves in the same order (create_sandbox_app(seed=...))."""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.events import LevelChanged
from signing_proxy.sandbox.state import SANDBOX_STATE
from signing_proxy.sandbox.ws import SANDBOX_WS, WsSettings
from tests.sandbox.exchange_client import GROUPS, ORDERS, Factory, serve
from tests.sandbox.test_sandbox import API, KEY_ID, MARKET


async def a_session(aiohttp_client: Factory, key: rsa.RSAPrivateKey, seed: int | None) -> Any:
    """The ids one sandbox gives a fixed sequence of calls."""
    exchange = await serve(aiohttp_client, key, seed=seed)
    group = await exchange.ok("POST", f"{GROUPS}/create", {"contracts_limit": 50})
    body = {"ticker": MARKET, "side": "bid", "price": "0.32", "count": "2",
            "time_in_force": "good_till_canceled", "order_group_id": group["order_group_id"],
            "self_trade_prevention_type": "taker_at_cross"}  # fmt: skip
    order = await exchange.ok("POST", ORDERS, body)
    fills = await exchange.ok("GET", f"{API}/portfolio/fills")
    trades = await exchange.ok("GET", f"{API}/markets/trades?ticker={MARKET}")
    key_id = (await exchange.ok("POST", f"{API}/api_keys/generate", {"name": "k"}))["api_key_id"]
    return (
        group["order_group_id"],
        order["order_id"],
        order["client_order_id"],
        *[f["fill_id"] for f in fills["fills"]],
        *[t["trade_id"] for t in trades["trades"]],
        key_id,
    )


async def test_the_same_seed_gives_the_same_ids(
    aiohttp_client: Factory, key: rsa.RSAPrivateKey
) -> None:
    first = await a_session(aiohttp_client, key, 11)
    again = await a_session(aiohttp_client, key, 11)
    other = await a_session(aiohttp_client, key, 12)
    unseeded = await a_session(aiohttp_client, key, None)
    assert first == again
    assert len(first) == 6  # a group, an order, its client id, a fill, a trade, a key
    assert len(set(first)) == len(first)  # distinct ids, not one repeated
    for ids in (other, unseeded):
        assert all(mine != theirs for mine, theirs in zip(first, ids, strict=True))


async def maker_moves(aiohttp_client: Factory, key: rsa.RSAPrivateKey, seed: int) -> list[Any]:
    """The first 30 book changes the makers of a sandbox seeded with `seed` make."""
    app = create_sandbox_app({KEY_ID: key.public_key()}, seed=seed)
    app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=0.001)
    moves: list[Any] = []
    done = asyncio.Event()

    def listen(event: object) -> None:
        if isinstance(event, LevelChanged) and len(moves) < 30:
            moves.append((event.ticker, event.side, event.price, event.delta))
            if len(moves) == 30:
                done.set()

    app[SANDBOX_STATE].listeners.append(listen)
    await aiohttp_client(app)  # starts the makers
    await asyncio.wait_for(done.wait(), 10)
    return moves


async def test_the_same_seed_gives_the_same_maker_moves(
    aiohttp_client: Factory, key: rsa.RSAPrivateKey
) -> None:
    first = await maker_moves(aiohttp_client, key, 5)
    assert first == await maker_moves(aiohttp_client, key, 5)
    assert first != await maker_moves(aiohttp_client, key, 6)
