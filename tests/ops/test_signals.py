"""Signals on a real `signing-proxy run`: graceful SIGTERM, SIGHUP key rotation under load."""

from __future__ import annotations

import asyncio
import itertools
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.ops.health import PROBE_PATH
from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import SANDBOX_STATE
from tests.support.keys import KEY_ID, KeyMaterial, new_rsa_key, pkcs8_pem, write_key
from tests.support.processes import base_env, start_cli
from tests.support.upstreams import auth_error

# Every CLI process a test starts is killed if the test leaves it running.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes")]

NEW_KEY_ID = str(uuid.UUID(int=0xB0B))


@pytest.fixture(scope="module")
def new_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


def write_config(
    path: Path,
    key_id: str,
    key_file: Path,
    upstream: str,
    host: str = "127.0.0.1",
    token: str | None = None,
) -> None:
    tokens = f"access:\n  tokens:\n    - {{name: bot, token: {token}}}\n" if token else ""
    path.write_text(
        f"credentials:\n  api_key_id: {key_id}\n  private_key_file: {key_file}\n"
        f"upstream:\n  rest_url: {upstream}\n  probe_interval: 0\n"
        f"listen:\n  host: {host}\n  port: 0\nshutdown_timeout: 10\n{tokens}"
    )


@pytest.fixture
async def both_keys_upstream(
    key_material: KeyMaterial, new_key: rsa.RSAPrivateKey
) -> AsyncIterator[TestServer]:
    """The sandbox, knowing the old and the new key, as Kalshi does during a rotation."""
    app = create_sandbox_app({KEY_ID: key_material.public_key, NEW_KEY_ID: new_key.public_key()})
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


async def test_sigterm_lets_the_request_in_flight_finish(
    key_material: KeyMaterial, tmp_path: Path
) -> None:
    arrived = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        assert auth_error(request, key_material) is None
        arrived.set()
        await asyncio.sleep(1.5)
        return web.json_response({"done": True, "pad": "x" * 100_000})

    app = web.Application()
    app.router.add_get("/trade-api/v2/slow", slow)
    upstream = TestServer(app)
    await upstream.start_server()
    key_file = write_key(tmp_path, key_material.pkcs8)
    config = tmp_path / "c.yaml"
    write_config(config, KEY_ID, key_file, str(upstream.make_url("")).rstrip("/"))
    proc = await start_cli("run", "--config", str(config), env=base_env())
    base = (await proc.wait_for(r'"listen": "(http://[^"]+)"')).group(1)
    try:
        async with aiohttp.ClientSession() as session:
            pending = asyncio.create_task(session.get(f"{base}/trade-api/v2/slow"))
            await asyncio.wait_for(arrived.wait(), 10)
            proc.process.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(pending, 10)
            assert response.status == 200
            body = await response.json()
            assert body["done"] is True and len(body["pad"]) == 100_000
        code, out, err = await proc.stop(None)  # SIGTERM was sent above
        assert code == 0, err
        assert '"event": "stopping"' in out and '"event": "stopped"' in out
    finally:
        await upstream.close()


class Load:
    """Clients calling balance in a loop; each call carries its number in the query."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.stop = asyncio.Event()
        # Set once the test has seen the reload logged as done; the calls sent from then on.
        self.reloaded = False
        self.sent_after_reload: set[int] = set()
        self._numbers = itertools.count()

    async def client(self, base: str) -> None:
        async with aiohttp.ClientSession() as session:
            while not self.stop.is_set():
                number = next(self._numbers)
                if self.reloaded:
                    self.sent_after_reload.add(number)
                url = f"{base}/trade-api/v2/portfolio/balance?n={number}"
                async with session.get(url) as resp:
                    await resp.read()
                    self.statuses[resp.status] += 1


async def test_sighup_rotates_the_key_under_load_without_a_failure(
    both_keys_upstream: TestServer,
    key_material: KeyMaterial,
    new_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    upstream = str(both_keys_upstream.make_url("")).rstrip("/")
    old_file = write_key(tmp_path, key_material.pkcs8, name="old.pem")
    new_file = write_key(tmp_path, pkcs8_pem(new_key), name="new.pem")
    config = tmp_path / "c.yaml"
    write_config(config, KEY_ID, old_file, upstream)
    proc = await start_cli("run", "--config", str(config), env=base_env())
    base = (await proc.wait_for(r'"listen": "(http://[^"]+)"')).group(1)

    load = Load()
    workers = [asyncio.create_task(load.client(base)) for _ in range(8)]
    await asyncio.sleep(0.7)
    write_config(config, NEW_KEY_ID, new_file, upstream)
    proc.process.send_signal(signal.SIGHUP)
    await proc.wait_for(r'"event": "reloaded"')
    load.reloaded = True
    await asyncio.sleep(0.7)
    load.stop.set()
    await asyncio.gather(*workers)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
        assert 'signing_proxy_reloads_total{result="ok"} 1.0' in await resp.text()
    code, out, _ = await proc.stop()
    assert code == 0

    assert set(load.statuses) == {200}, load.statuses
    seen = list(both_keys_upstream.app[SANDBOX_STATE].seen)
    assert all(s.authenticated for s in seen)
    key_of = {int(query): s.key_id for s in seen if (query := s.raw_path.partition("?n=")[2])}
    assert len(key_of) == load.statuses.total()  # every call reached the upstream
    assert set(key_of.values()) == {KEY_ID, NEW_KEY_ID}
    # Arrival order proves nothing: under load, signing runs on threads, so a call signed
    # with the old key just before the swap can reach the upstream after one signed with
    # the new key. What must hold: every call sent after the reload was done uses the new key.
    assert load.sent_after_reload
    assert {key_of[n] for n in load.sent_after_reload} == {NEW_KEY_ID}
    assert '"generation": 2' in out


async def test_sighup_with_a_broken_key_keeps_the_old_one(
    both_keys_upstream: TestServer, key_material: KeyMaterial, tmp_path: Path
) -> None:
    upstream = str(both_keys_upstream.make_url("")).rstrip("/")
    key_file = write_key(tmp_path, key_material.pkcs8)
    config = tmp_path / "c.yaml"
    write_config(config, KEY_ID, key_file, upstream)
    proc = await start_cli("run", "--config", str(config), env=base_env())
    base = (await proc.wait_for(r'"listen": "(http://[^"]+)"')).group(1)

    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    proc.process.send_signal(signal.SIGHUP)
    failed = await proc.wait_for(r'.*"event": "reload_failed".*')
    assert "cannot parse the PEM private key" in failed.group(0)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{base}/trade-api/v2/portfolio/balance") as resp:
                assert resp.status == 200
    code, out, _ = await proc.stop()
    assert code == 0
    assert "garbage" not in out
    assert all(
        s.key_id == KEY_ID and s.authenticated for s in both_keys_upstream.app[SANDBOX_STATE].seen
    )


TOKEN = "bot-token-0123456789abcdef"


async def test_reload_cannot_drop_the_token_of_a_socket_bound_off_loopback(
    both_keys_upstream: TestServer, key_material: KeyMaterial, tmp_path: Path
) -> None:
    upstream = str(both_keys_upstream.make_url("")).rstrip("/")
    key_file = write_key(tmp_path, key_material.pkcs8)
    config = tmp_path / "c.yaml"
    write_config(config, KEY_ID, key_file, upstream, host="0.0.0.0", token=TOKEN)
    proc = await start_cli("run", "--config", str(config), env=base_env())
    port = (await proc.wait_for(r'"listen": "http://0\.0\.0\.0:(\d+)"')).group(1)
    url = f"http://127.0.0.1:{port}/trade-api/v2/portfolio/balance"
    with_token = {"Authorization": f"Bearer {TOKEN}"}

    # The file now says loopback and no tokens; the socket stays on 0.0.0.0 until a restart.
    write_config(config, KEY_ID, key_file, upstream)
    proc.process.send_signal(signal.SIGHUP)
    outcome = (await proc.wait_for(r'.*"event": "reload(ed|_failed)".*')).group(0)
    assert '"reload_failed"' in outcome
    assert "access.tokens" in outcome and "0.0.0.0" in outcome
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 401
        async with session.get(url, headers=with_token) as resp:
            assert resp.status == 200
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert 'signing_proxy_reloads_total{result="failed"} 1.0' in await resp.text()
    code, out, _ = await proc.stop()
    assert code == 0
    assert '"event": "reloaded"' not in out


async def _readyz(base: str) -> tuple[int, str]:
    """/readyz's status code and status, asked on a connection of its own."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{base}/readyz") as resp,
    ):
        return resp.status, (await resp.json())["status"]


async def _refused_once_stopping(base: str) -> None:
    """Wait until the proxy stops accepting: an orchestrator's probe then fails."""
    async with asyncio.timeout(10):
        while True:
            try:
                # A probe that gets no answer has failed too: a connection accepted just
                # as the listener closes may be dropped unanswered (aiohttp's drain).
                await asyncio.wait_for(_readyz(base), 1)
            except (aiohttp.ClientConnectionError, TimeoutError):
                return
            await asyncio.sleep(0.01)


async def test_sigterm_stops_accepting_and_drains_the_request_in_flight(
    key_material: KeyMaterial, tmp_path: Path
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"done": True})

    async def exchange_status(request: web.Request) -> web.Response:
        return web.json_response({"exchange_active": True, "trading_active": True})

    app = web.Application()
    app.router.add_get("/trade-api/v2/slow", slow)
    app.router.add_get(PROBE_PATH, exchange_status)
    upstream = TestServer(app)
    await upstream.start_server()
    config = tmp_path / "c.yaml"
    key_file = write_key(tmp_path, key_material.pkcs8)
    write_config(config, KEY_ID, key_file, str(upstream.make_url("")).rstrip("/"))
    proc = await start_cli("run", "--config", str(config), env=base_env())
    base = (await proc.wait_for(r'"listen": "(http://[^"]+)"')).group(1)

    async def call_slow() -> tuple[int, dict[str, bool]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base}/trade-api/v2/slow") as resp,
        ):
            return resp.status, await resp.json()

    in_flight = asyncio.create_task(call_slow())
    try:
        assert await _readyz(base) == (200, "ready")
        await asyncio.wait_for(arrived.wait(), 10)
        proc.process.send_signal(signal.SIGTERM)
        # The listener closes at once (new calls, /readyz included, are refused; an
        # in-process test covers /readyz's "draining" answer on a live connection).
        await _refused_once_stopping(base)
        await proc.wait_for(r'"event": "stopping"')
        assert not in_flight.done()  # the drain waits for it
        release.set()
        assert await asyncio.wait_for(in_flight, 10) == (200, {"done": True})
        code, out, err = await proc.stop(None)  # SIGTERM was sent above
        assert code == 0, err
        assert '"event": "stopped"' in out
    finally:
        in_flight.cancel()
        release.set()
        await upstream.close()
