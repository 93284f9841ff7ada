"""Fault injection: a misbehaving local upstream, and what the client gets back."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from signing_proxy.kalshi.signer import Signer
from signing_proxy.ops.health import clock_offset, kalshi_error_code
from signing_proxy.proxy.app import LIFECYCLE, LIVE, MONITOR
from signing_proxy.proxy.live import make_snapshot
from tests.support.keys import new_rsa_key
from tests.support.upstreams import SSH_BANNER, banner_server, self_signed_certificate, tls_server

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
    before_ms = time.time_ns() // 1_000_000
    with capture_logs() as events:
        resp = await client.request(method, "/trade-api/v2/markets")
    after_ms = time.time_ns() // 1_000_000
    assert resp.status == 200
    assert [s.method for s in upstream.seen] == [method] * 3
    # Each attempt carried a fresh, valid signature: made during this call, in order, and
    # never one sent before.
    assert all(s.auth_error is None for s in upstream.seen)
    timestamps = [int(s.headers["KALSHI-ACCESS-TIMESTAMP"]) for s in upstream.seen]
    assert before_ms <= timestamps[0] <= timestamps[1] <= timestamps[2] <= after_ms
    signatures = {s.headers["KALSHI-ACCESS-SIGNATURE"] for s in upstream.seen}
    assert len(signatures) == 3
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["retries"] == 2


ORDER = b'{"ticker": "KX-1", "count": "1.00"}'


async def _order_in_chunks() -> AsyncIterator[bytes]:
    yield ORDER[:10]
    yield ORDER[10:]


def order_body(kind: str) -> bytes | AsyncIterator[bytes] | None:
    """The request body of each kind: sized (streamed upstream), chunked (buffered), none."""
    return {"sized": ORDER, "chunked": _order_in_chunks(), "none": None}[kind]


@pytest.mark.parametrize("body", ["sized", "chunked", "none"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_writes_are_never_retried(make_upstream, make_proxy, method: str, body: str) -> None:
    upstream = await make_upstream(flaky([503]))
    client = await make_proxy(upstream.url)
    resp = await client.request(
        method, "/trade-api/v2/portfolio/events/orders", data=order_body(body)
    )
    assert resp.status == 503
    assert [s.method for s in upstream.seen] == [method]
    assert upstream.seen[0].body == (b"" if body == "none" else ORDER)


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
    resp = await client.post("/trade-api/v2/portfolio/events/orders", json={"ticker": "X"})
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "proxy_upstream_error"
    assert len(upstream.seen) == 1


def answers_once_then_drops(peers: list[object]):
    """An upstream handler that answers the first request, then drops every later one unanswered."""

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        if len(peers) == 1:
            return web.json_response({"ok": True})
        request.transport.abort()  # the request arrived; not one byte of answer goes back
        return web.Response()

    return handler


@pytest.mark.parametrize(
    ("method", "body", "arrivals"),
    [
        *[(m, b, 1) for m in ("DELETE", "PUT", "POST") for b in ("sized", "chunked", "none")],
        ("GET", "none", 3),  # 1 + upstream.retries, by the proxy's own policy
        ("HEAD", "none", 3),
    ],
)
async def test_dropped_keep_alive_connection_resends_only_reads(
    make_upstream, make_proxy, method: str, body: str, arrivals: int
) -> None:
    """aiohttp's own resend of idempotent methods (PUT, DELETE) is off: a cancel goes once.
    (A cancel goes on the order lane's connections, which never resend either.)"""
    peers: list[object] = []
    upstream = await make_upstream(answers_once_then_drops(peers))
    client = await make_proxy(upstream.url)
    target = "/trade-api/v2/portfolio/events/orders/abc"
    # The same call first, answered: it opens the kept-alive connection the next one takes.
    assert (await client.request(method, target, data=order_body(body))).status == 200
    resp = await client.request(method, target, data=order_body(body))
    assert resp.status == 502
    assert peers[1] == peers[0]  # the dropped request went over the kept-alive connection
    calls = upstream.seen[1:]
    assert [s.method for s in calls] == [method] * arrivals
    assert all(s.auth_error is None for s in calls)
    assert all(s.body == (b"" if body == "none" else ORDER) for s in calls)
    if method != "HEAD":
        error = (await resp.json())["error"]
        assert error["code"] == "proxy_upstream_error"
        assert "closed the connection before answering" in error["message"]


async def test_refused_connection_is_502_after_retries(make_proxy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await make_proxy(f"http://127.0.0.1:{port}")
    with capture_logs() as events:
        resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_unreachable"
    assert error["message"].startswith(f"connection refused by 127.0.0.1:{port}")
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["retries"] == 2
    assert event["error"] == f"proxy_upstream_unreachable: connection refused by 127.0.0.1:{port}"


async def test_unresolvable_upstream_says_dns(make_proxy) -> None:
    # .invalid never resolves (RFC 6761): the resolver answers at once, no network needed.
    client = await make_proxy("http://nonexistent.invalid")
    with capture_logs() as events:
        resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_unreachable"
    assert error["message"].startswith("DNS lookup failed for nonexistent.invalid")
    (event,) = [e for e in events if e["event"] == "request"]
    assert "DNS lookup failed for nonexistent.invalid" in event["error"]


@pytest.mark.parametrize(
    ("trusted", "verify_message"),
    [
        (False, "self-signed certificate"),
        # Trusted, but issued for localhost only while the proxy dials 127.0.0.1.
        (True, "IP address mismatch, certificate is not valid for '127.0.0.1'"),
    ],
)
async def test_tls_certificate_failure_is_named_and_not_retried(
    make_proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted: bool, verify_message: str
) -> None:
    cert, key = self_signed_certificate(tmp_path, "localhost")
    if trusted:
        # The proxy's context loads the system CA store, which OpenSSL reads from here.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    async with tls_server(cert, key) as server:
        client = await make_proxy(f"https://127.0.0.1:{server.port}")
        with capture_logs() as events:
            resp = await client.get("/trade-api/v2/markets")
        assert server.connections == 1  # a certificate error does not heal: no retry
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_tls_error"
    expected = f"TLS certificate verify failed for 127.0.0.1:{server.port}: {verify_message}"
    assert error["message"].startswith(expected)
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["error"].startswith(f"proxy_upstream_tls_error: {expected}")
    assert "retries" not in event


async def test_upstream_that_does_not_speak_http_is_named_without_its_bytes(make_proxy) -> None:
    async with banner_server(SSH_BANNER) as server:
        client = await make_proxy(f"http://127.0.0.1:{server.port}")
        with capture_logs() as events:
            resp = await client.get("/trade-api/v2/markets")
        assert server.connections == 1  # another protocol stays another protocol: no retry
    assert resp.status == 502
    body = await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_protocol_error"
    assert "did not speak HTTP" in error["message"]
    for leaked in ("SSH-2.0", "OpenSSH", "Bad status line"):
        assert leaked not in body
        assert leaked not in repr(events)


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
    # 20 write tokens/s, bucket of 20; an order costs 20 here, other writes 10 (the default).
    config.write_text(
        "rate_limit: {source: config, write_per_second: 20, write_capacity: 20, max_wait: 0.6, "
        "costs: "
        "[{method: POST, path: /trade-api/v2/portfolio/events/orders, cost: 20}]}\n"
    )
    client = await make_proxy(upstream.url, config_file=config)
    first = await client.post("/trade-api/v2/portfolio/events/orders", data=b"{}")
    assert first.status == 200  # the bucket is empty now
    # A cheaper call (cost 10) needs half a second of refill, within max_wait: it queues.
    loop = asyncio.get_running_loop()
    started = loop.time()
    with capture_logs() as events:
        second = await client.put("/trade-api/v2/portfolio/other", data=b"{}")
    waited = loop.time() - started
    assert second.status == 200
    (event,) = [e for e in events if e["event"] == "request"]
    assert 200 < event["rate_wait_ms"] <= 600
    assert waited >= event["rate_wait_ms"] / 1000
    assert [s.method for s in upstream.seen] == ["POST", "PUT"]
    # The order after it needs 20 tokens at 20/s: 1 s, more than max_wait: refused at once.
    started = loop.time()
    with capture_logs() as events:
        third = await client.post("/trade-api/v2/portfolio/events/orders", data=b"{}")
    assert loop.time() - started < 0.3
    assert third.status == 429
    assert third.headers["Retry-After"] == "1"
    error = (await third.json())["error"]
    assert error["code"] == "proxy_rate_limited" and "write" in error["message"]
    assert len(upstream.seen) == 2  # never forwarded
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["error"] == "proxy_rate_limited"
    assert "rate_wait_ms" not in event


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


async def test_answer_cut_short_is_named_without_library_text(make_proxy) -> None:
    # Promises 100 bytes, sends 7, hangs up.
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a":1,'
    async with banner_server(answer, hang_up=True) as server:
        client = await make_proxy(f"http://127.0.0.1:{server.port}")
        with capture_logs() as events:
            resp = await client.get("/trade-api/v2/markets")
    assert resp.status == 502
    body = await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_upstream_body_error"
    assert error["message"] == "the upstream's answer was cut short or malformed"
    for leaked in ("ContentLengthError", "ClientPayloadError", "payload", '{"a":1'):
        assert leaked not in body
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["error"].startswith("proxy_upstream_body_error")


async def test_readyz_names_why_the_upstream_is_unreachable(make_proxy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused = await make_proxy(f"http://127.0.0.1:{closed_port}")
    resp = await refused.get("/readyz")
    assert resp.status == 503
    reason = (await resp.json())["reason"]
    assert reason == f"upstream not reachable: connection refused by 127.0.0.1:{closed_port}"
    async with banner_server(SSH_BANNER) as server:
        wrong = await make_proxy(f"http://127.0.0.1:{server.port}")
        resp = await wrong.get("/readyz")
    assert resp.status == 503
    body = await resp.text()
    assert "did not speak HTTP" in body
    assert "SSH-2.0" not in body and "Bad status line" not in body


def probes(upstream) -> int:
    """How many readiness probes (signed GETs of exchange/status) reached the upstream."""
    return sum(s.raw_path == "/trade-api/v2/exchange/status" for s in upstream.seen)


async def test_readyz_is_not_ready_while_the_upstream_refuses_the_key(
    make_upstream, make_proxy
) -> None:
    # The verifying upstream answers an unknown key as Kalshi does: 401, details NOT_FOUND.
    upstream = await make_upstream()
    client = await make_proxy(
        upstream.url, KALSHI_API_KEY_ID="00000000-0000-0000-0000-00000000dead"
    )
    for attempt in range(1, 3):
        # The refusal is an answer, but never makes the upstream's answers count as ready.
        resp = await client.get("/readyz")
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "not_ready"
        assert body["reason"].startswith("upstream rejects the key (401 NOT_FOUND): ")
        assert "does not know this key id" in body["reason"]
        assert probes(upstream) == attempt


async def test_a_401_on_a_forwarded_call_makes_readiness_probe_again(
    make_upstream, make_proxy
) -> None:
    refusing = [False]
    kalshi_401 = {
        "error": {
            "code": "authentication_error",
            "message": "authentication_error",
            "details": "INCORRECT_API_KEY_SIGNATURE",
        }
    }

    async def revocable(request: web.Request) -> web.Response:
        if refusing[0]:
            return web.json_response(kalshi_401, status=401)
        return web.json_response({"exchange_active": True, "trading_active": True})

    upstream = await make_upstream(revocable)
    client = await make_proxy(upstream.url)
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert probes(upstream) == 1  # the second answer came from the fresh acceptance
    refusing[0] = True  # say, the key was revoked in Kalshi's console
    assert (await client.get("/trade-api/v2/portfolio/balance")).status == 401
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert probes(upstream) == 2
    reason = (await resp.json())["reason"]
    assert reason.startswith("upstream rejects the key (401 INCORRECT_API_KEY_SIGNATURE): ")
    refusing[0] = False
    assert (await client.get("/readyz")).status == 200
    assert probes(upstream) == 3


async def test_readiness_probes_again_after_a_key_reload(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    assert (await client.get("/readyz")).status == 200
    live = client.app[LIVE]
    stranger = Signer(str(uuid.uuid4()), new_rsa_key())
    live.swap(make_snapshot(live.current.config, stranger, live.current))
    resp = await client.get("/readyz")
    assert resp.status == 503  # the acceptance belonged to the previous key
    assert "401 NOT_FOUND" in (await resp.json())["reason"]
    assert probes(upstream) == 2


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
