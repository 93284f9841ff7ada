"""The client examples in examples/, each run for real against `signing-proxy sandbox`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.keys import new_rsa_key, pkcs8_pem, write_key
from tests.support.processes import CLI, Background, base_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"
TOKEN = "example-bot-token-0123456789abcdef"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one example to completion; its output is shown when an assertion fails."""
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=90, env=env or base_env(), cwd=ROOT
    )
    print(result.stdout, result.stderr, sep="\n")
    return result


def assert_balance_order_cancel(output: str) -> None:
    """The four calls that curl.sh, python_requests.py and node_fetch.mjs make, each 2xx."""
    assert "GET /trade-api/v2/portfolio/balance -> 200" in output
    assert "GET /trade-api/v2/markets?status=open&limit=1 -> 200" in output
    assert "POST /trade-api/v2/portfolio/events/orders -> 201" in output
    placed = re.search(r'"order_id": ?"([0-9a-f-]{36})"', output)
    assert placed, output
    assert f"DELETE /trade-api/v2/portfolio/events/orders/{placed.group(1)} -> 200" in output
    assert re.search(r'"reduced_by": ?"1\.00"', output), output


def test_curl_example(sandbox: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    result = run("bash", str(EXAMPLES / "curl.sh"), sandbox)
    assert result.returncode == 0, result.stderr
    assert_balance_order_cancel(result.stdout)


def test_curl_example_sends_the_token_without_showing_it(sandbox: str) -> None:
    # The sandbox's proxy has no tokens, so it ignores (and drops) the header: this only
    # checks that the token path of the script works and never echoes the token.
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    result = run("bash", str(EXAMPLES / "curl.sh"), sandbox, env=base_env(PROXY_TOKEN=TOKEN))
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_curl_example_fails_on_an_error_answer() -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    # Nothing listens on port 9 of loopback: curl itself fails, and so must the script.
    result = run("bash", str(EXAMPLES / "curl.sh"), "http://127.0.0.1:9")
    assert result.returncode != 0


def test_python_requests_example(sandbox: str) -> None:
    pytest.importorskip(
        "requests",
        reason="requests is not installed (it is only needed by examples/python_requests.py)",
    )
    result = run(sys.executable, str(EXAMPLES / "python_requests.py"), sandbox)
    assert result.returncode == 0, result.stderr
    assert_balance_order_cancel(result.stdout)
    assert "balance: 1000.0000 dollars" in result.stdout


def test_node_fetch_example(sandbox: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = run(node, str(EXAMPLES / "node_fetch.mjs"), sandbox)
    assert result.returncode == 0, result.stderr
    assert_balance_order_cancel(result.stdout)
    assert "balance: 1000.0000 dollars" in result.stdout


def test_ws_client_example(sandbox: str) -> None:
    result = run(
        sys.executable, str(EXAMPLES / "ws_client.py"), sandbox, "--count", "2", "--timeout", "20"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    assert messages[0]["type"] == "subscribed"
    assert messages[0]["msg"]["channel"] == "ticker"
    tickers = [m for m in messages if m["type"] == "ticker"]
    assert len(tickers) == 2
    assert len({m["msg"]["market_ticker"] for m in tickers}) == 1


def test_kalshi_sdk_example(sandbox: str) -> None:
    pytest.importorskip(
        "kalshi_python_sync",
        reason="kalshi-python-sync (Kalshi's SDK) is not installed; only "
        "examples/kalshi_sdk.py needs it",
    )
    result = run(sys.executable, str(EXAMPLES / "kalshi_sdk.py"), sandbox)
    assert result.returncode == 0, result.stderr
    assert "balance: 100000 cents" in result.stdout
    placed = re.search(r"placed: (\S+) resting", result.stdout)
    assert placed, result.stdout
    assert f"canceled: {placed.group(1)} canceled" in result.stdout


# --- the compose example's pieces, without containers -------------------------------------


@pytest.fixture
def key_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway RSA key: (private PEM, mode 0600; public PEM)."""
    key = new_rsa_key()
    private = write_key(tmp_path, pkcs8_pem(key), name="private.pem")
    public = tmp_path / "public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def http_status(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_compose_pieces_sandbox_upstream_config_and_client(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    """sandbox_upstream.py + the proxy with signing-proxy.yaml + compose_client.py."""
    private, public = key_pair
    key_id = str(uuid.uuid4())
    upstream = Background(
        [
            sys.executable,
            str(EXAMPLES / "sandbox_upstream.py"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--public-key-file",
            str(public),
        ],
        tmp_path / "upstream.log",
        base_env(KALSHI_API_KEY_ID=key_id),
    )
    proxy: Background | None = None
    try:
        upstream_url = upstream.wait_for(r"listening on (http://\S+)").group(1)
        proxy = Background(
            [CLI, "run", "--port", "0", "--upstream", upstream_url],
            tmp_path / "proxy.log",
            base_env(
                KALSHI_API_KEY_ID=key_id,
                KALSHI_PRIVATE_KEY_FILE=str(private),
                SIGNING_PROXY_CONFIG=str(EXAMPLES / "signing-proxy.yaml"),
                SIGNING_PROXY_LOG_FORMAT="json",
                BOT_TOKEN=TOKEN,
            ),
        )
        proxy_url = proxy.wait_for(r'"listen": "(http://[^"]+)"').group(1)

        status, body = http_status(f"{proxy_url}/trade-api/v2/portfolio/balance", TOKEN)
        assert status == 200, body
        assert "balance" in json.loads(body)
        # The example's config requires the inbound token.
        status, body = http_status(f"{proxy_url}/trade-api/v2/portfolio/balance")
        assert status == 401, body

        client = run(
            sys.executable,
            str(EXAMPLES / "compose_client.py"),
            env=base_env(PROXY_URL=proxy_url, PROXY_TOKEN=TOKEN),
        )
        assert client.returncode == 0, client.stderr
        assert "balance: 100000 cents" in client.stdout
    finally:
        if proxy is not None:
            proxy.stop()
        upstream.stop()


def test_sandbox_upstream_refuses_without_a_key_id(key_pair: tuple[Path, Path]) -> None:
    result = run(
        sys.executable,
        str(EXAMPLES / "sandbox_upstream.py"),
        "--public-key-file",
        str(key_pair[1]),
    )
    assert result.returncode == 2
    assert "KALSHI_API_KEY_ID" in result.stderr
