"""Shared fixtures: a test key, a signature-verifying upstream, and a proxy in front of it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.config import LimitsConfig, Overrides, load_config
from signing_proxy.kalshi.signer import load_signer
from signing_proxy.kalshi.verifier import check_auth
from signing_proxy.ops.connections import BoundedAppRunner
from signing_proxy.proxy.app import create_app
from tests.support.processes import stop_leftovers

KEY_ID = str(uuid.UUID(int=0x5EED))


@dataclass(frozen=True)
class KeyMaterial:
    """One RSA key in the encodings users bring."""

    key: rsa.RSAPrivateKey
    pkcs8: bytes
    pkcs1: bytes

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.key.public_key()

    def encrypted(self, passphrase: str) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key, as Kalshi issues them."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pkcs8_pem(key: rsa.RSAPrivateKey) -> bytes:
    """`key` as an unencrypted PKCS#8 PEM, the form Kalshi's download has."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="session")
def key_material() -> KeyMaterial:
    key = new_rsa_key()
    pkcs8 = pkcs8_pem(key)
    pkcs1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return KeyMaterial(key=key, pkcs8=pkcs8, pkcs1=pkcs1)


def write_key(directory: Path, pem: bytes, name: str = "key.pem", mode: int = 0o600) -> Path:
    path = directory / name
    path.write_bytes(pem)
    path.chmod(mode)
    return path


@pytest.fixture
def key_file(tmp_path: Path, key_material: KeyMaterial) -> Path:
    return write_key(tmp_path, key_material.pkcs8)


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes
    auth_error: dict[str, Any] | None


@dataclass
class VerifyingUpstream:
    """A local upstream that verifies every signature with the public key and records calls."""

    server: TestServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


UpstreamHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def echo(request: web.Request) -> web.Response:
    """Describe the request back, so tests see exactly what the proxy forwarded."""
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "raw_path": request.raw_path,
            "body_len": len(body),
            "headers": {k.lower(): v for k, v in request.headers.items()},
        }
    )


@pytest.fixture
async def make_upstream(
    key_material: KeyMaterial,
) -> AsyncIterator[Callable[..., Awaitable[VerifyingUpstream]]]:
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


def auth_error(
    request: web.Request, key_material: KeyMaterial
) -> tuple[int, dict[str, Any]] | None:
    """Kalshi's verdict on the request's signature: None when it verifies."""
    return check_auth(
        request.headers,
        request.method,
        request.raw_path,
        {KEY_ID: key_material.public_key},
        now_ms=time.time_ns() // 1_000_000,
        window_ms=5000,
    )


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
