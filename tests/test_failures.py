"""Fault injection: a misbehaving local upstream, and what the client gets back."""

from __future__ import annotations

import asyncio
import socket
from email.utils import formatdate
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from signing_proxy.app import LIFECYCLE, MONITOR
from signing_proxy.monitor import clock_offset, kalshi_error_code

pytestmark = pytest.mark.usefixtures("clean_env")


def flaky(statuses: list[int]):
    """An upstream handler that answers the given statuses in turn, then 200."""
    remaining = list(statuses)

    async def handler(request: web.Request) -> web.Response:
        status = remaining.pop(0) if remaining else 200
        return web.json_response({"status": status}, status=status)

    return handler


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_get_is_retried_after_503(make_upstream, make_proxy, method: str) -> None:
    upstream = await make_upstream(flaky([503, 502]))
    client = await make_proxy(upstream.url)
    with capture_logs() as events:
        resp = await client.request(method, "/trade-api/v2/markets")
    assert resp.status == 200
    assert [s.method for s in upstream.seen] == [method] * 3
    # Each attempt carried a fresh, valid signature.
    assert all(s.auth_error is None for s in upstream.seen)
    timestamps = {s.headers["KALSHI-ACCESS-TIMESTAMP"] for s in upstream.seen}
    signatures = {s.headers["KALSHI-ACCESS-SIGNATURE"] for s in upstream.seen}
    assert len(signatures) == 3 and len(timestamps) >= 1
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["retries"] == 2


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_writes_are_never_retried(make_upstream, make_proxy, method: str) -> None:
    upstream = await make_upstream(flaky([503]))
    client = await make_proxy(upstream.url)
    resp = await client.request(method, "/trade-api/v2/portfolio/orders", data=b"{}")
    assert resp.status == 503
    assert [s.method for s in upstream.seen] == [method]


async def test_retries_are_bounded_and_last_answer_passes(make_upstream, make_proxy) -> None:
    upstream = await make_upstream(flaky([503] * 10))
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 503
    assert len(upstream.seen) == 3  # 1 + upstream.retries (2)


async def test_get_is_retried_when_the_connection_drops_before_an_answer(
    make_upstream, make_proxy
) -> None:
    drops = [True]

    async def drop_first(request: web.Request) -> web.StreamResponse:
        if drops:
            drops.pop()
            assert request.transport is not None
            request.transport.abort()  # no response byte at all
        return web.json_response({"ok": True})

    upstream = await make_upstream(drop_first)
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 200
    assert len(upstream.seen) == 2


async def test_post_is_not_retried_when_the_connection_drops(make_upstream, make_proxy) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    upstream = await make_upstream(drop)
    client = await make_proxy(upstream.url)
    resp = await client.post("/trade-api/v2/portfolio/orders", json={"ticker": "X"})
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "proxy_upstream_error"
    assert len(upstream.seen) == 1


async def test_refused_connection_is_502_after_retries(make_proxy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await make_proxy(f"http://127.0.0.1:{port}")
    with capture_logs() as events:
        resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 502
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["retries"] == 2


async def test_deadline_bounds_the_whole_call(make_upstream, make_proxy, tmp_path: Path) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({})

    upstream = await make_upstream(hang)
    config = tmp_path / "c.yaml"
    config.write_text("upstream: {timeout: 5, deadline: 0.4}\n")
    client = await make_proxy(upstream.url, config_file=config)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 504
    assert loop.time() - started < 2


async def test_upstream_429_gets_a_retry_after(make_upstream, make_proxy) -> None:
    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"error": "too many requests"}, status=429)

    upstream = await make_upstream(limited)
    client = await make_proxy(upstream.url)
    resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert await resp.json() == {"error": "too many requests"}
    assert len(upstream.seen) == 1  # 429 is not retried


async def test_local_rate_limit_queues_then_refuses(
    make_upstream, make_proxy, tmp_path: Path
) -> None:
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    # 20 write tokens/s, bucket of 20; POST /portfolio/orders costs 20 in Kalshi's table.
    config.write_text("rate_limit: {write_per_second: 20, write_capacity: 20, max_wait: 0.6}\n")
    client = await make_proxy(upstream.url, config_file=config)
    first = await client.post("/trade-api/v2/portfolio/orders", data=b"{}")
    assert first.status == 200
    with capture_logs() as events:
        second = await client.post("/trade-api/v2/portfolio/orders", data=b"{}")
    # The second order needs 20 more tokens at 20/s: 1 s, more than max_wait: refused at once.
    assert second.status == 429
    assert second.headers["Retry-After"] == "1"
    error = (await second.json())["error"]
    assert error["code"] == "proxy_rate_limited" and "write" in error["message"]
    assert len(upstream.seen) == 1
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["error"] == "proxy_rate_limited"
    await asyncio.sleep(0.55)
    # Half a second later a cheaper call (cost 10) fits within max_wait: it waits, then passes.
    with capture_logs() as events:
        third = await client.put("/trade-api/v2/portfolio/other", data=b"{}")
    assert third.status == 200
    (event,) = [e for e in events if e["event"] == "request"]
    assert event.get("rate_wait_ms") is None or event["rate_wait_ms"] < 600


async def test_upstream_401_is_diagnosed_once_with_context(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(
        upstream.url, KALSHI_API_KEY_ID="00000000-0000-0000-0000-00000000dead"
    )
    with capture_logs() as events:
        for _ in range(3):
            resp = await client.get("/trade-api/v2/portfolio/balance?x=1")
            assert resp.status == 401
            assert (await resp.json())["error"]["details"] == "NOT_FOUND"
    diagnoses = [e for e in events if e["event"] == "upstream_401"]
    assert len(diagnoses) == 1  # rate-limited
    diagnosis = diagnoses[0]
    assert diagnosis["kalshi_code"] == "NOT_FOUND"
    assert diagnosis["key_id"] == "00000000-0000-0000-0000-00000000dead"
    assert diagnosis["fingerprint"].startswith("SHA256:")
    assert diagnosis["signed_message"].endswith("GET/trade-api/v2/portfolio/balance")
    assert diagnosis["environment"] == "demo"
    assert diagnosis["host"] == upstream.url
    assert abs(diagnosis["clock_offset_s"]) < 2
    signature = upstream.seen[-1].headers["KALSHI-ACCESS-SIGNATURE"]
    assert signature not in repr(events)


async def test_clock_offset_warning_from_probe(make_upstream, make_proxy) -> None:
    async def skewed(request: web.Request) -> web.Response:
        import time

        # Dates are stamped by aiohttp unless set: claim to be 10 s ahead.
        return web.json_response({}, headers={"Date": formatdate(time.time() + 10, usegmt=True)})

    upstream = await make_upstream(skewed)
    client = await make_proxy(upstream.url)
    monitor = client.app[MONITOR]
    with capture_logs() as events:
        result = await monitor.probe()
    assert result.ok
    (warning,) = [e for e in events if e["event"] == "clock_offset"]
    assert 8 < warning["offset_s"] < 12
    assert 8 < monitor.offset < 12


async def test_readyz_flips_with_upstream_and_drain(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    # A second probe within the freshness window is answered from cache.
    seen_before = len(upstream.seen)
    assert (await client.get("/readyz")).status == 200
    assert len(upstream.seen) == seen_before
    client.app[LIFECYCLE].draining = True
    draining = await client.get("/readyz")
    assert draining.status == 503 and (await draining.json())["status"] == "draining"
    client.app[LIFECYCLE].draining = False
    # Upstream gone and nothing answered recently: not ready, with the reason.
    await upstream.server.close()
    client.app[MONITOR].last_answer = None
    down = await client.get("/readyz")
    assert down.status == 503
    assert "not reachable" in (await down.json())["reason"]
    assert (await client.get("/healthz")).status == 200


def test_clock_offset_parsing() -> None:
    assert clock_offset(None, 0, 0) is None
    assert clock_offset("not a date", 0, 0) is None
    assert clock_offset("Thu, 01 Jan 1970 00:00:10 GMT", 0.0, 1.0) == 10.0


def test_kalshi_error_code() -> None:
    assert kalshi_error_code(b'{"error":{"code":"x","details":"Y"}}') == "Y"
    assert kalshi_error_code(b'{"error":{"code":"header_timestamp_expired"}}') == (
        "header_timestamp_expired"
    )
    assert kalshi_error_code(b'{"error":"too many requests"}') is None
    assert kalshi_error_code(b"<html>") is None


async def test_reloaded_timeout_reaches_the_body_read(make_upstream, make_proxy) -> None:
    """A SIGHUP that lowers upstream.timeout applies to reads of an answer's body too."""
    import dataclasses

    from signing_proxy.app import LIVE
    from signing_proxy.live import make_snapshot

    async def stalls(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"x" * 100)
        await asyncio.sleep(10)  # then nothing more
        return resp

    upstream = await make_upstream(stalls)
    client = await make_proxy(upstream.url)  # upstream.timeout is 30 s at start
    live = client.app[LIVE]
    config = live.current.config
    faster = dataclasses.replace(config, upstream=dataclasses.replace(config.upstream, timeout=0.3))
    live.swap(make_snapshot(faster, live.current.signer, live.current))
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await client.get("/trade-api/v2/markets")
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert loop.time() - started < 3
