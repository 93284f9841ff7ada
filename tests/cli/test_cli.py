"""End to end: the real CLI in a subprocess, driven with curl, stopped with signals."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from signing_proxy.ops.health import PROBE_PATH
from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import SANDBOX_STATE
from tests.support.keys import KEY_ID, KeyMaterial, write_key
from tests.support.processes import base_env, run_cli, start_cli

# Every CLI process a test starts is killed if the test leaves it running.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes")]

PASSPHRASE = "a passphrase nobody should ever see"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def curl(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body


SIGNATURES_RECEIVED = web.AppKey("signatures_received", list[str])


@web.middleware
async def _record_signature(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[SIGNATURES_RECEIVED].append(request.headers.get("KALSHI-ACCESS-SIGNATURE", ""))
    return await handler(request)


@pytest.fixture
async def sandbox_upstream(key_material: KeyMaterial) -> AsyncIterator[TestServer]:
    app = create_sandbox_app({KEY_ID: key_material.public_key})
    # Keep every signature value received, so the log scan can look for each one.
    app[SIGNATURES_RECEIVED] = []
    app.middlewares.insert(0, _record_signature)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def proxy_env(tmp_path: Path, key_material: KeyMaterial) -> dict[str, str]:
    path = write_key(tmp_path, key_material.encrypted(PASSPHRASE))
    return base_env(
        KALSHI_API_KEY_ID=KEY_ID,
        KALSHI_PRIVATE_KEY_FILE=str(path),
        KALSHI_PRIVATE_KEY_PASSPHRASE=PASSPHRASE,
    )


async def test_run_signs_for_curl_and_stops_cleanly_on_sigterm(
    sandbox_upstream: TestServer, proxy_env: dict[str, str], key_material: KeyMaterial
) -> None:
    upstream = str(sandbox_upstream.make_url("")).rstrip("/")
    proc = await start_cli("run", "--port", "0", "--upstream", upstream, env=proxy_env)
    base = (await proc.wait_for(r'"listen": "(http://[^"]+)"')).group(1)

    status, body = await curl(f"{base}/trade-api/v2/portfolio/balance")
    assert status == 200 and "balance" in json.loads(body)
    status, body = await curl(f"{base}/trade-api/v2/markets?limit=2")
    assert status == 200 and len(json.loads(body)["markets"]) == 2
    post_status, body = await curl(
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"ticker":"NOPE","side":"bid","count":"1.00","price":"0.0100","client_order_id":"c1",'
        '"time_in_force":"good_till_canceled","self_trade_prevention_type":"taker_at_cross"}',
        f"{base}/trade-api/v2/portfolio/events/orders",
    )
    assert post_status == 404  # unknown ticker: the sandbox's answer passes through
    status, body = await curl(f"{base}/not-kalshi")
    assert status == 404 and json.loads(body)["error"]["code"] == "proxy_not_found"

    seen = list(sandbox_upstream.app[SANDBOX_STATE].seen)
    assert all(s.authenticated for s in seen)
    # The start-up probe (signed, to check key and clock) plus the three client calls.
    assert [s.raw_path for s in seen if s.raw_path != PROBE_PATH] == [
        "/trade-api/v2/portfolio/balance",
        "/trade-api/v2/markets?limit=2",
        "/trade-api/v2/portfolio/events/orders",
    ]

    code, out, err = await proc.stop(signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in out + err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    calls = [e for e in events if e["event"] == "request"]
    assert [c["status"] for c in calls] == [200, 200, 404, 404]
    assert {
        "request_id",
        "client",
        "method",
        "path",
        "query",
        "status",
        "bytes_in",
        "bytes_out",
        "total_ms",
    } <= set(calls[0])


INBOUND_TOKEN = "inbound-token-must-not-leak-0123"


async def test_no_secret_appears_in_a_whole_run(
    sandbox_upstream: TestServer,
    proxy_env: dict[str, str],
    key_material: KeyMaterial,
    tmp_path: Path,
) -> None:
    upstream = str(sandbox_upstream.make_url("")).rstrip("/")
    config = tmp_path / "tokens.yaml"
    config.write_text(
        "access:\n  tokens:\n    - {name: bot, token_env: BOT_TOKEN}\n"
        # Translation and Kalshi's limits on too: their paths log and fail in their own ways.
        "compat: {v1_orders: translate}\nrate_limit: {}\n"
    )
    env = {**proxy_env, "SIGNING_PROXY_LOG_LEVEL": "debug", "BOT_TOKEN": INBOUND_TOKEN}
    proc = await start_cli(
        "run", "--port", "0", "--upstream", upstream, "--config", str(config), env=env
    )
    base = (await proc.wait_for(r'"listen": "(http://[^"]+)"')).group(1)
    secret_body = "body-" + "7" * 24
    for path in ("/trade-api/v2/portfolio/balance", "/trade-api/v2/portfolio/events/orders"):
        status, _ = await curl(
            "-H",
            f"Authorization: Bearer {INBOUND_TOKEN}",
            "-H",
            "KALSHI-ACCESS-SIGNATURE: client-sent-signature-value",
            "-d",
            secret_body,
            f"{base}{path}",
        )
        assert status in (200, 400, 404)  # the sandbox answered (signed and verified)
    secret_query, secret_field = "subaccount=QUERY-SECRET-123", "FIELD-SECRET-456"
    v1 = "/trade-api/v2/portfolio/orders"
    v1_order = json.dumps(
        {"ticker": secret_field, "side": "yes", "action": "buy", "count": 1, "yes_price": 5}
    )
    for method, target, body in (
        ("POST", f"{v1}?{secret_query}", v1_order),  # translated, refused by the exchange
        ("POST", f"{v1}?{secret_query}", "[" * 50_000),  # not JSON, deeply nested
        (
            "POST",
            f"{v1}?{secret_query}",
            v1_order.replace('"count": 1', f'"count": "x{secret_field}"'),
        ),
        ("DELETE", f"{v1}/order-1?{secret_query}", ""),
        ("POST", f"{v1}/batched?{secret_query}", f'{{"orders": [{v1_order}]}}'),
    ):
        status, _ = await curl(
            "-X", method, "-H", f"Authorization: Bearer {INBOUND_TOKEN}", "-d", body,
            f"{base}{target}",
        )  # fmt: skip
        assert status < 500
    status, _ = await curl(
        "-H", "X-Proxy-Token: wrong-token-also-secret-000", f"{base}/trade-api/v2/x"
    )
    assert status == 401
    code, out, err = await proc.stop(signal.SIGINT)
    assert code == 0
    signatures = sandbox_upstream.app[SIGNATURES_RECEIVED]
    assert len(signatures) >= 2
    everything = out + err
    assert '"client": "bot"' in everything
    pem_lines = [line for line in key_material.pkcs8.decode().splitlines() if "-----" not in line]
    secrets = [
        *pem_lines,
        *signatures,
        PASSPHRASE,
        secret_body,
        INBOUND_TOKEN,
        "wrong-token-also-secret-000",
        "client-sent-signature-value",
        "QUERY-SECRET-123",
        secret_field,
    ]
    for secret in secrets:
        assert secret not in everything


def test_remote_bind_without_token_is_exit_2(proxy_env: dict[str, str]) -> None:
    line = _config_error(["run", "--host", "0.0.0.0", "--port", "0"], proxy_env)
    assert "listen.host: 0.0.0.0 is reachable from other machines" in line


async def test_remote_bind_opt_out_is_logged_loudly(proxy_env: dict[str, str]) -> None:
    env = {**proxy_env, "SIGNING_PROXY_ALLOW_UNAUTHENTICATED_REMOTE": "true"}
    proc = await start_cli("run", "--host", "0.0.0.0", "--port", "0", env=env)
    match = await proc.wait_for(r'"event": "unauthenticated_remote_access"')
    assert match
    code, out, _ = await proc.stop()
    assert code == 0
    assert '"level": "warning"' in next(
        line for line in out.splitlines() if "unauthenticated_remote_access" in line
    )


async def test_sandbox_command_serves_balance_and_removes_its_key() -> None:
    proc = await start_cli("sandbox", "--port", "0", env=base_env())
    key_file = (await proc.wait_for(r'"key_file": "([^"]+)"')).group(1)
    base = (await proc.wait_for(r"curl -s (http://\S+)/trade-api/v2/portfolio/balance")).group(1)
    assert Path(key_file).exists()
    assert Path(key_file).stat().st_mode & 0o777 == 0o600
    status, body = await curl(f"{base}/trade-api/v2/portfolio/balance")
    assert status == 200
    assert isinstance(json.loads(body)["balance"], int)
    code, out, err = await proc.stop(signal.SIGINT)
    assert code == 0, err
    assert not Path(key_file).exists()
    # The same bounded stop as `run`: it reports stopping and stopped.
    assert '"event": "stopping"' in out and '"event": "stopped"' in out


async def test_sandbox_rate_limit_answers_kalshis_429_through_the_proxy() -> None:
    proc = await start_cli("sandbox", "--port", "0", "--rate-limit", "basic", env=base_env())
    assert (await proc.wait_for(r'"rate_limit": "(\w+)"')).group(1) == "basic"
    base = (await proc.wait_for(r"curl -s (http://\S+)/trade-api/v2/portfolio/balance")).group(1)

    async def get(session: aiohttp.ClientSession) -> tuple[int, str, str | None]:
        async with session.get(f"{base}/trade-api/v2/portfolio/balance") as reply:
            return reply.status, await reply.text(), reply.headers.get("Retry-After")

    # Basic's read bucket holds 20 calls at cost 10; 60 at once overflow it.
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(get(session) for _ in range(60)))
    refused = [a for a in answers if a[0] == 429]
    assert refused, answers
    assert {a[0] for a in answers} == {200, 429}
    assert all(body == '{"error":"too many requests"}' for _, body, _ in refused)
    assert all(retry is not None and int(retry) >= 1 for *_, retry in refused)  # the proxy's
    code, _, err = await proc.stop(signal.SIGINT)
    assert code == 0, err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _one_order_id(seed: str, exchange_port: int) -> str:
    """Start `sandbox --seed SEED --exchange-port P`, place one order, stop; its order id."""
    proc = await start_cli(
        "sandbox", "--port", "0", "--seed", seed, "--exchange-port", str(exchange_port),
        env=base_env(),
    )  # fmt: skip
    upstream = (await proc.wait_for(r'"upstream": "(http://[^"]+)"')).group(1)
    assert upstream == f"http://127.0.0.1:{exchange_port}"
    # The exchange itself is on that port: unsigned, it answers Kalshi's 401.
    status, body = await curl(f"{upstream}/trade-api/v2/portfolio/balance")
    assert status == 401 and "api_key_is_missing_from_headers" in body
    base = (await proc.wait_for(r"curl -s (http://\S+)/trade-api/v2/portfolio/balance")).group(1)
    order = {"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "price": "0.05", "count": "1",
             "time_in_force": "good_till_canceled",
             "self_trade_prevention_type": "taker_at_cross"}  # fmt: skip
    status, body = await curl(
        "-X", "POST", "-d", json.dumps(order), f"{base}/trade-api/v2/portfolio/events/orders"
    )
    assert status == 201, body
    code, _, err = await proc.stop(signal.SIGINT)
    assert code == 0, err
    return str(json.loads(body)["order_id"])


async def test_sandbox_seed_repeats_ids_and_exchange_port_pins_the_exchange() -> None:
    port = free_port()
    first = await _one_order_id("42", port)
    assert first == await _one_order_id("42", port)  # the same port again: it was let go
    assert first != await _one_order_id("43", free_port())


def test_sandbox_exchange_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _config_error(["sandbox", "--port", "0", "--exchange-port", str(port)], base_env())
    assert line == f"signing-proxy: sandbox --exchange-port: 127.0.0.1:{port} is already in use"


def test_python_dash_m_is_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "signing_proxy", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("signing-proxy ")


def test_check_prints_key_facts(proxy_env: dict[str, str]) -> None:
    result = run_cli("check", env=proxy_env)
    assert result.returncode == 0, result.stderr
    assert "RSA 2048 bits" in result.stdout
    assert re.search(r"fingerprint: SHA256:[A-Za-z0-9+/]{43}", result.stdout)
    assert KEY_ID in result.stdout
    assert "https://external-api.demo.kalshi.co" in result.stdout
    assert "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2" in result.stdout
    assert PASSPHRASE not in result.stdout


def _config_error(args: list[str], env: dict[str, str]) -> str:
    result = run_cli(*args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("command", ["run", "check"])
def test_missing_key_file_is_exit_2(command: str, tmp_path: Path) -> None:
    env = base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY_FILE=str(tmp_path / "gone.pem"))
    assert "does not exist" in _config_error([command], env)


def test_wrong_passphrase_is_exit_2(proxy_env: dict[str, str]) -> None:
    env = {**proxy_env, "KALSHI_PRIVATE_KEY_PASSPHRASE": "not it"}
    line = _config_error(["run"], env)
    assert "wrong passphrase" in line and "not it" not in line


def test_non_rsa_key_is_exit_2(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    env = base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY_FILE=str(write_key(tmp_path, pem)))
    assert "Kalshi keys are RSA" in _config_error(["check"], env)


def test_world_readable_key_is_exit_2(tmp_path: Path, key_material: KeyMaterial) -> None:
    path = write_key(tmp_path, key_material.pkcs8, mode=0o644)
    env = base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY_FILE=str(path))
    assert f"chmod 600 {path}" in _config_error(["run"], env)


def test_unknown_config_key_is_exit_2(tmp_path: Path, proxy_env: dict[str, str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("listen:\n  prot: 9000\n")
    line = _config_error(["run", "--config", str(config)], proxy_env)
    assert "unknown setting 'listen.prot' (did you mean 'port'?)" in line


def test_port_in_use_is_exit_2(proxy_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _config_error(["run", "--port", str(port)], proxy_env)
    assert f"127.0.0.1:{port} is already in use" in line


def test_key_from_env_var_alone(key_material: KeyMaterial) -> None:
    pasted = key_material.pkcs1.decode().strip().replace("\n", "\\n")
    result = run_cli("check", env=base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY=pasted))
    assert result.returncode == 0, result.stderr


# A variable holding the bytes b"\xff\xfe", as os.environ (and subprocess) spell it on POSIX.
NOT_UTF8 = b"\xff\xfe".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("variable", ["KALSHI_PRIVATE_KEY_PASSPHRASE", "KALSHI_PRIVATE_KEY"])
def test_secret_env_var_that_is_not_utf8_is_exit_2(
    variable: str, proxy_env: dict[str, str]
) -> None:
    env = {**proxy_env, variable: NOT_UTF8}
    if variable == "KALSHI_PRIVATE_KEY":
        del env["KALSHI_PRIVATE_KEY_FILE"]  # one key source: the one under test
    line = _config_error(["check"], env)
    assert line.startswith(f"signing-proxy: {variable}: ") and "not valid UTF-8" in line


def test_key_id_with_crlf_is_exit_2_without_echoing_it(proxy_env: dict[str, str]) -> None:
    env = {**proxy_env, "KALSHI_API_KEY_ID": "abc\r\nX-Injected: 1"}
    line = _config_error(["check"], env)
    assert "credentials.api_key_id (KALSHI_API_KEY_ID)" in line
    assert "Injected" not in line and "\r" not in line


def test_unresolvable_host_is_exit_2(proxy_env: dict[str, str]) -> None:
    env = {**proxy_env, "SIGNING_PROXY_ALLOW_UNAUTHENTICATED_REMOTE": "true"}
    line = _config_error(["run", "--host", "notahost.invalid", "--port", "0"], env)
    assert "listen.host: cannot resolve 'notahost.invalid'" in line


def test_host_name_typo_is_not_called_remote(proxy_env: dict[str, str]) -> None:
    line = _config_error(["run", "--host", "locahost", "--port", "0"], proxy_env)
    assert "listen.host: 'locahost' is not an IP address or localhost" in line
    assert "is reachable" not in line  # a name may resolve anywhere: no claim


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--host", "0.0.0.0", "--port", "0"], "sandbox --host: '0.0.0.0' is not a loopback"),
        (["--port", "70000"], "sandbox --port: must be between 0 and 65535; got 70000"),
        (["--port", "abc"], "sandbox --port: must be a number between 0 and 65535; got 'abc'"),
        (
            ["--rate-limit", "gold"],
            "sandbox --rate-limit: must be one of basic, advanced, premier, paragon, prime; "
            "got 'gold'",
        ),
        (["--seed", "abc"], "sandbox --seed: must be a whole number from 0 to 922337203685477"),
        (["--seed", "-1"], "sandbox --seed: must be a whole number from 0 to"),
        (["--seed", "9" * 5000], "sandbox --seed: must be a whole number from 0 to"),
        (
            ["--exchange-port", "70000"],
            "sandbox --exchange-port: must be a whole number from 0 to 65535; got '70000'",
        ),
        (["--exchange-port", "x1"], "sandbox --exchange-port: must be a whole number from 0"),
        (
            ["--port", "8123", "--exchange-port", "8123"],
            "sandbox --exchange-port: must differ from --port; both are 8123",
        ),
    ],
)
def test_sandbox_refuses_an_address_others_reach_or_a_bad_port(
    args: list[str], expected: str
) -> None:
    line = _config_error(["sandbox", *args], base_env())
    assert expected in line
    if "--host" in args:  # says why, so the user does not just look for an override
        assert "anyone on the network could use it" in line


def test_tilde_in_config_and_key_paths_is_expanded(
    tmp_path: Path, key_material: KeyMaterial
) -> None:
    write_key(tmp_path, key_material.pkcs8)
    (tmp_path / "c.yaml").write_text(
        f"credentials:\n  api_key_id: {KEY_ID}\n  private_key_file: ~/key.pem\n"
    )
    result = run_cli("check", "--config", "~/c.yaml", env=base_env(HOME=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_curl_is_available() -> None:
    assert shutil.which("curl"), "the end-to-end tests need curl (.ci/run installs it)"
