"""The gateway with the real command: `kill -9` in the middle of an order leaves it pending
in the journal; `signing-proxy halt`, `status` and `resume` drive a running proxy."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from signing_proxy.gateway.journal import read
from tests.support.keys import KEY_ID, KeyMaterial, write_key
from tests.support.processes import Proc, base_env, run_cli, start_cli
from tests.support.upstreams import auth_error

ORDERS = "/trade-api/v2/portfolio/events/orders"
ADMIN = "admin-token-0123456789abcdef"
BOT = "bot-token-0123456789abcdef"
ORDER = {"ticker": "T-1", "side": "bid", "price": "0.40", "count": "3"}


def write_config(tmp_path: Path, key_material: KeyMaterial, upstream: str) -> Path:
    key = write_key(tmp_path, key_material.pkcs8, name="gateway-key.pem")
    config = tmp_path / "gateway.yaml"
    tokens = [{"name": "ops", "token": ADMIN, "admin": True}, {"name": "bot", "token": BOT}]
    config.write_text(
        json.dumps(
            {
                "credentials": {"api_key_id": KEY_ID, "private_key_file": str(key)},
                "upstream": {"rest_url": upstream, "probe_interval": 0},
                "listen": {"port": 0},
                "access": {"tokens": tokens},
                "journal": {"path": str(tmp_path / "journal.sqlite3")},
            }
        )
    )
    return config


async def start(config: Path) -> tuple[Proc, int]:
    env = base_env(SIGNING_PROXY_LOG_FORMAT="json")
    proc = await start_cli("run", "--config", str(config), env=env)
    port = int((await proc.wait_for(r'"listen": "http://[^"]+:(\d+)"')).group(1))
    return proc, port


async def test_kill_9_mid_order_leaves_it_pending_in_the_journal(
    tmp_path: Path, key_material: KeyMaterial, no_leftover_processes: None
) -> None:
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        assert auth_error(request, key_material) is None
        arrived.set()
        await asyncio.sleep(30)
        return web.json_response({"order_id": "never"}, status=201)

    app = web.Application()
    app.router.add_post(ORDERS, hang)
    upstream = TestServer(app)
    await upstream.start_server()
    config = write_config(tmp_path, key_material, str(upstream.make_url("")).rstrip("/"))
    proc, port = await start(config)
    async with aiohttp.ClientSession() as session:
        posting = asyncio.create_task(
            session.post(
                f"http://127.0.0.1:{port}{ORDERS}",
                json=ORDER,
                headers={"Authorization": f"Bearer {BOT}"},
            )
        )
        await asyncio.wait_for(arrived.wait(), 10)
        proc.process.send_signal(signal.SIGKILL)
        code, _, _ = await proc.stop(None)
        assert code == -signal.SIGKILL
        posting.cancel()
    await upstream.close()
    (row,) = read(tmp_path / "journal.sqlite3")
    assert (row["state"], row["status"], row["client"], row["notional"]) == (
        "pending",
        None,
        "bot",
        "1.20",
    )
    shown = run_cli("journal", "--config", str(config))
    assert shown.returncode == 0 and "pending" in shown.stdout


async def test_halt_status_and_resume_from_the_command_line(
    tmp_path: Path, key_material: KeyMaterial, no_leftover_processes: None
) -> None:
    seen: list[str] = []

    async def accept(request: web.Request) -> web.Response:
        assert auth_error(request, key_material) is None
        seen.append(request.method)
        return web.json_response({"order_id": "o-1"}, status=201)

    app = web.Application()
    app.router.add_post(ORDERS, accept)
    upstream = TestServer(app)
    await upstream.start_server()
    config = write_config(tmp_path, key_material, str(upstream.make_url("")).rstrip("/"))
    proc, port = await start(config)
    url = ["--config", str(config), "--url", f"http://127.0.0.1:{port}"]
    try:
        halted = await asyncio.to_thread(run_cli, "halt", *url, "--reason", "lunch")
        assert halted.returncode == 0, halted.stderr
        assert json.loads(halted.stdout)["halt"]["reason"] == "lunch"
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {BOT}"}
            target = f"http://127.0.0.1:{port}{ORDERS}"
            async with session.post(target, json=ORDER, headers=headers) as reply:
                assert reply.status == 403
            status = await asyncio.to_thread(run_cli, "status", *url)
            assert json.loads(status.stdout)["halted"] is True
            resumed = await asyncio.to_thread(run_cli, "resume", *url)
            assert json.loads(resumed.stdout) == {"resumed": ["*"]}
            async with session.post(target, json=ORDER, headers=headers) as reply:
                assert reply.status == 201
        assert seen == ["POST"]
        unknown = await asyncio.to_thread(run_cli, "halt", *url, "--client", "nobody")
        assert unknown.returncode == 1 and "proxy_invalid_admin_request" in unknown.stderr
    finally:
        await proc.stop()
        await upstream.close()
