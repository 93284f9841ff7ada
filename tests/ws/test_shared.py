"""websocket.mode: shared, against the sandbox's WebSocket: many clients, one upstream
connection and one upstream subscription per (channel, market); each client speaks
Kalshi's protocol with its own sids and seq, and its books match the exchange's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import SANDBOX_STATE
from signing_proxy.sandbox.ws import SANDBOX_WS, WsSettings
from signing_proxy.ws.relay import WS_RELAY
from tests.support.keys import KEY_ID, KeyMaterial
from tests.ws import test_websocket as relay_tests
from tests.ws.test_websocket import WS, eventually, receive_json, server_url

pytestmark = pytest.mark.usefixtures("clean_env")

SHARED = {"SIGNING_PROXY_WEBSOCKET_MODE": "shared"}
Book = dict[tuple[str, Decimal], Decimal]


@pytest.fixture
async def sandbox(key_material: KeyMaterial) -> AsyncIterator[TestServer]:
    app = create_sandbox_app({KEY_ID: key_material.public_key}, seed=3)
    app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=0.02)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def shared_proxy(make_proxy: Any) -> Callable[..., Awaitable[Any]]:
    """make_proxy with websocket.mode: shared."""

    async def factory(url: str, config_file: Path | None = None, **env: str) -> Any:
        return await make_proxy(url, config_file, **SHARED, **env)

    return factory


@pytest.mark.parametrize(
    "test",
    [
        relay_tests.test_subscribe_gets_replies_then_data_in_order,
        relay_tests.test_commands_and_errors_have_kalshis_shapes,
        relay_tests.test_update_subscription_adds_markets_with_snapshots,
    ],
    ids=lambda test: test.__name__,
)
async def test_the_protocol_tests_pass_in_relay_mode_too(
    test: Callable[..., Awaitable[None]], sandbox: TestServer, make_proxy: Any
) -> None:
    """test_websocket.py runs them on the shared feed (the default); here on the relay."""

    async def relay_proxy(url: str, config_file: Path | None = None, **env: str) -> Any:
        return await make_proxy(url, config_file, **relay_tests.RELAY, **env)

    await test(sandbox, relay_proxy)


def markets_of(sandbox: TestServer, count: int) -> list[str]:
    return sorted(sandbox.app[SANDBOX_STATE].markets)[:count]


class Stream:
    """One client's messages, and the books its snapshots and deltas describe."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.books: dict[str, Book] = {}
        self.seqs: dict[int, list[int]] = {}
        self.snapshots = 0

    def take(self, message: dict[str, Any]) -> None:
        kind, msg = message["type"], message.get("msg", {})
        if "seq" in message and kind.startswith("orderbook"):
            self.seqs.setdefault(message["sid"], []).append(message["seq"])
        if kind == "orderbook_snapshot":
            self.snapshots += 1
            book: Book = {}
            for side in ("yes", "no"):
                for price, size in msg.get(f"{side}_dollars_fp", []):
                    book[(side, Decimal(price))] = Decimal(size)
            self.books[msg["market_ticker"]] = book
        elif kind == "orderbook_delta":
            book = self.books[msg["market_ticker"]]
            key = (msg["side"], Decimal(msg["price_dollars"]))
            book[key] = book.get(key, Decimal(0)) + Decimal(msg["delta_fp"])
            if book[key] == 0:
                del book[key]

    async def drain(self, quiet: float = 0.4, most: float = 5.0) -> None:
        """Read until nothing arrives for `quiet` seconds, or for `most` seconds at most."""
        deadline = asyncio.get_running_loop().time() + most
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await self.ws.receive(timeout=min(quiet, left))
            except TimeoutError:
                return
            assert message.type is WSMsgType.TEXT, (message, self.ws.close_code)
            self.take(json.loads(message.data))


async def subscribe(ws: aiohttp.ClientWebSocketResponse, cmd_id: int, params: Any) -> None:
    await ws.send_json({"id": cmd_id, "cmd": "subscribe", "params": params})


async def truth(sandbox: TestServer, make_proxy: Any, markets: list[str]) -> dict[str, Book]:
    """The books now, from a fresh subscription through a relaying proxy (one-to-one)."""
    relay = await make_proxy(server_url(sandbox))
    async with relay.ws_connect(WS) as ws:
        await subscribe(ws, 1, {"channels": ["orderbook_delta"], "market_tickers": markets})
        stream = Stream(ws)
        await stream.drain(0.3, most=2.0)
    return stream.books


async def test_twenty_clients_share_one_connection_and_see_the_exchanges_books(
    sandbox: TestServer, shared_proxy: Any, make_proxy: Any
) -> None:
    proxy = await shared_proxy(server_url(sandbox))
    markets = markets_of(sandbox, 4)
    streams: list[Stream] = []
    async with contextlib.AsyncExitStack() as stack:
        wants = []
        for i in range(20):
            ws = await stack.enter_async_context(proxy.ws_connect(WS))
            wanted = sorted({markets[i % 4], markets[(i + 1) % 4]})
            wants.append(wanted)
            await subscribe(ws, 1, {"channels": ["orderbook_delta"], "market_tickers": wanted})
            await subscribe(ws, 2, {"channels": ["ticker"], "market_ticker": markets[i % 4]})
            streams.append(Stream(ws))
        await asyncio.gather(*(s.drain(0.3, most=1.0) for s in streams))
        # The makers stop; what is in flight arrives; every client's books are then the
        # exchange's.
        sandbox.app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=60)
        await asyncio.sleep(0.1)
        await asyncio.gather(*(s.drain(0.5) for s in streams))
        books = await truth(sandbox, make_proxy, markets)
        for i, stream in enumerate(streams):
            assert sorted(stream.books) == wants[i]  # a snapshot of every book it asked for
            for market, book in stream.books.items():
                assert book == books[market], (i, market)
            for sid, seqs in stream.seqs.items():
                assert seqs == list(range(1, len(seqs) + 1)), (i, sid)
    counters = sandbox.app[SANDBOX_WS]
    assert counters.connections_opened == 2  # the shared one, and the relay's for the truth
    # Each (channel, market) subscribed once by the shared connection (and each book once
    # more by the relayed truth).
    expected = {("orderbook_delta", m): 2 for m in markets} | {("ticker", m): 1 for m in markets}
    assert dict(counters.subscribed) == expected


async def test_an_upstream_drop_is_survived_with_fresh_snapshots(
    sandbox: TestServer, shared_proxy: Any, make_proxy: Any
) -> None:
    """Kalshi drops every connection (maintenance): the proxy reconnects and resubscribes,
    the client stays connected and gets a fresh snapshot, its seq going on, and its book
    is the exchange's."""
    proxy = await shared_proxy(server_url(sandbox))
    market = markets_of(sandbox, 1)[0]
    counters = sandbox.app[SANDBOX_WS]
    async with proxy.ws_connect(WS) as ws:
        await subscribe(ws, 1, {"channels": ["orderbook_delta"], "market_ticker": market})
        stream = Stream(ws)
        await stream.drain(0.3, most=1.0)
        snapshots = stream.snapshots
        await counters.drop_all()
        deadline = asyncio.get_running_loop().time() + 10
        while stream.snapshots == snapshots:
            assert asyncio.get_running_loop().time() < deadline, "no fresh snapshot"
            await stream.drain(0.05, most=0.2)
        counters.settings = WsSettings(heartbeat_interval=60, update_interval=60)
        await asyncio.sleep(0.1)
        await stream.drain(0.5)
        assert not ws.closed
        assert counters.connections_opened == 2  # the first, and the reconnect
        assert stream.seqs[1] == list(range(1, len(stream.seqs[1]) + 1))
        books = await truth(sandbox, make_proxy, [market])
        assert stream.books[market] == books[market]


async def test_private_channels_need_a_token_that_may_read_the_portfolio(
    sandbox: TestServer, shared_proxy: Any, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    tokens = [
        {"name": "prices", "token": "prices-token-0123456789", "allow": ["GET /trade-api/ws/v2"]},
        {"name": "bot", "token": "bot-token-0123456789abc"},
    ]
    config.write_text(json.dumps({"access": {"tokens": tokens}}))
    proxy = await shared_proxy(server_url(sandbox), config)
    for token, allowed in (("prices-token-0123456789", False), ("bot-token-0123456789abc", True)):
        headers = {"Authorization": f"Bearer {token}"}
        async with proxy.ws_connect(WS, headers=headers) as ws:
            await subscribe(ws, 5, {"channels": ["fill"]})
            reply = await receive_json(ws)
            if allowed:
                assert reply == {
                    "type": "subscribed",
                    "id": 5,
                    "msg": {"channel": "fill", "sid": 1},
                }
            else:
                assert reply == {
                    "id": 5, "type": "error", "msg": {"code": 9, "msg": "Authentication required"},
                }  # fmt: skip


async def test_a_client_that_stops_reading_is_dropped_and_others_go_on(
    sandbox: TestServer, shared_proxy: Any, tmp_path: Path
) -> None:
    sandbox.app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=0.005)
    config = tmp_path / "c.yaml"
    config.write_text("websocket: {client_queue_frames: 10}\n")
    proxy = await shared_proxy(server_url(sandbox), config)
    markets = sorted(sandbox.app[SANDBOX_STATE].markets)
    stalled = await stalled_client(
        proxy, {"channels": ["orderbook_delta"], "market_tickers": markets}
    )
    try:
        async with proxy.ws_connect(WS) as ws:
            await subscribe(ws, 1, {"channels": ["orderbook_delta"], "market_tickers": markets[:1]})
            stream = Stream(ws)
            feed = proxy.server.app[WS_RELAY]._shared
            deadline = asyncio.get_running_loop().time() + 20
            while feed.dropped_slow == 0:
                assert asyncio.get_running_loop().time() < deadline, "the stalled client stayed"
                await stream.drain(0.05, most=0.2)
            before = sum(len(s) for s in stream.seqs.values())
            await stream.drain(1.0, most=0.5)
            assert sum(len(s) for s in stream.seqs.values()) > before  # the other goes on
            assert not ws.closed
    finally:
        stalled.close()


async def stalled_client(proxy: Any, params: Any) -> socket.socket:
    """A WebSocket client that subscribes and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", proxy.server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET {WS} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, head.encode())
    answer = await loop.sock_recv(sock, 1024)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    payload = json.dumps({"id": 1, "cmd": "subscribe", "params": params}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask + masked
    await loop.sock_sendall(sock, frame)
    return sock


async def test_a_gap_in_the_upstream_seq_brings_every_client_a_fresh_snapshot(
    sandbox: TestServer, shared_proxy: Any, make_proxy: Any
) -> None:
    """A skipped upstream seq means a lost delta: the proxy asks for fresh snapshots
    (update_subscription get_snapshot) and every client of the book gets one."""
    proxy = await shared_proxy(server_url(sandbox))
    market = markets_of(sandbox, 1)[0]
    async with proxy.ws_connect(WS) as first, proxy.ws_connect(WS) as second:
        streams = [Stream(first), Stream(second)]
        for stream in streams:
            await subscribe(
                stream.ws, 1, {"channels": ["orderbook_delta"], "market_ticker": market}
            )
        await asyncio.gather(*(s.drain(0.2, most=0.5) for s in streams))
        hub = proxy.server.app[WS_RELAY]._shared.hubs[WS]
        (group,) = hub._groups.values()
        # A delta that skips ahead, as if one had been lost on the way.
        lost = {"type": "orderbook_delta", "sid": group.sid, "seq": group.last_seq + 2,
                "msg": {"market_ticker": market, "price_dollars": "0.5000", "delta_fp": "1.00",
                        "side": "yes"}}  # fmt: skip
        counts = [s.snapshots for s in streams]
        hub.on_message(lost)
        sandbox.app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=60)
        await asyncio.gather(*(s.drain(0.5) for s in streams))
        assert [s.snapshots for s in streams] == [n + 1 for n in counts]
        assert hub.gaps == 1
        books = await truth(sandbox, make_proxy, [market])
        assert all(s.books[market] == books[market] for s in streams)
        assert all(s.seqs[1] == list(range(1, len(s.seqs[1]) + 1)) for s in streams)


async def test_the_shared_feed_is_in_the_metrics(sandbox: TestServer, shared_proxy: Any) -> None:
    proxy = await shared_proxy(server_url(sandbox))
    markets = markets_of(sandbox, 2)
    async with proxy.ws_connect(WS) as ws:
        await subscribe(ws, 1, {"channels": ["orderbook_delta"], "market_tickers": markets})
        await Stream(ws).drain(0.1, most=0.3)
        text = await (await proxy.get("/metrics")).text()
    assert "signing_proxy_ws_shared_upstream_connections 1.0" in text
    assert "signing_proxy_ws_shared_upstream_subscriptions 2.0" in text


async def test_a_shared_client_gets_message_for_message_what_a_relayed_one_gets(
    sandbox: TestServer, shared_proxy: Any, make_proxy: Any
) -> None:
    """Two bots on one book, one through the shared feed and one through a one-to-one
    relay: from the first delta both have, their deltas are the same, in the same order,
    and their books end equal."""
    shared = await shared_proxy(server_url(sandbox))
    relay = await make_proxy(server_url(sandbox))
    market = markets_of(sandbox, 1)[0]
    params = {"channels": ["orderbook_delta"], "market_ticker": market}
    async with shared.ws_connect(WS) as one, relay.ws_connect(WS) as other:
        streams = [Recording(one), Recording(other)]
        for stream in streams:
            await subscribe(stream.ws, 1, params)
        await asyncio.gather(*(s.drain(0.3, most=1.5) for s in streams))
        sandbox.app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=60)
        await asyncio.gather(*(s.drain(0.5) for s in streams))
    first = max(s.deltas[0]["ts_ms"] for s in streams)
    # Strictly after: deltas of one event share a ts_ms, and a snapshot may fall among them.
    tails = [[d for d in s.deltas if d["ts_ms"] > first] for s in streams]
    assert len(tails[0]) > 20 and tails[0] == tails[1]
    assert streams[0].books == streams[1].books


class Recording(Stream):
    """A Stream that also keeps every delta's msg, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        super().__init__(ws)
        self.deltas: list[dict[str, Any]] = []

    def take(self, message: dict[str, Any]) -> None:
        super().take(message)
        if message["type"] == "orderbook_delta":
            self.deltas.append(message["msg"])


async def test_a_pinned_token_hears_only_its_subaccounts_fills(
    sandbox: TestServer, shared_proxy: Any, tmp_path: Path
) -> None:
    maker, desk = "maker-token-0123456789", "desk-token-01234567890"
    tokens = [{"name": "maker", "token": maker, "subaccount": 1}, {"name": "desk", "token": desk}]
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"access": {"tokens": tokens}}))
    proxy = await shared_proxy(server_url(sandbox), config)

    async def rest(token: str, method: str, path: str, body: Any) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        reply = await proxy.request(method, f"/trade-api/v2{path}", json=body, headers=headers)
        return reply.status

    assert await rest(desk, "POST", "/portfolio/subaccounts", {}) == 201
    move = {"from_subaccount": 0, "to_subaccount": 1, "amount_cents": 10_000}
    assert await rest(desk, "POST", "/portfolio/subaccounts/transfer", move) == 200
    heard: dict[str, list[Any]] = {}
    async with (
        proxy.ws_connect(WS, headers={"Authorization": f"Bearer {maker}"}) as pinned,
        proxy.ws_connect(WS, headers={"Authorization": f"Bearer {desk}"}) as unpinned,
    ):
        for ws in (pinned, unpinned):
            await subscribe(ws, 1, {"channels": ["fill"]})
            assert (await receive_json(ws))["type"] == "subscribed"
        market = "KXHIGHNY-26JUN12-B74.5"  # the makers' ask is 0.32: a bid at 0.40 fills
        order = {"ticker": market, "side": "bid", "price": "0.40", "count": "1",
                 "time_in_force": "immediate_or_cancel",
                 "self_trade_prevention_type": "taker_at_cross"}  # fmt: skip
        assert await rest(maker, "POST", "/portfolio/events/orders", order) == 201
        assert await rest(desk, "POST", "/portfolio/events/orders", order) == 201
        for name, ws in (("pinned", pinned), ("unpinned", unpinned)):
            stream = Recording(ws)
            fills: list[Any] = []
            stream.take = lambda m, into=fills: into.append(m["msg"])  # type: ignore[method-assign]
            await stream.drain(0.5, most=3)
            heard[name] = fills
    assert {f["subaccount"] for f in heard["pinned"]} == {1}
    assert {f["subaccount"] for f in heard["unpinned"]} == {0, 1}


async def test_clients_are_told_when_kalshi_stays_away(
    sandbox: TestServer, shared_proxy: Any, tmp_path: Path
) -> None:
    """Past websocket.upstream_grace without an upstream, clients get 1011 and a reason."""
    config = tmp_path / "c.yaml"
    config.write_text("websocket: {upstream_grace: 1}\n")
    proxy = await shared_proxy(server_url(sandbox), config)
    async with proxy.ws_connect(WS) as ws:
        await subscribe(ws, 1, {"channels": ["ticker"], "market_ticker": markets_of(sandbox, 1)[0]})
        assert (await receive_json(ws))["type"] == "subscribed"
        sandbox.app[SANDBOX_STATE].keys.clear()  # every new handshake is refused (401)
        started = asyncio.get_running_loop().time()
        await sandbox.app[SANDBOX_WS].drop_all()
        while True:
            message = await ws.receive(timeout=5)
            if message.type is not WSMsgType.TEXT:
                break
        waited = asyncio.get_running_loop().time() - started
    assert message.type is WSMsgType.CLOSE, message
    assert ws.close_code == 1011 and "unreachable" in str(message.extra)
    assert 1.0 <= waited < 3.0


async def messages_for(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[Any]:
    """Every message that arrives within `seconds`."""
    found: list[Any] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            message = await ws.receive(timeout=left)
        except TimeoutError:
            break
        assert message.type is WSMsgType.TEXT, message
        found.append(json.loads(message.data))
    return found


async def test_a_named_subscription_rides_on_an_every_market_one(
    sandbox: TestServer, shared_proxy: Any
) -> None:
    """One client wants every market's ticker, another one market's: one upstream
    subscription serves both; when the first leaves, the second's market is subscribed
    on its own before the every-market one goes, and its tickers keep coming."""
    proxy = await shared_proxy(server_url(sandbox))
    market = markets_of(sandbox, 1)[0]
    counters = sandbox.app[SANDBOX_WS]
    async with proxy.ws_connect(WS) as everything, proxy.ws_connect(WS) as one:
        await subscribe(everything, 1, {"channels": ["ticker"]})
        assert (await receive_json(everything))["type"] == "subscribed"
        await subscribe(one, 1, {"channels": ["ticker"], "market_ticker": market})
        first = await messages_for(one, 1.0)
        assert first[0]["type"] == "subscribed"
        assert dict(counters.subscribed) == {("ticker", "*"): 1}  # no second subscription
        tickers = [m["msg"]["market_ticker"] for m in first if m["type"] == "ticker"]
        assert tickers and set(tickers) == {market}
        seen_by_all = {m["msg"]["market_ticker"] for m in await messages_for(everything, 0.3)}
        assert len(seen_by_all) > 1
        await everything.send_json({"id": 2, "cmd": "unsubscribe", "params": {"sids": [1]}})
        async with asyncio.timeout(5):
            while (await receive_json(everything))["type"] != "unsubscribed":
                pass  # tickers already on their way
        later = await messages_for(one, 1.0)
        assert {m["msg"]["market_ticker"] for m in later if m["type"] == "ticker"} == {market}
        # The every-market subscription stays while the named market leans on it.
        assert dict(counters.subscribed) == {("ticker", "*"): 1}
        await one.send_json({"id": 2, "cmd": "unsubscribe", "params": {"sids": [1]}})
        await messages_for(one, 0.3)
    await eventually(lambda: counters.open_connections == 1)
    unsubscribes = [c for c in counters.commands if c["cmd"] == "unsubscribe"]
    assert len(unsubscribes) == 1  # once, when nobody needed it any more


async def test_every_market_after_named_ones_takes_them_over(
    sandbox: TestServer, shared_proxy: Any
) -> None:
    """Kalshi refuses an every-market subscription beside a named one (error 6): the
    named one goes, and its clients are served by the new one."""
    proxy = await shared_proxy(server_url(sandbox))
    market = markets_of(sandbox, 1)[0]
    counters = sandbox.app[SANDBOX_WS]
    async with proxy.ws_connect(WS) as one, proxy.ws_connect(WS) as everything:
        await subscribe(one, 1, {"channels": ["trade", "ticker"], "market_ticker": market})
        await messages_for(one, 0.3)
        await subscribe(everything, 1, {"channels": ["ticker"]})
        replies = [m for m in await messages_for(everything, 0.5) if "id" in m]
        assert [m["type"] for m in replies] == ["subscribed"], replies
        later = await messages_for(one, 1.0)
        assert {m["msg"]["market_ticker"] for m in later if m["type"] == "ticker"} == {market}
    assert counters.subscribed[("ticker", "*")] == 1
    assert [c["cmd"] for c in counters.commands][-2:] == ["unsubscribe", "subscribe"]


async def test_a_command_while_the_upstream_reconnects_is_served_not_refused(
    sandbox: TestServer, shared_proxy: Any
) -> None:
    first, second = markets_of(sandbox, 2)
    proxy = await shared_proxy(server_url(sandbox))
    async with proxy.ws_connect(WS) as ws:
        await subscribe(ws, 1, {"channels": ["ticker"], "market_ticker": first})
        assert (await receive_json(ws))["type"] == "subscribed"
        await sandbox.app[SANDBOX_WS].drop_all()
        await subscribe(ws, 2, {"channels": ["orderbook_delta"], "market_ticker": second})
        async with asyncio.timeout(10):
            while (reply := await receive_json(ws)).get("id") != 2:
                pass
    assert reply["type"] == "subscribed", reply


async def test_an_upstream_that_drops_every_connection_at_once_is_not_hammered(
    make_upstream: Any, shared_proxy: Any
) -> None:
    """Each reconnect that is dropped at once doubles the wait before the next."""
    handshakes = 0

    async def flapping(request: web.Request) -> web.StreamResponse:
        nonlocal handshakes
        handshakes += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if handshakes > 1:
            await ws.close()
            return ws
        await ws.receive()  # the first: list_subscriptions... then it is dropped
        await ws.close()
        return ws

    proxy = await shared_proxy((await make_upstream(flapping)).url)
    async with proxy.ws_connect(WS) as ws:
        await ws.send_json({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"]}})
        await asyncio.sleep(2.0)
        assert not ws.closed
    assert 2 <= handshakes <= 10, handshakes  # waits of up to 0.1, 0.2, 0.4 s...: not 90 a second


async def test_private_messages_go_to_the_client_of_their_market_only(
    sandbox: TestServer, shared_proxy: Any
) -> None:
    """user_order names its market as `ticker`: the client of that market gets it, the
    client of another market of the same upstream subscription does not."""
    mine, other = markets_of(sandbox, 2)
    proxy = await shared_proxy(server_url(sandbox))
    async with proxy.ws_connect(WS) as this, proxy.ws_connect(WS) as that:
        await subscribe(this, 1, {"channels": ["user_orders"], "market_ticker": mine})
        await subscribe(that, 1, {"channels": ["user_orders"], "market_ticker": other})
        for ws in (this, that):
            assert (await receive_json(ws))["type"] == "subscribed"
        order = {
            "ticker": mine, "side": "bid", "price": "0.01", "count": "1",
            "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross",
        }  # fmt: skip
        placed = await proxy.post("/trade-api/v2/portfolio/events/orders", json=order)
        assert placed.status == 201, await placed.text()
        got = [m for m in await messages_for(this, 1.0) if m["type"] == "user_order"]
        assert [m["msg"]["ticker"] for m in got] == [mine]
        assert not [m for m in await messages_for(that, 0.3) if m["type"] == "user_order"]


def flooding_kalshi(sent: list[int]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An upstream that answers a subscribe, then sends 1 KB ticker messages as fast as it
    can (yielding every 100) until the connection ends; `sent` counts them."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        command = json.loads((await ws.receive()).data)
        params = command["params"]
        await ws.send_json({"id": command["id"], "type": "subscribed",
                            "msg": {"channel": "ticker", "sid": 1}})  # fmt: skip
        market = params.get("market_ticker") or params["market_tickers"][0]
        msg = json.dumps({"type": "ticker", "sid": 1,
                          "msg": {"market_ticker": market, "pad": "x" * 1000}})  # fmt: skip
        try:
            while not ws.closed:
                for _ in range(100):
                    await ws.send_str(msg)
                    sent[0] += 1
                await asyncio.sleep(0)
        except ConnectionError:
            pass
        return ws

    return handler


async def test_a_stalled_client_under_a_steady_flood_is_bounded_then_dropped(
    make_upstream: Any, shared_proxy: Any, tmp_path: Path
) -> None:
    """Past the socket's backlog (1 MiB unsent) messages queue in the proxy, and past
    client_queue_frames the client is closed (1008): what the proxy holds for one client
    stays bounded while the other client is served."""
    sent = [0]
    config = tmp_path / "c.yaml"
    config.write_text("websocket: {client_queue_frames: 2000}\n")
    upstream = await make_upstream(flooding_kalshi(sent), verify=False)
    proxy = await shared_proxy(upstream.url, config)
    params = {"channels": ["ticker"], "market_ticker": "KXFLOOD-1"}
    stalled = await stalled_client(proxy, params)
    feed = proxy.server.app[WS_RELAY]._shared
    (member,) = [m for group in feed._members.values() for m in group]
    peak = 0
    try:
        async with proxy.ws_connect(WS) as ws:
            await subscribe(ws, 1, params)
            deadline = asyncio.get_running_loop().time() + 20
            while feed.dropped_slow == 0:
                assert asyncio.get_running_loop().time() < deadline, (sent, member.ending)
                assert member._transport is not None
                peak = max(peak, member._transport.get_write_buffer_size())
                # The backlog (1 MiB) and at most one queue's worth of frames past it.
                assert peak <= 1024 * 1024 + 2000 * 1100
                got = await ws.receive(timeout=5)
                assert got.type is WSMsgType.TEXT
            assert (await ws.receive(timeout=5)).type is WSMsgType.TEXT  # the other goes on
    finally:
        stalled.close()
    assert member.ending is not None and member.ending[0] == 1008
