"""Upstreams on loopback: one that verifies every signature like Kalshi, one that accepts
WebSockets, and broken ones (a TLS server with a self-signed certificate, a non-HTTP one)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signing_proxy.kalshi.verifier import check_auth
from tests.support.certificates import write_pem_pair
from tests.support.keys import KEY_ID, KeyMaterial

SSH_BANNER = b"SSH-2.0-OpenSSH_9.6\r\n"


async def accepting_upstream(request: web.Request) -> web.StreamResponse:
    """Accepts any WebSocket handshake and holds it open (echoing text); else answers 200."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws
    return web.json_response({"ok": True})


@dataclass
class Listener:
    """A loopback server and how many TCP connections it has accepted."""

    port: int
    connections: int = 0


def self_signed_certificate(directory: Path, dns_name: str = "localhost") -> tuple[Path, Path]:
    """A fresh self-signed certificate for `dns_name` only, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    paths = (directory / "upstream-cert.pem", directory / "upstream-key.pem")
    return write_pem_pair(*paths, certificate, key)


@asynccontextmanager
async def tls_server(cert_path: Path, key_path: Path) -> AsyncIterator[Listener]:
    """A TLS server on 127.0.0.1 that counts connections (handshakes that fail included)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    listener = Listener(port=0)

    def accepted() -> asyncio.Protocol:
        # Called for each accepted connection, before its TLS handshake.
        listener.connections += 1
        return asyncio.Protocol()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(accepted, "127.0.0.1", 0, ssl=context)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def banner_server(
    banner: bytes = SSH_BANNER, *, hang_up: bool = False
) -> AsyncIterator[Listener]:
    """A server that greets every connection with `banner` (an SSH server, say), not HTTP.

    It waits for the client to hang up, or with `hang_up` closes the connection itself.
    """
    writers: list[asyncio.StreamWriter] = []
    listener = Listener(port=0)

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        writers.append(writer)
        writer.write(banner)
        await writer.drain()
        if not hang_up:
            await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


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
