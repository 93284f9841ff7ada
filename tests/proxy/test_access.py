"""Inbound tokens, policy rules, limits and bind safety, through a real proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from signing_proxy.config import Overrides, load_config
from signing_proxy.errors import ConfigError
from signing_proxy.proxy.access import AccessPolicy, policy_forms, presented_token
from tests.support.clients import raw_request

pytestmark = pytest.mark.usefixtures("clean_env")

DASHBOARD = "dashboard-token-0123456789abcdef"
BOT = "bot-token-fedcba9876543210fedcba"

# The README's example: a dashboard that can only read, a bot that can trade but not
# mass-cancel, plus a token limited to market data.
POLICY_YAML = f"""
access:
  tokens:
    - name: dashboard
      token: {DASHBOARD}
      read_only: true
    - name: bot
      token_env: BOT_TOKEN
      deny: ["DELETE /trade-api/v2/portfolio/events/orders/batched*"]
    - name: markets-only
      token: markets-only-token-0123456789
      allow: ["GET /trade-api/v2/markets*", "GET /trade-api/v2/exchange/*"]
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_YAML)
    return path


@pytest.fixture
async def guarded(make_upstream, make_proxy, policy_file: Path):
    upstream = await make_upstream()
    client = await make_proxy(upstream.url, config_file=policy_file, BOT_TOKEN=BOT)
    return upstream, client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_token_is_401_and_not_forwarded(guarded) -> None:
    upstream, client = guarded
    resp = await client.get("/trade-api/v2/portfolio/balance")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_unauthorized" and error["service"] == "signing-proxy"
    assert upstream.seen == []


async def test_wrong_token_is_401(guarded) -> None:
    upstream, client = guarded
    resp = await client.get("/trade-api/v2/portfolio/balance", headers=bearer(BOT + "x"))
    assert resp.status == 401
    assert upstream.seen == []


@pytest.mark.parametrize("header", ["Authorization", "X-Proxy-Token"])
async def test_valid_token_passes_and_is_not_forwarded(guarded, header: str) -> None:
    upstream, client = guarded
    value = f"Bearer {BOT}" if header == "Authorization" else BOT
    resp = await client.get("/trade-api/v2/portfolio/balance", headers={header: value})
    assert resp.status == 200
    forwarded = upstream.seen[-1].headers
    assert "Authorization" not in forwarded and "X-Proxy-Token" not in forwarded
    assert BOT not in repr(forwarded)


async def test_token_name_is_logged_never_the_token(guarded) -> None:
    _, client = guarded
    with capture_logs() as events:
        await client.get("/trade-api/v2/portfolio/balance", headers=bearer(BOT))
        await client.get("/trade-api/v2/portfolio/balance", headers=bearer("nope" * 5))
    calls = [e for e in events if e["event"] == "request"]
    assert calls[0]["client"] == "bot" and calls[0]["peer"] == "127.0.0.1"
    assert calls[1]["status"] == 401
    assert BOT not in repr(events) and "nope" * 5 not in repr(events)


async def test_probes_need_no_token(guarded) -> None:
    _, client = guarded
    assert (await client.get("/healthz")).status == 200


async def test_read_only_token_may_read_not_write(guarded) -> None:
    upstream, client = guarded
    ok = await client.get("/trade-api/v2/portfolio/events/orders", headers=bearer(DASHBOARD))
    assert ok.status == 200
    refused = await client.post("/trade-api/v2/portfolio/events/orders", headers=bearer(DASHBOARD))
    assert refused.status == 403
    error = (await refused.json())["error"]
    assert error["code"] == "proxy_forbidden"
    assert "'dashboard' is read_only" in error["message"]
    assert [s.method for s in upstream.seen] == ["GET"]


async def test_deny_rule_wins_and_is_named(guarded) -> None:
    upstream, client = guarded
    refused = await client.delete(
        "/trade-api/v2/portfolio/events/orders/batched", headers=bearer(BOT)
    )
    assert refused.status == 403
    assert (
        "DELETE /trade-api/v2/portfolio/events/orders/batched*"
        in (await refused.json())["error"]["message"]
    )
    allowed = await client.delete("/trade-api/v2/portfolio/events/orders/abc", headers=bearer(BOT))
    assert allowed.status == 200
    assert [s.raw_path for s in upstream.seen] == ["/trade-api/v2/portfolio/events/orders/abc"]


async def test_deny_rule_sees_through_percent_encoding(guarded) -> None:
    upstream, client = guarded
    reply = await raw_request(
        client.port,
        "DELETE /trade-api/v2/portfolio/events/%6Frders/batched HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {BOT}\r\nConnection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 403")
    assert upstream.seen == []


@pytest.mark.parametrize(
    "path",
    [
        "/trade-api/v2/portfolio//events/orders/batched",
        "/trade-api/v2//portfolio/events/orders/batched",
        "/trade-api/v2/portfolio/events/orders/BATCHED",
        "/trade-api/v2/portfolio/events/orders;x/batched",
        "/trade-api/v2/portfolio/events/%256Frders/batched",
        "/trade-api/v2/portfolio/events/orders/batched/",
    ],
)
async def test_deny_rule_holds_for_every_spelling_a_server_might_route(guarded, path: str) -> None:
    upstream, client = guarded
    reply = await raw_request(
        client.port,
        f"DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {BOT}\r\nConnection: close\r\n\r\n",
    )
    # Refused by the rule (403), or earlier as a malformed path (400: an encoded '%').
    assert reply.startswith((b"HTTP/1.1 403", b"HTTP/1.1 400"))
    assert upstream.seen == []


def test_policy_forms() -> None:
    forms = policy_forms("/a//b;x/%2563/")
    assert {"/a//b;x/%2563/", "/a//b;x/%63/", "/a//b;x/c/", "/a/b/c"} <= forms


async def test_allow_list_limits_a_token(guarded) -> None:
    upstream, client = guarded
    headers = {"X-Proxy-Token": "markets-only-token-0123456789"}
    assert (await client.get("/trade-api/v2/markets?limit=1", headers=headers)).status == 200
    assert (await client.head("/trade-api/v2/markets/KX-1", headers=headers)).status == 200
    assert (await client.get("/trade-api/v2/portfolio/balance", headers=headers)).status == 403
    assert (await client.post("/trade-api/v2/markets", headers=headers)).status == 403
    assert [s.method for s in upstream.seen] == ["GET", "HEAD"]


async def test_global_read_only(make_upstream, make_proxy, tmp_path: Path) -> None:
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    config.write_text("access: {read_only: true}\n")
    client = await make_proxy(upstream.url, config_file=config)
    assert (await client.get("/trade-api/v2/portfolio/events/orders")).status == 200
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        resp = await client.request(method, "/trade-api/v2/portfolio/events/orders")
        assert resp.status == 403
        assert "access.read_only" in (await resp.json())["error"]["message"]
    assert len(upstream.seen) == 1


def test_presented_token_forms() -> None:
    assert presented_token({"Authorization": "bearer  abc "}) == "abc"
    assert presented_token({"Authorization": "Basic abc"}) is None
    assert presented_token({"X-Proxy-Token": " t "}) == "t"
    assert presented_token({}) is None


def test_policy_without_tokens_lets_everyone_in() -> None:
    policy = AccessPolicy(load_config(None, {}).access)
    assert policy.authenticate({}) is None
    assert policy.authorize(None, "POST", "/trade-api/v2/portfolio/events/orders") is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.internal"])
def test_non_loopback_bind_needs_a_token(host: str) -> None:
    with pytest.raises(ConfigError, match=r"reachable from other machines.*access\.tokens"):
        load_config(None, {}, Overrides(host=host))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_bind_is_fine(host: str) -> None:
    assert load_config(None, {}, Overrides(host=host)).listen.host == host


def test_remote_bind_with_token_or_opt_out(policy_file: Path) -> None:
    with_token = load_config(str(policy_file), {"BOT_TOKEN": BOT}, Overrides(host="0.0.0.0"))
    assert with_token.listen.host == "0.0.0.0"
    opted = load_config(
        None, {"SIGNING_PROXY_ALLOW_UNAUTHENTICATED_REMOTE": "true"}, Overrides(host="0.0.0.0")
    )
    assert opted.access.allow_unauthenticated_remote


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FETCH /trade-api/v2/x", "must look like 'GET /trade-api/v2/markets*'"),
        ("GET", "must look like"),
        ("GET trade-api", "must look like"),
    ],
)
def test_bad_rules_are_config_errors(tmp_path: Path, rule: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"access:\n  tokens:\n    - {{name: a, token: abcdefghijklmnopq, deny: ['{rule}']}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {})
    assert str(caught.value).startswith("access.tokens[0].deny[0]: " + message)


async def test_slow_client_is_disconnected(make_upstream, make_proxy, tmp_path: Path) -> None:
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    config.write_text("access: {client_timeout: 0.5}\n")
    client = await make_proxy(upstream.url, config_file=config)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"GET /trade-api/v2/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes
    await writer.drain()
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed by the proxy
    writer.close()
    assert upstream.seen == []
    assert (await client.get("/trade-api/v2/markets")).status == 200


async def test_slow_chunked_body_is_408(make_upstream, make_proxy, tmp_path: Path) -> None:
    upstream = await make_upstream()
    config = tmp_path / "c.yaml"
    config.write_text("access: {client_timeout: 0.5}\n")
    client = await make_proxy(upstream.url, config_file=config)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )
    await writer.drain()
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    writer.close()
    assert upstream.seen == []


async def test_websocket_route_needs_a_token_and_obeys_policy(
    key_material, make_proxy, policy_file: Path
) -> None:
    import aiohttp
    from aiohttp.test_utils import TestServer

    from signing_proxy.sandbox import create_sandbox_app
    from tests.support.keys import KEY_ID

    sandbox = TestServer(create_sandbox_app({KEY_ID: key_material.public_key}))
    await sandbox.start_server()
    try:
        client = await make_proxy(
            str(sandbox.make_url("")).rstrip("/"), config_file=policy_file, BOT_TOKEN=BOT
        )
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/trade-api/ws/v2")
        assert refused.value.status == 401
        # A token limited to market REST routes may not open the WebSocket either.
        with pytest.raises(aiohttp.WSServerHandshakeError) as forbidden:
            await client.ws_connect(
                "/trade-api/ws/v2", headers={"X-Proxy-Token": "markets-only-token-0123456789"}
            )
        assert forbidden.value.status == 403
        async with client.ws_connect("/trade-api/ws/v2", headers=bearer(DASHBOARD)) as ws:
            await ws.send_json({"id": 1, "cmd": "list_subscriptions"})
            reply = await ws.receive_json(timeout=5)
            assert reply["id"] == 1
    finally:
        await sandbox.close()
