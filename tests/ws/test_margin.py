"""Perpetuals: /trade-api/ws/v2/margin relays to Kalshi's margin WebSocket host, signed
with its own path, behind the same guard as the main WebSocket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from signing_proxy.config import DEFAULT_MARGIN_WS_URLS, load_config
from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import SANDBOX_STATE
from tests.support.keys import KEY_ID
from tests.support.upstreams import auth_error

pytestmark = pytest.mark.usefixtures("clean_env")

MARGIN = "/trade-api/ws/v2/margin"


@pytest.fixture
async def sandbox(key_material) -> AsyncIterator[TestServer]:
    server = TestServer(create_sandbox_app({KEY_ID: key_material.public_key}))
    await server.start_server()
    yield server
    await server.close()


async def test_margin_handshake_is_signed_with_its_own_path_and_relayed(
    make_proxy, sandbox: TestServer
) -> None:
    client = await make_proxy(str(sandbox.make_url("")).rstrip("/"))
    async with client.ws_connect(MARGIN) as ws:
        await ws.send_str(json.dumps({"id": 1, "cmd": "list_subscriptions"}))
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["id"] == 1
    (handshake,) = [s for s in sandbox.app[SANDBOX_STATE].seen if s.raw_path == MARGIN]
    assert handshake.authenticated  # the sandbox checked timestamp + GET + the margin path


async def test_margin_goes_to_its_own_host(key_material, make_proxy, tmp_path: Path) -> None:
    seen: list[tuple[str, object]] = []

    async def margin_host(request: web.Request) -> web.StreamResponse:
        seen.append((request.raw_path, auth_error(request, key_material)))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:  # Kalshi's answer to list_subscriptions: nothing yet
            command = json.loads(message.data)
            await ws.send_json({"id": command["id"], "type": "ok", "msg": []})
        return ws

    app = web.Application()
    app.router.add_get(MARGIN, margin_host)
    host = TestServer(app)
    await host.start_server()
    try:
        config = tmp_path / "c.yaml"
        margin_url = str(host.make_url(MARGIN)).replace("http://", "ws://")
        config.write_text(f"upstream: {{margin_ws_url: '{margin_url}'}}\n")
        # The REST upstream (and the main WebSocket) is elsewhere: nothing listens there.
        client = await make_proxy("http://127.0.0.1:9", config_file=config)
        async with client.ws_connect(MARGIN) as ws:
            await ws.send_json({"id": 1, "cmd": "list_subscriptions"})
            assert json.loads((await ws.receive(timeout=5)).data)["id"] == 1
        assert seen == [(MARGIN, None)]  # one handshake, its signature verified
    finally:
        await host.close()


async def test_margin_needs_the_token_and_obeys_deny_rules(
    make_proxy, sandbox: TestServer, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "access: {tokens: [{name: bot, token: bot-token-0123456789abcdef, "
        f"deny: ['GET {MARGIN}*']}}]}}\n"
    )
    client = await make_proxy(str(sandbox.make_url("")).rstrip("/"), config_file=config)
    for headers, status in (({}, 401), ({"X-Proxy-Token": "bot-token-0123456789abcdef"}, 403)):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(MARGIN, headers=headers)
        assert refused.value.status == status
    assert not [s for s in sandbox.app[SANDBOX_STATE].seen if s.raw_path == MARGIN]


@pytest.mark.parametrize("environment", ["demo", "production"])
def test_the_margin_host_follows_the_environment(environment: str) -> None:
    config = load_config(None, {"KALSHI_ENV": environment})
    assert config.upstream.margin_ws_url == DEFAULT_MARGIN_WS_URLS[environment]
    assert "margin-ws" in config.upstream.margin_ws_url


def test_a_local_upstream_serves_margin_too() -> None:
    config = load_config(None, {"SIGNING_PROXY_UPSTREAM": "http://127.0.0.1:8081"})
    assert config.upstream.margin_ws_url == f"ws://127.0.0.1:8081{MARGIN}"
