"""Console log lines as a person reads them, from a real `signing-proxy run` (its real
processors: redaction included)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from signing_proxy.sandbox import create_sandbox_app
from tests.support.keys import KEY_ID, KeyMaterial
from tests.support.processes import base_env, start_cli

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes")]

TOKEN = "console-token-never-shown-0123"


@pytest.fixture
async def exchange(key_material: KeyMaterial) -> AsyncIterator[str]:
    server = TestServer(create_sandbox_app({KEY_ID: key_material.public_key}), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_a_call_reads_time_status_method_path_ms_client_then_the_rest(
    exchange: str, key_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("access:\n  tokens:\n    - {name: bot, token_env: BOT_TOKEN}\n")
    env = base_env(
        KALSHI_API_KEY_ID=KEY_ID,
        KALSHI_PRIVATE_KEY_FILE=str(key_file),
        BOT_TOKEN=TOKEN,
        SIGNING_PROXY_LOG_FORMAT="console",
    )
    proc = await start_cli("run", "--port", "0", "--upstream", exchange, "--config", str(config),
                           env=env)  # fmt: skip
    base = (await proc.wait_for(r" started listen=(http://\S+)")).group(1)
    # A request id equal to the token: kept (it is short and plain), then redacted.
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": TOKEN}
    async with aiohttp.ClientSession(headers=headers) as session:
        for target in ("/trade-api/v2/portfolio/balance", "/trade-api/v2/markets?limit=1"):
            async with session.get(base + target) as resp:
                assert resp.status == 200
        async with session.get(base + "/nowhere") as resp:
            assert resp.status == 404
    await asyncio.sleep(0.2)
    code, out, err = await proc.stop()
    assert code == 0, err
    assert TOKEN not in out + err
    calls = [line for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d \d{3} ", line)]
    lead = r"(\d\d:\d\d:\d\d) (\d{3}) (GET) (\S+) (\d+\.\d)ms (\S+) (.*)"
    parsed = [re.fullmatch(lead, line) for line in calls]
    assert all(parsed), calls
    assert [(m[2], m[4], m[6]) for m in parsed if m] == [
        ("200", "/trade-api/v2/portfolio/balance", "bot"),
        ("200", "/trade-api/v2/markets", "bot"),
        ("404", "/nowhere", "bot"),
    ]
    # The rest in the order logged, not alphabetical: the request id first.
    first_rest = parsed[0][7] if parsed[0] else ""
    assert first_rest.startswith("request_id=[REDACTED] peer=127.0.0.1 query=False bytes_in=0 ")
    assert "query=True" in calls[1]
    # Other events: time, level, event, then their fields.
    assert re.search(r"^\d\d:\d\d:\d\d info    started listen=http://", out, re.MULTILINE)
    assert all(len(line) < 200 for line in calls), calls
