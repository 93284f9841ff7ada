"""The guard: one routing decision for every check, and no web page can use the proxy.

Raw sockets send the exact bytes an attacker would; the upstream records every request it
receives and accepts WebSocket handshakes, so a check that is walked around shows up as a
request that reached it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from signing_proxy.config import load_config
from signing_proxy.proxy.guard import host_allowed, origin_refusal
from tests.support.upstreams import accepting_upstream

pytestmark = pytest.mark.usefixtures("clean_env")

TOKEN = "bot-token-0123456789abcdef"
UPGRADE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


async def raw(port: int, payload: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `payload` as is; the answer's status, headers (lower-case names) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            status = int(lines[0].split()[1])
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
        return status, headers, body
    finally:
        writer.close()


def request(
    target: str, *, method: str = "GET", host: str = "127.0.0.1", extra: bytes = b""
) -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode()
        + extra
        + b"Content-Length: 0\r\n\r\n"
    )


def error_code(body: bytes) -> str:
    payload: dict[str, Any] = json.loads(body)
    return str(payload["error"]["code"])


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "access:\n  tokens:\n    - name: bot\n"
        f"      token: {TOKEN}\n"
        '      deny: ["GET /trade-api/ws/v2"]\n'
    )
    return path


# --- one routing decision --------------------------------------------------------------------

WS_SPELLINGS = [
    "/%74rade-api/ws/v2",
    "/trade-api/ws/%76%32",
    "/trade-api%2Fws%2Fv2",
    "/%2574rade-api/ws/v2",
    "//trade-api/ws/v2",
    "/trade-api/ws/v2/",
    "/trade-api\\ws\\v2",
]


@pytest.mark.parametrize("target", WS_SPELLINGS)
async def test_no_spelling_of_the_websocket_route_skips_the_token(
    make_upstream, make_proxy, tokens_file: Path, target: str
) -> None:
    upstream = await make_upstream(accepting_upstream)
    client = await make_proxy(upstream.url, config_file=tokens_file)
    status, _, body = await raw(client.port, request(target, extra=UPGRADE))
    assert status == 400
    assert error_code(body) == "proxy_invalid_path"
    assert upstream.seen == []


@pytest.mark.parametrize(
    "target",
    ["http://x/trade-api/ws/v2", "http://127.0.0.1/trade-api/v2/portfolio/balance", "*"],
)
async def test_absolute_and_asterisk_form_targets_are_refused(
    make_upstream, make_proxy, tokens_file: Path, target: str
) -> None:
    upstream = await make_upstream(accepting_upstream)
    client = await make_proxy(upstream.url, config_file=tokens_file)
    status, _, body = await raw(client.port, request(target, extra=UPGRADE))
    assert status == 400
    # aiohttp's parser refuses "GET *" itself; the proxy still answers in its own shape.
    assert error_code(body) in ("proxy_invalid_target", "proxy_bad_request")
    assert upstream.seen == []


@pytest.mark.parametrize(
    "target",
    ["/%74rade-api/v2/portfolio/balance", "/trade-api/%76%32/portfolio/balance"],
)
async def test_encoded_rest_route_is_refused_not_forwarded(
    make_upstream, make_proxy, target: str
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    status, _, body = await raw(client.port, request(target))
    assert status == 400
    assert error_code(body) == "proxy_invalid_path"
    assert upstream.seen == []


async def test_deny_rule_on_the_websocket_route_holds(
    make_upstream, make_proxy, tokens_file: Path
) -> None:
    upstream = await make_upstream(accepting_upstream)
    client = await make_proxy(upstream.url, config_file=tokens_file)
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    status, _, body = await raw(client.port, request("/trade-api/ws/v2", extra=UPGRADE + auth))
    assert status == 403
    assert error_code(body) == "proxy_forbidden"
    assert upstream.seen == []


async def test_websocket_route_without_a_token_is_401(
    make_upstream, make_proxy, tokens_file: Path
) -> None:
    upstream = await make_upstream(accepting_upstream)
    client = await make_proxy(upstream.url, config_file=tokens_file)
    status, _, _ = await raw(client.port, request("/trade-api/ws/v2", extra=UPGRADE))
    assert status == 401
    assert upstream.seen == []


async def test_unknown_routes_need_the_token_too(
    make_upstream, make_proxy, tokens_file: Path
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url, config_file=tokens_file)
    assert (await raw(client.port, request("/admin")))[0] == 401
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    status, _, body = await raw(client.port, request("/admin", extra=auth))
    assert (status, error_code(body)) == (404, "proxy_not_found")
    for probe in ("/healthz", "/metrics"):
        assert (await raw(client.port, request(probe)))[0] == 200
    assert upstream.seen == []


async def test_probes_answer_get_only(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    status, headers, _ = await raw(client.port, request("/healthz", method="POST"))
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


# --- Host: DNS rebinding ---------------------------------------------------------------------


@pytest.mark.parametrize("host", ["rebind.evil.example", "rebind.evil.example:8080", "x", ""])
async def test_foreign_host_is_refused_and_not_forwarded(
    make_upstream, make_proxy, host: str
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    status, _, body = await raw(client.port, request("/trade-api/v2/markets", host=host))
    assert (status, error_code(body)) == (403, "proxy_host_not_allowed")
    assert upstream.seen == []


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST."]
)
async def test_loopback_hosts_are_served(make_upstream, make_proxy, host: str) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    status, _, _ = await raw(client.port, request("/trade-api/v2/markets", host=host))
    assert status == 200
    assert len(upstream.seen) == 1


async def test_allowed_hosts_adds_a_compose_name(make_upstream, make_proxy, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("listen:\n  allowed_hosts: [signing-proxy]\n")
    upstream = await make_upstream()
    client = await make_proxy(upstream.url, config_file=config)
    ok, _, _ = await raw(client.port, request("/trade-api/v2/markets", host="signing-proxy:8080"))
    other, _, _ = await raw(client.port, request("/trade-api/v2/markets", host="other:8080"))
    assert (ok, other) == (200, 403)


def test_host_parsing() -> None:
    assert host_allowed(None, frozenset())
    assert host_allowed("10.1.2.3:80", frozenset())
    assert host_allowed("[::1]", frozenset())
    assert host_allowed("app.localhost", frozenset())
    assert not host_allowed("[::1", frozenset())
    assert not host_allowed("localhost:80x", frozenset())
    assert not host_allowed("localhost:\u00b3", frozenset())  # isdigit takes '³'; a port does not
    assert not host_allowed("[::1]:\u00b3", frozenset())
    assert not host_allowed("127.0.0.1.evil.example", frozenset())
    assert not host_allowed("localhost.evil.example", frozenset())


# --- Origin, Sec-Fetch-Site and CORS ---------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"Origin: https://evil.example\r\n",
        b"Origin: null\r\n",
        b"Origin: http://localhost:3000\r\n",
        b"Sec-Fetch-Site: cross-site\r\n",
        b"Sec-Fetch-Site: same-site\r\n",
    ],
)
async def test_a_web_page_cannot_place_an_order(make_upstream, make_proxy, header: bytes) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    body = b'{"ticker":"X","side":"bid","count":"1","price":"0.5"}'
    payload = (
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        + header
        + b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    status, _, answer = await raw(client.port, payload)
    assert (status, error_code(answer)) == (403, "proxy_origin_not_allowed")
    assert upstream.seen == []


async def test_a_web_page_cannot_open_a_websocket(make_upstream, make_proxy) -> None:
    upstream = await make_upstream(accepting_upstream)
    client = await make_proxy(upstream.url)
    origin = b"Origin: https://evil.example\r\n"
    status, _, body = await raw(client.port, request("/trade-api/ws/v2", extra=UPGRADE + origin))
    assert (status, error_code(body)) == (403, "proxy_origin_not_allowed")
    assert upstream.seen == []


async def test_typed_url_and_tools_without_origin_are_served(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    typed = b"Sec-Fetch-Site: none\r\n"
    assert (await raw(client.port, request("/trade-api/v2/markets", extra=typed)))[0] == 200
    assert (await raw(client.port, request("/trade-api/v2/markets")))[0] == 200


async def test_preflight_is_answered_never_forwarded(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    preflight = (
        b"Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n"
        b"Access-Control-Request-Headers: content-type\r\n"
    )
    target = "/trade-api/v2/portfolio/events/orders"
    status, headers, body = await raw(
        client.port, request(target, method="OPTIONS", extra=preflight)
    )
    assert (status, error_code(body)) == (403, "proxy_origin_not_allowed")
    assert "access-control-allow-origin" not in headers
    assert upstream.seen == []


@pytest.fixture
def dashboard_file(tmp_path: Path) -> Path:
    path = tmp_path / "origins.yaml"
    path.write_text("access:\n  allowed_origins: ['http://localhost:3000']\n")
    return path


async def test_allowed_origin_preflight_and_call(
    make_upstream, make_proxy, dashboard_file: Path
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url, config_file=dashboard_file)
    origin = b"Origin: http://localhost:3000\r\n"
    preflight = origin + (
        b"Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization\r\n"
        b"Access-Control-Request-Private-Network: true\r\n"
    )
    target = "/trade-api/v2/portfolio/balance"
    status, headers, _ = await raw(client.port, request(target, method="OPTIONS", extra=preflight))
    assert status == 204
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert headers["access-control-allow-headers"] == "authorization"
    assert headers["access-control-allow-private-network"] == "true"
    assert upstream.seen == []
    status, headers, _ = await raw(client.port, request(target, extra=origin))
    assert status == 200
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-request-id" in headers["access-control-expose-headers"].lower()
    # The browser's own headers stay local: Kalshi sees a plain API client.
    assert [s.method for s in upstream.seen] == ["GET"]
    assert not any(k.lower() in ("origin", "sec-fetch-site") for k in upstream.seen[0].headers)


async def test_allowed_origin_does_not_open_other_origins(
    make_upstream, make_proxy, dashboard_file: Path
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url, config_file=dashboard_file)
    evil = b"Origin: http://localhost:3001\r\n"
    assert (await raw(client.port, request("/trade-api/v2/markets", extra=evil)))[0] == 403
    assert upstream.seen == []


def test_origin_rules() -> None:
    allowed = ("http://localhost:3000",)

    def refusal(*pairs: tuple[str, str], allowed: tuple[str, ...] = allowed) -> str | None:
        return origin_refusal(CIMultiDict(pairs), allowed)

    assert refusal() is None
    assert refusal(("Origin", "HTTP://LOCALHOST:3000")) is None
    assert refusal(("Origin", "http://localhost:3000"), ("Sec-Fetch-Site", "cross-site")) is None
    assert refusal(("Sec-Fetch-Site", "same-origin"), allowed=()) is None
    assert refusal(("Origin", "http://localhost:3000"), allowed=()) is not None
    # A second copy of a header cannot hide behind a first that would pass.
    assert refusal(("Sec-Fetch-Site", "none"), ("Sec-Fetch-Site", "cross-site")) is not None
    assert refusal(("Origin", "http://localhost:3000"), ("Origin", "https://evil.example"))


def test_allowed_hosts_and_origins_from_the_environment() -> None:
    config = load_config(
        None,
        {
            "SIGNING_PROXY_ALLOWED_HOSTS": "signing-proxy, proxy.internal",
            "SIGNING_PROXY_ALLOWED_ORIGINS": "http://localhost:3000",
        },
    )
    assert config.listen.allowed_hosts == ("signing-proxy", "proxy.internal")
    assert config.access.allowed_origins == ("http://localhost:3000",)


async def test_a_token_header_that_is_not_utf8_is_401(
    make_upstream, make_proxy, tokens_file: Path
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url, config_file=tokens_file)
    for header in (b"Authorization: Bearer \xff\xfe-not-utf8\r\n", b"X-Proxy-Token: \xff\xfe\r\n"):
        status, _, body = await raw(client.port, request("/trade-api/v2/markets", extra=header))
        assert (status, error_code(body)) == (401, "proxy_unauthorized")
    assert upstream.seen == []


async def test_100_continue_only_after_the_guard_passes(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    head = (
        "POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: {host}\r\n"
        "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    refused = await raw(client.port, head.format(host="evil.example").encode())
    assert refused[0] == 403  # not 100: the client must not send its body
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(head.format(host="127.0.0.1").encode())
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
            writer.write(b"{}")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    assert [s.body for s in upstream.seen] == [b"{}"]


async def test_an_unknown_expectation_is_not_echoed(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    odd = b"Expect: <script>alert(1)</script>\r\n"
    status, headers, body = await raw(client.port, request("/trade-api/v2/markets", extra=odd))
    assert b"<script>" not in body
    assert headers["content-type"].startswith("application/json")
    assert status == 200
