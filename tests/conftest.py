"""Shared fixtures: a test key, a signature-verifying upstream, and a proxy in front of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from signing_proxy.config import LimitsConfig, Overrides, load_config
from signing_proxy.kalshi.signer import load_signer
from signing_proxy.ops.connections import BoundedAppRunner
from signing_proxy.proxy.app import create_app
from tests.support.keys import KEY_ID, KeyMaterial, key_material_of, new_rsa_key, write_key
from tests.support.processes import stop_leftovers
from tests.support.upstreams import (
    Seen,
    UpstreamHandler,
    VerifyingUpstream,
    auth_error,
    echo,
)

# No test writes to the developer's real state directory (the journal's default home):
# the whole session gets a throwaway one, and each test its own below.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="signing-proxy-test-state-")


@pytest.fixture(autouse=True)
def own_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's state directory: its proxies' default journals (and halts) are its own."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


@pytest.fixture(scope="session")
def key_material() -> KeyMaterial:
    """One RSA key for the whole session (generating one takes a while)."""
    return key_material_of(new_rsa_key())


@pytest.fixture
def key_file(tmp_path: Path, key_material: KeyMaterial) -> Path:
    """The session key as a PKCS#8 file with mode 0600."""
    return write_key(tmp_path, key_material.pkcs8)


@pytest.fixture
async def make_upstream(
    key_material: KeyMaterial,
) -> AsyncIterator[Callable[..., Awaitable[VerifyingUpstream]]]:
    """A factory of loopback upstreams that verify every signature and record each call."""
    servers: list[TestServer] = []

    async def factory(handler: UpstreamHandler = echo, *, verify: bool = True) -> VerifyingUpstream:
        upstream: VerifyingUpstream

        @web.middleware
        async def verifying(request: web.Request, handler: UpstreamHandler) -> web.StreamResponse:
            # Read the body here only when the handler does not stream it itself.
            body = await request.read() if request.can_read_body else b""
            error = auth_error(request, key_material)
            upstream.seen.append(
                Seen(
                    method=request.method,
                    raw_path=request.raw_path,
                    headers=dict(request.headers),
                    body=body,
                    auth_error=error[1] if error else None,
                )
            )
            if error and verify:
                return web.json_response(error[1], status=error[0])
            return await handler(request)

        app = web.Application(middlewares=[verifying])
        app.router.add_route("*", "/{tail:.*}", handler)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        upstream = VerifyingUpstream(server=server)
        return upstream

    yield factory
    for server in servers:
        await server.close()


class ProxyTestServer(TestServer):
    """A TestServer that serves the app as `signing-proxy run` does: connections bounded."""

    def __init__(self, app: web.Application, limits: LimitsConfig) -> None:
        super().__init__(app)
        self._limits = limits

    async def _make_runner(self, **kwargs: Any) -> BoundedAppRunner:
        return BoundedAppRunner(self.app, self._limits, **kwargs)


@pytest.fixture
async def make_proxy(
    key_file: Path,
) -> AsyncIterator[Callable[..., Awaitable[TestClient[web.Request, web.Application]]]]:
    """A factory of in-process proxies (create_app, bounded connections) for an upstream."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def factory(
        upstream_url: str, config_file: Path | None = None, **env: str
    ) -> TestClient[web.Request, web.Application]:
        environ = {
            "KALSHI_API_KEY_ID": KEY_ID,
            "KALSHI_PRIVATE_KEY_FILE": str(key_file),
            **env,
        }
        config = load_config(
            str(config_file) if config_file else None, environ, Overrides(upstream=upstream_url)
        )
        app = create_app(config, load_signer(config.credentials), background_probe=False)
        client = TestClient(ProxyTestServer(app, config.limits))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KALSHI_* or SIGNING_PROXY_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("KALSHI_", "SIGNING_PROXY_")):
            monkeypatch.delenv(name)


@pytest.fixture
async def no_leftover_processes() -> AsyncIterator[None]:
    """A failing test must not leave a proxy running: kill what is still alive."""
    yield
    await stop_leftovers()
