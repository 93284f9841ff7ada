"""Resources one kind of client cannot take from another: WebSocket sessions have their own
upstream pool and a cap, and a slow request body holds no upstream connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from signing_proxy.config import load_config
from signing_proxy.errors import ConfigError
from tests.support.upstreams import accepting_upstream

pytestmark = pytest.mark.usefixtures("clean_env")

WS = "/trade-api/ws/v2"


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    return path


async def test_websocket_sessions_past_the_limit_get_503(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream(accepting_upstream)
    config = config_file(tmp_path, "limits:\n  websocket_sessions: 3\n")
    client = await make_proxy(upstream.url, config_file=config)
    sessions = [await client.ws_connect(WS) for _ in range(3)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(WS)
    assert refused.value.status == 503
    answer = await client.get("/trade-api/v2/markets")
    assert answer.status == 200
    await sessions[0].close()
    async with asyncio.timeout(5):
        while True:  # the freed place is usable again once the proxy has seen the close
            try:
                sessions[0] = await client.ws_connect(WS)
                break
            except aiohttp.WSServerHandshakeError:
                await asyncio.sleep(0.05)
    for ws in sessions:
        await ws.close()


async def test_websocket_sessions_cannot_starve_rest_calls(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    # More sessions than the REST pool has connections (256): before the pools were
    # separate, a cancel then waited 30 s for a connection and got 504.
    upstream = await make_upstream(accepting_upstream)
    config = config_file(
        tmp_path, "limits:\n  websocket_sessions: 300\nupstream:\n  timeout: 5\n  retries: 0\n"
    )
    client = await make_proxy(upstream.url, config_file=config)
    url = client.make_url(WS)
    # The test's own client pool must not be what limits the sessions.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as bots:
        async with asyncio.timeout(30):
            sessions = await asyncio.gather(*(bots.ws_connect(url) for _ in range(260)))
        async with asyncio.timeout(3):
            cancel = await client.delete("/trade-api/v2/portfolio/events/orders/abc")
        assert cancel.status == 200
        await asyncio.gather(*(ws.close() for ws in sessions))


async def test_a_slow_sized_body_gets_408_and_holds_no_upstream_connection(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream()
    config = config_file(tmp_path, "access: {client_timeout: 0.5}\nupstream: {timeout: 5}\n")
    client = await make_proxy(upstream.url, config_file=config)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Length: 100\r\n\r\n{"ticker":'
    )
    await writer.drain()
    async with asyncio.timeout(3):
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 408")
    assert upstream.seen == []
    # The upstream never got a connection for it: no request at all reached it.
    assert upstream.server.runner is not None
    connections = upstream.server.runner.server
    assert connections is not None and connections.requests_count == 0


async def test_bodies_held_at_once_are_bounded_in_total(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    # Each body is read whole before it goes upstream: two clients trickling bodies just
    # under max_body_bytes must not hold twice the memory the operator allowed.
    upstream = await make_upstream()
    config = config_file(
        tmp_path,
        "access: {max_body_bytes: 60000}\nlimits: {body_memory_bytes: 100000}\n",
    )
    client = await make_proxy(upstream.url, config_file=config)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Length: 60000\r\n\r\n{"pad":'
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # its 60,000 bytes are reserved while it trickles
    busy = await client.post("/trade-api/v2/portfolio/events/orders", data=b"x" * 50000)
    assert busy.status == 503
    assert (await busy.json())["error"]["code"] == "proxy_busy"
    assert busy.headers["Retry-After"] == "1"
    small = await client.post("/trade-api/v2/portfolio/events/orders", data=b"x" * 1000)
    assert small.status == 200
    writer.close()
    await reader.read()
    async with asyncio.timeout(5):
        while True:  # the reservation is given back once the proxy sees the client leave
            again = await client.post("/trade-api/v2/portfolio/events/orders", data=b"x" * 50000)
            if again.status == 200:
                break
            await asyncio.sleep(0.05)
    assert [s.method for s in upstream.seen] == ["POST", "POST"]


def test_body_memory_must_hold_one_body(tmp_path: Path) -> None:
    config = config_file(
        tmp_path, "access: {max_body_bytes: 2000}\nlimits: {body_memory_bytes: 1000}\n"
    )
    with pytest.raises(ConfigError, match=r"limits\.body_memory_bytes: must be at least"):
        load_config(str(config), {})
