"""Signals on a real `signing-proxy run`: graceful SIGTERM, SIGHUP key rotation under load."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.sandbox import SANDBOX_STATE, create_sandbox_app

from .conftest import KEY_ID, KeyMaterial, auth_error, write_key
from .test_cli import _no_process_outlives_its_test, base_env, start_cli

__all__ = ["_no_process_outlives_its_test"]  # autouse here too: kills leftover proxies

pytestmark = pytest.mark.e2e

NEW_KEY_ID = str(uuid.UUID(int=0xB0B))


@pytest.fixture(scope="module")
def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_config(path: Path, key_id: str, key_file: Path, upstream: str) -> None:
    path.write_text(
        f"credentials:\n  api_key_id: {key_id}\n  private_key_file: {key_file}\n"
        f"upstream:\n  rest_url: {upstream}\n  probe_interval: 0\n"
        "listen:\n  port: 0\nshutdown_timeout: 10\n"
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


async def _load(base: str, stop: asyncio.Event, statuses: Counter[int]) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(f"{base}/trade-api/v2/portfolio/balance") as resp:
                await resp.read()
                statuses[resp.status] += 1


async def test_sighup_rotates_the_key_under_load_without_a_failure(
    both_keys_upstream: TestServer,
    key_material: KeyMaterial,
    new_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    upstream = str(both_keys_upstream.make_url("")).rstrip("/")
    old_file = write_key(tmp_path, key_material.pkcs8, name="old.pem")
    new_file = write_key(tmp_path, pem(new_key), name="new.pem")
    config = tmp_path / "c.yaml"
    write_config(config, KEY_ID, old_file, upstream)
    proc = await start_cli("run", "--config", str(config), env=base_env())
    base = (await proc.wait_for(r'"listen": "(http://[^"]+)"')).group(1)

    stop = asyncio.Event()
    statuses: Counter[int] = Counter()
    workers = [asyncio.create_task(_load(base, stop, statuses)) for _ in range(8)]
    await asyncio.sleep(0.7)
    write_config(config, NEW_KEY_ID, new_file, upstream)
    proc.process.send_signal(signal.SIGHUP)
    await proc.wait_for(r'"event": "reloaded"')
    await asyncio.sleep(0.7)
    stop.set()
    await asyncio.gather(*workers)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
        assert 'signing_proxy_reloads_total{result="ok"} 1.0' in await resp.text()
    code, out, _ = await proc.stop()
    assert code == 0

    assert set(statuses) == {200}, statuses
    seen = list(both_keys_upstream.app[SANDBOX_STATE].seen)
    assert all(s.authenticated for s in seen)
    key_ids = [s.key_id for s in seen]
    assert KEY_ID in key_ids and NEW_KEY_ID in key_ids
    # Once the new key is in use, the old one never signs again.
    first_new = key_ids.index(NEW_KEY_ID)
    assert KEY_ID not in key_ids[first_new:]
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


async def test_readyz_reports_draining_during_shutdown(
    both_keys_upstream: TestServer, key_material: KeyMaterial, tmp_path: Path
) -> None:
    upstream = str(both_keys_upstream.make_url("")).rstrip("/")
    config = tmp_path / "c.yaml"
    write_config(config, KEY_ID, write_key(tmp_path, key_material.pkcs8), upstream)
    proc = await start_cli("run", "--config", str(config), env=base_env())
    base = (await proc.wait_for(r'"listen": "(http://[^"]+)"')).group(1)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ready"
    code, _, _ = await proc.stop()
    assert code == 0
