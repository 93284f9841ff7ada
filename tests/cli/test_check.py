"""`signing-proxy check`: run's flags, and --online against the real sandbox exchange (which
verifies every signature and timestamp), each as a real CLI subprocess."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from signing_proxy.sandbox import create_sandbox_app
from tests.support.keys import KEY_ID, KeyMaterial, new_rsa_key
from tests.support.processes import CLI, base_env, run_cli
from tests.support.upstreams import self_signed_certificate, tls_server

pytestmark = pytest.mark.e2e

Exchange = Callable[..., Awaitable[str]]


@pytest.fixture
async def exchange(key_material: KeyMaterial) -> AsyncIterator[Exchange]:
    """A factory of sandbox exchanges on loopback that know KEY_ID; their clock may be moved."""
    servers: list[TestServer] = []

    async def start(skew: float = 0.0, tier: str | None = None, key=None) -> str:
        public = (key or key_material.key).public_key()
        app = create_sandbox_app(
            {KEY_ID: public}, clock=lambda: time.time() + skew, rate_limit_tier=tier
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def env(key_file: Path) -> dict[str, str]:
    return base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY_FILE=str(key_file))


async def check(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`signing-proxy check *args` in a subprocess, while this loop serves the exchange."""
    process = await asyncio.create_subprocess_exec(
        CLI, "check", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode is not None
    assert "Traceback" not in out.decode() + err.decode()
    return process.returncode, out.decode(), err.decode()


def field(out: str, label: str) -> str:
    """The text after `label:` in check's output."""
    match = re.search(rf"^{label}:\s+(.*)$", out, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{out}"
    return match.group(1)


async def test_accepted_key_says_so_with_host_clock_and_tier(
    exchange: Exchange, env: dict[str, str]
) -> None:
    upstream = await exchange(tier="premier")
    code, out, err = await check("--online", "--upstream", upstream, env=env)
    assert code == 0, out + err
    assert err == ""
    assert field(out, "upstream") == f"{upstream} (not a Kalshi host: a local or test upstream)"
    accepted = "accepted (GET /trade-api/v2/portfolio/balance answered 200"
    assert field(out, "key check").startswith(accepted)
    assert field(out, "rate tier") == "premier (read 1000 tokens/s, write 1000 tokens/s)"
    assert field(out, "exchange") == "active, trading active"
    offset = float(field(out, "clock").split()[0])
    assert abs(offset) <= 1.0  # the same clock, seen through a 1 s resolution Date header
    assert out.rstrip().endswith("configuration OK, key accepted by the upstream")


async def test_clock_offset_is_measured_from_the_date_header(
    exchange: Exchange, env: dict[str, str]
) -> None:
    # 3 s ahead: inside Kalshi's window (the key is accepted), but reported, and too far.
    upstream = await exchange(skew=3.0)
    code, out, err = await check("--online", "--upstream", upstream, env=env)
    assert code == 0, out + err
    text = field(out, "clock")
    assert 2.4 <= float(text.split()[0]) <= 3.6, text
    assert "behind the upstream's clock" in text and "TOO FAR" in text


async def test_clock_far_off_is_named_as_the_cause(exchange: Exchange, env: dict[str, str]) -> None:
    upstream = await exchange(skew=-60.0)
    code, out, err = await check("--online", "--upstream", upstream, env=env)
    assert code == 4, out + err
    rejected = "REJECTED: Kalshi answered 401 (header_timestamp_expired"
    assert field(out, "key check").startswith(rejected)
    cause = field(out, "cause")
    assert re.fullmatch(r"the clock: this machine is (59|60)\.\d s ahead of Kalshi's; .*", cause)
    assert err.startswith("signing-proxy: the upstream rejected the key: 401 (header_timestamp")


async def test_unknown_key_id_is_rejected_with_kalshis_code(
    exchange: Exchange, env: dict[str, str]
) -> None:
    upstream = await exchange()
    stranger = str(uuid.uuid4())
    code, out, err = await check(
        "--online", "--upstream", upstream, env={**env, "KALSHI_API_KEY_ID": stranger}
    )
    assert code == 4, out + err
    assert field(out, "key check") == (
        "REJECTED: Kalshi answered 401 (authentication_error / authentication_error / NOT_FOUND)"
    )
    assert field(out, "cause").startswith(f"the upstream does not know key id {stranger}")
    assert "rate tier" not in out  # not asked: the key is not accepted
    assert len(err.splitlines()) == 1


async def test_another_private_key_is_a_signature_error(
    exchange: Exchange, env: dict[str, str]
) -> None:
    # The exchange knows KEY_ID with another key: the PEM is not the one made with this id.
    upstream = await exchange(key=new_rsa_key())
    code, out, _ = await check("--online", "--upstream", upstream, env=env)
    assert code == 4
    assert "INCORRECT_API_KEY_SIGNATURE" in field(out, "key check")
    assert field(out, "cause").startswith("the private key is not the one made with")


async def test_unreachable_upstream_is_its_own_exit_code(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = await check("--online", "--upstream", f"http://127.0.0.1:{port}", env=env)
    assert code == 3, out + err
    assert field(out, "reachable") == f"NO: connection refused by 127.0.0.1:{port}"
    assert err.strip() == (
        f"signing-proxy: cannot reach http://127.0.0.1:{port}: "
        f"connection refused by 127.0.0.1:{port}"
    )


async def test_tls_failure_is_unreachable_with_its_reason(
    env: dict[str, str], tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path, "localhost")
    async with tls_server(cert, key) as server:
        upstream = f"https://127.0.0.1:{server.port}"
        code, out, _ = await check("--online", "--upstream", upstream, env=env)
    assert code == 3
    assert field(out, "reachable").startswith(
        f"NO: TLS certificate verify failed for 127.0.0.1:{server.port}: self-signed certificate"
    )


def test_help_documents_the_exit_codes() -> None:
    result = run_cli("check", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "2 configuration error" in text
    assert "3 (--online) upstream unreachable" in text
    assert "4 (--online) key rejected by Kalshi" in text


def test_check_takes_runs_flags_with_runs_precedence(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("environment: demo\nupstream: {rest_url: 'http://file.example:1'}\n")
    # The file says demo and file.example; the environment overrides it; flags override both.
    env = {**env, "KALSHI_ENV": "demo", "SIGNING_PROXY_UPSTREAM": "http://env.example:2"}
    base = ["check", "--config", str(config)]
    from_env = run_cli(*base, env=env)
    assert from_env.returncode == 0, from_env.stderr
    assert field(from_env.stdout, "rest url") == "http://env.example:2"
    flags = ["--env", "production", "--upstream", "http://flag.example:3"]
    from_flags = run_cli(*base, *flags, "--host", "::1", "--port", "9999", env=env)
    assert from_flags.returncode == 0, from_flags.stderr
    assert field(from_flags.stdout, "environment") == "production"
    assert field(from_flags.stdout, "rest url") == "http://flag.example:3"
    assert field(from_flags.stdout, "listen") == "::1:9999"
    no_upstream = {k: v for k, v in env.items() if k != "SIGNING_PROXY_UPSTREAM"}
    production = run_cli("check", "--env", "production", env=no_upstream)
    assert field(production.stdout, "rest url") == "https://external-api.kalshi.com"


def test_a_bad_flag_value_is_one_line_and_exit_2(env: dict[str, str]) -> None:
    result = run_cli("check", "--env", "staging", env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "environment" in result.stderr
