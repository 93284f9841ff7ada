"""The WebSocket relay, through a real proxy, against the sandbox or a small verifying upstream."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from signing_proxy.config import Overrides, load_config
from signing_proxy.kalshi.signer import load_signer
from signing_proxy.ops.server import Served, start
from signing_proxy.proxy.app import create_app
from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import SANDBOX_STATE
from signing_proxy.sandbox.ws import SANDBOX_WS, WsSettings
from signing_proxy.ws.relay import WS_RELAY, QueueLimits
from tests.support.keys import KEY_ID
from tests.support.upstreams import SSH_BANNER, banner_server, self_signed_certificate, tls_server

pytestmark = pytest.mark.usefixtures("clean_env")

WS = "/trade-api/ws/v2"
# The tests against custom upstreams speak raw frames, not Kalshi's protocol: the relay's.
RELAY = {"SIGNING_PROXY_WEBSOCKET_MODE": "relay"}
MARKET = "KXBTCD-26JUN1217-T105749.99"
OTHER_MARKET = "KXFEDDECISION-26JUL-H0"
# A handshake sent as a plain request, to see the HTTP answer ws_connect would hide.
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def server_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def production_proxy(
    key_file: Path,
) -> AsyncIterator[Callable[[str], Awaitable[tuple[web.Application, str]]]]:
    """A proxy served as `signing-proxy run` serves it (TestServer cancels handlers on
    disconnect, which the real server does not)."""
    served: list[Served] = []

    async def factory(upstream_url: str) -> tuple[web.Application, str]:
        environ = {"KALSHI_API_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_FILE": str(key_file), **RELAY}
        config = load_config(None, environ, Overrides(upstream=upstream_url))
        app = create_app(config, load_signer(config.credentials), background_probe=False)
        served.append(await start(app, "127.0.0.1", 0))
        return app, served[-1].url

    yield factory
    for server in served:
        await server.runner.cleanup()


@pytest.fixture
async def sandbox(key_material) -> AsyncIterator[TestServer]:
    app = create_sandbox_app({KEY_ID: key_material.public_key})
    # Fast feed, no heartbeat unless a test asks for one.
    app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=0.02)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    # Polling: the states waited for (counters, log events) offer nothing to await.
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@dataclass
class UpstreamSide:
    """What a custom upstream WebSocket saw."""

    received: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def echo_upstream(side: UpstreamSide) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An upstream that echoes every frame back and records how it was closed."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            side.received.append(msg.data)
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        side.close_code = ws.close_code
        side.closed.set()
        return ws

    return handler


# --- the sandbox through the proxy -----------------------------------------------------------


async def test_subscribe_gets_replies_then_data_in_order(sandbox, make_proxy) -> None:
    client = await make_proxy(server_url(sandbox))
    async with client.ws_connect(WS) as ws:
        await ws.send_json(
            {
                "id": 1,
                "cmd": "subscribe",
                "params": {"channels": ["orderbook_delta", "ticker"], "market_ticker": MARKET},
            }
        )
        assert await receive_json(ws) == {
            "type": "subscribed",
            "id": 1,
            "msg": {"channel": "orderbook_delta", "sid": 1},
        }
        snapshot = await receive_json(ws)
        assert snapshot["type"] == "orderbook_snapshot"
        assert (snapshot["sid"], snapshot["seq"]) == (1, 1)
        assert snapshot["msg"]["market_ticker"] == MARKET
        assert snapshot["msg"]["yes_dollars_fp"] and snapshot["msg"]["no_dollars_fp"]
        subscribed = await receive_json(ws)
        assert subscribed["msg"] == {"channel": "ticker", "sid": 2}
        seqs: list[int] = []
        tickers = 0
        while len(seqs) < 5 or not tickers:
            message = await receive_json(ws)
            if message["type"] == "orderbook_delta":
                assert message["sid"] == 1
                assert message["msg"]["market_ticker"] == MARKET
                seqs.append(message["seq"])
            else:
                assert message["type"] == "ticker"
                assert message["sid"] == 2
                assert message["msg"]["market_ticker"] == MARKET
                tickers += 1
    assert seqs == list(range(2, 2 + len(seqs)))
    handshake = sandbox.app[SANDBOX_STATE].seen[-1]
    assert handshake.raw_path == WS
    assert handshake.authenticated
    assert handshake.key_id == KEY_ID


async def test_commands_and_errors_have_kalshis_shapes(sandbox, make_proxy) -> None:
    client = await make_proxy(server_url(sandbox))
    async with client.ws_connect(WS) as ws:
        await ws.send_json({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"]}})
        assert (await receive_json(ws))["msg"] == {"channel": "ticker", "sid": 1}
        await ws.send_json({"id": 2, "cmd": "list_subscriptions"})
        assert await receive_json(ws) == {
            "id": 2,
            "type": "ok",
            "msg": [{"channel": "ticker", "sid": 1}],
        }
        await ws.send_json({"id": 3, "cmd": "subscribe", "params": {"channels": ["nope"]}})
        assert await receive_json(ws) == {
            "id": 3,
            "type": "error",
            "msg": {"code": 8, "msg": "Unknown channel name"},
        }
        await ws.send_json({"id": 4, "cmd": "dance"})
        assert (await receive_json(ws))["msg"] == {"code": 5, "msg": "Unknown command"}
        await ws.send_json({"id": 5, "cmd": "unsubscribe", "params": {"sids": [1]}})
        while (reply := await receive_json(ws))["type"] == "ticker":
            pass  # data already on its way
        assert reply["id"] == 5
        assert reply["type"] == "unsubscribed"
        assert reply["sid"] == 1
        assert reply["seq"] >= 1


async def test_update_subscription_adds_markets_with_snapshots(sandbox, make_proxy) -> None:
    sandbox.app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=60)
    client = await make_proxy(server_url(sandbox))
    async with client.ws_connect(WS) as ws:
        await ws.send_json(
            {
                "id": 1,
                "cmd": "subscribe",
                "params": {"channels": ["orderbook_delta"], "market_tickers": [MARKET]},
            }
        )
        assert (await receive_json(ws))["type"] == "subscribed"
        assert (await receive_json(ws))["seq"] == 1
        await ws.send_json(
            {
                "id": 2,
                "cmd": "update_subscription",
                "params": {"sids": [1], "market_tickers": [OTHER_MARKET], "action": "add_markets"},
            }
        )
        assert await receive_json(ws) == {
            "id": 2,
            "sid": 1,
            "seq": 2,
            "type": "ok",
            "msg": {"market_tickers": [MARKET, OTHER_MARKET]},
        }
        snapshot = await receive_json(ws)
        assert (snapshot["type"], snapshot["seq"]) == ("orderbook_snapshot", 3)
        assert snapshot["msg"]["market_ticker"] == OTHER_MARKET


async def test_sandbox_refuses_an_unsigned_handshake_without_upgrading(sandbox) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            server_url(sandbox) + WS,
            headers=UPGRADE,
        ) as resp,
    ):
        assert resp.status == 401
        assert await resp.json() == {
            "error": {
                "code": "api_key_is_missing_from_headers",
                "message": "api key is missing from headers",
            }
        }


async def test_refused_handshake_reaches_the_client_as_http_401(sandbox, make_proxy) -> None:
    client = await make_proxy(server_url(sandbox), KALSHI_API_KEY_ID="not-a-key-kalshi-knows")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(WS)
    assert refused.value.status == 401
    # The same refusal as a plain request shows the body: Kalshi's, passed through.
    resp = await client.get(
        WS,
        headers=UPGRADE,
    )
    assert resp.status == 401
    assert "Upgrade" not in resp.headers
    assert await resp.json() == {
        "error": {
            "code": "authentication_error",
            "message": "authentication_error",
            "details": "NOT_FOUND",
        }
    }


async def test_upstream_heartbeat_ping_is_answered(sandbox, make_proxy) -> None:
    counters = sandbox.app[SANDBOX_WS]
    counters.settings = WsSettings(heartbeat_interval=0.05, update_interval=60)
    client = await make_proxy(server_url(sandbox))
    async with client.ws_connect(WS) as ws:
        await eventually(lambda: counters.heartbeat_pongs >= 2)
        assert not ws.closed


async def test_client_ping_is_answered(sandbox, make_proxy) -> None:
    client = await make_proxy(server_url(sandbox))
    async with client.ws_connect(WS, autoping=False) as ws:
        await ws.ping(b"are you there")
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (WSMsgType.PONG, b"are you there")


async def test_fifty_concurrent_sessions(sandbox, make_proxy) -> None:
    sandbox.app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=60)
    client = await make_proxy(server_url(sandbox))

    async def one(n: int) -> dict[str, Any]:
        async with client.ws_connect(WS) as ws:
            await ws.send_json({"id": n, "cmd": "list_subscriptions"})
            return await receive_json(ws)

    replies = await asyncio.gather(*(one(n) for n in range(1, 51)))
    assert [reply["id"] for reply in replies] == list(range(1, 51))
    await eventually(lambda: client.app[WS_RELAY].open_sessions == 0)


# --- a custom upstream that verifies the handshake -------------------------------------------


async def test_text_and_binary_frames_relay_both_ways_in_order(make_upstream, make_proxy) -> None:
    side = UpstreamSide()
    upstream = await make_upstream(echo_upstream(side))
    client = await make_proxy(upstream.url, **RELAY)
    frames: list[str | bytes] = ["first", b"\x00\x01\xfe\xff", "dritte \u00fc", b"", "last"]
    async with client.ws_connect(WS) as ws:
        for frame in frames:
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)
        echoed = [(await ws.receive(timeout=5)).data for _ in frames]
    assert echoed == frames
    assert side.received == frames
    handshake = upstream.seen[-1]
    assert handshake.raw_path == WS
    assert handshake.auth_error is None  # check_auth verified GET /trade-api/ws/v2
    assert handshake.headers["KALSHI-ACCESS-KEY"] == KEY_ID


async def test_client_close_code_and_reason_reach_the_upstream(make_upstream, make_proxy) -> None:
    side = UpstreamSide()
    client = await make_proxy((await make_upstream(echo_upstream(side))).url, **RELAY)
    ws = await client.ws_connect(WS)
    await ws.close(code=4100, message=b"bot done")
    await asyncio.wait_for(side.closed.wait(), 5)
    assert side.close_code == 4100


async def test_upstream_close_code_and_reason_reach_the_client(make_upstream, make_proxy) -> None:
    async def closing(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("last words")
        await ws.close(code=4001, message=b"kalshi closed this")
        return ws

    client = await make_proxy((await make_upstream(closing)).url, **RELAY)
    async with client.ws_connect(WS) as ws:
        assert (await ws.receive(timeout=5)).data == "last words"
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4001, "kalshi closed this")
    assert ws.close_code == 4001


async def test_upstream_dying_mid_stream_closes_the_client_with_1011(
    make_upstream, make_proxy
) -> None:
    async def dying(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("before the crash")
        assert request.transport is not None
        request.transport.abort()  # no close frame: the process died
        return ws

    client = await make_proxy((await make_upstream(dying)).url, **RELAY)
    with capture_logs() as logs:
        async with client.ws_connect(WS) as ws:
            assert (await ws.receive(timeout=5)).data == "before the crash"
            msg = await ws.receive(timeout=5)
            assert msg.type is WSMsgType.CLOSE
            assert msg.data in (1011, 1012)
        await eventually(lambda: any(e["event"] == "ws_close" for e in logs))
    closed = next(e for e in logs if e["event"] == "ws_close")
    assert closed["closed_by"] == "upstream"
    assert closed["log_level"] == "warning"


async def test_unreachable_upstream_is_502(make_proxy) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = await make_proxy(f"http://127.0.0.1:{port}")
    with capture_logs() as logs:
        resp = await client.get(
            WS,
            headers=UPGRADE,
        )
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_unreachable"
    assert error["message"].startswith(f"connection refused by 127.0.0.1:{port}")
    (event,) = [e for e in logs if e["event"] == "request"]
    assert event["error"].startswith(
        f"proxy_upstream_unreachable: connection refused by 127.0.0.1:{port}"
    )


async def test_a_dropped_handshake_is_not_resent(make_upstream, make_proxy) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()  # the handshake arrived; no answer goes back
        return web.Response()

    upstream = await make_upstream(drop)
    client = await make_proxy(upstream.url)
    resp = await client.get(WS, headers=UPGRADE)
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_error"
    assert "closed the connection before answering" in error["message"]
    # aiohttp would resend a GET once, with the same signature; the proxy lets it not.
    assert [s.raw_path for s in upstream.seen] == [WS]


async def test_unresolvable_upstream_handshake_says_dns(make_proxy) -> None:
    client = await make_proxy("http://nonexistent.invalid")  # .invalid never resolves
    resp = await client.get(WS, headers=UPGRADE)
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_unreachable"
    assert error["message"].startswith("DNS lookup failed for nonexistent.invalid")


async def test_handshake_tls_certificate_failure_is_named(make_proxy, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    async with tls_server(cert, key) as server:
        client = await make_proxy(f"https://127.0.0.1:{server.port}")  # wss:// for the feed
        with capture_logs() as logs:
            resp = await client.get(WS, headers=UPGRADE)
        assert server.connections == 1
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_tls_error"
    expected = f"TLS certificate verify failed for 127.0.0.1:{server.port}: self-signed certificate"
    assert error["message"].startswith(expected)
    (event,) = [e for e in logs if e["event"] == "request"]
    assert event["error"].startswith(f"proxy_upstream_tls_error: {expected}")


async def test_handshake_with_a_non_http_upstream_leaks_none_of_its_bytes(make_proxy) -> None:
    async with banner_server(SSH_BANNER) as server:
        client = await make_proxy(f"http://127.0.0.1:{server.port}")
        with capture_logs() as logs:
            resp = await client.get(WS, headers=UPGRADE)
        assert server.connections == 1
    assert resp.status == 502
    body = await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_protocol_error"
    assert "did not speak HTTP" in error["message"]
    for leaked in ("SSH-2.0", "OpenSSH", "Bad status line"):
        assert leaked not in body
        assert leaked not in repr(logs)


async def test_a_handshake_that_gets_no_answer_is_504(make_proxy, tmp_path: Path) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # accepts, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = tmp_path / "config.yaml"
    config.write_text("upstream:\n  timeout: 0.3\n")
    try:
        client = await make_proxy(f"http://127.0.0.1:{port}", config_file=config)
        resp = await client.get(WS, headers=UPGRADE)
        assert resp.status == 504
        assert (await resp.json())["error"]["code"] == "proxy_upstream_timeout"
    finally:
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def test_a_plain_get_is_told_to_upgrade(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    resp = await client.get(WS)
    assert resp.status == 426
    assert (await resp.json())["error"]["code"] == "proxy_websocket_required"
    assert upstream.seen == []  # nothing was signed or sent


async def test_a_client_that_stops_reading_is_cut_off_with_a_bounded_queue(
    make_upstream, production_proxy
) -> None:
    side = UpstreamSide()
    chunk = b"x" * 65536

    async def flooding(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def flood() -> None:
            # At most 256 MiB, so a relay that buffered without bound would fail, not hang.
            for _ in range(4096):
                await ws.send_bytes(chunk)

        task = asyncio.create_task(flood())
        async for _ in ws:
            pass
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        side.close_code = ws.close_code
        side.closed.set()
        return ws

    app, base = await production_proxy((await make_upstream(flooding)).url)
    limits = QueueLimits(frames=64, bytes=1024 * 1024)
    app[WS_RELAY].limits = limits
    with capture_logs() as logs:
        async with aiohttp.ClientSession() as session, session.ws_connect(base + WS) as ws:
            # Not reading: the proxy's queue fills while the sockets' buffers are full.
            await asyncio.wait_for(side.closed.wait(), 10)
            async with asyncio.timeout(10):
                while (msg := await ws.receive()).type is WSMsgType.BINARY:
                    pass
            assert msg.type is WSMsgType.CLOSE
            assert msg.data in (1008, 1011)
        await eventually(lambda: any(e["event"] == "request" for e in logs))
    closed = next(e for e in logs if e["event"] == "ws_close")
    assert closed["closed_by"] == "proxy"
    assert "too slow" in closed["reason"]
    assert 0 < closed["queue_peak_frames"] <= limits.frames
    assert 0 < closed["queue_peak_bytes"] <= limits.bytes
    # The handler ended normally, not with a stray CancelledError: the call's event says 101.
    assert next(e for e in logs if e["event"] == "request")["status"] == 101


async def test_close_all_closes_both_sides_with_1001(make_upstream, make_proxy) -> None:
    side = UpstreamSide()
    client = await make_proxy((await make_upstream(echo_upstream(side))).url, **RELAY)
    async with client.ws_connect(WS) as ws:
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "hello"
        closing = asyncio.create_task(client.app[WS_RELAY].close_all())
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 1001, "proxy shutting down")
        await asyncio.wait_for(closing, 5)
    await asyncio.wait_for(side.closed.wait(), 5)
    assert side.close_code == 1001


async def test_app_shutdown_closes_sessions_with_1001(make_upstream, make_proxy) -> None:
    client = await make_proxy((await make_upstream(echo_upstream(UpstreamSide()))).url, **RELAY)
    url = client.make_url(WS)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "hello"
        closing = asyncio.create_task(client.server.close())
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1001)
        await asyncio.wait_for(closing, 10)


async def test_open_and_close_events_carry_counts_never_content(make_upstream, make_proxy) -> None:
    side = UpstreamSide()
    client = await make_proxy((await make_upstream(echo_upstream(side))).url, **RELAY)
    secret_text, secret_bytes = "frame-content-must-not-be-logged", b"binary-content-not-logged"
    with capture_logs() as logs:
        async with client.ws_connect(WS, headers={"X-Request-ID": "ws-call-1"}) as ws:
            await ws.send_str(secret_text)
            await ws.send_bytes(secret_bytes)
            await ws.receive(timeout=5)
            await ws.receive(timeout=5)
        await eventually(lambda: any(e["event"] == "ws_close" for e in logs))
    opened = next(e for e in logs if e["event"] == "ws_open")
    closed = next(e for e in logs if e["event"] == "ws_close")
    assert opened["request_id"] == closed["request_id"] == "ws-call-1"
    assert opened["client"] == closed["client"] == "127.0.0.1"
    assert closed["upstream"].startswith("127.0.0.1:")
    assert closed["frames_in"] == closed["frames_out"] == 2
    assert closed["bytes_in"] == closed["bytes_out"] == len(secret_text) + len(secret_bytes)
    assert closed["closed_by"] == "client"
    assert closed["close_code"] == 1000
    assert closed["duration_ms"] > 0
    text = repr(logs)
    for forbidden in (secret_text, secret_bytes.decode(), "KALSHI-ACCESS", "signature"):
        assert forbidden.lower() not in text.lower()
