"""bytes_out in the call's log event counts every answer's body: Kalshi's relayed ones and
the ones the proxy writes itself (its JSON errors, probes, CORS preflights, admin API)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

pytestmark = pytest.mark.usefixtures("clean_env")

ORIGIN = "http://localhost:3000"


@pytest.fixture
async def client(make_upstream, make_proxy, tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text(f"access:\n  allowed_origins: ['{ORIGIN}']\n")
    return await make_proxy((await make_upstream()).url, config_file=config)


async def logged(client, method: str, target: str, **kwargs) -> tuple[int, bytes, int]:
    """(status, body as received, bytes_out as logged) of one call."""
    with capture_logs() as events:
        async with client.request(method, target, **kwargs) as resp:
            body = await resp.read()
            status = resp.status
    (event,) = [e for e in events if e["event"] == "request"]
    assert event["status"] == status
    return status, body, event["bytes_out"]


@pytest.mark.parametrize(
    ("method", "target", "headers", "status"),
    [
        ("GET", "/nowhere", {}, 404),  # the proxy's own JSON error
        ("TRACE", "/trade-api/v2/markets", {}, 405),
        ("GET", "/trade-api/v2/x", {"Origin": "https://evil.example"}, 403),
        ("GET", "/healthz", {}, 200),
        ("GET", "/readyz", {}, 200),  # its own probe of the upstream, then its answer
        ("GET", "/metrics", {}, 200),
        ("GET", "/proxy/v1/status", {}, 200),  # the admin API, loopback without tokens
        ("GET", "/trade-api/v2/markets", {}, 200),  # relayed from the upstream
    ],
)
async def test_bytes_out_is_the_body_sent(
    client, method: str, target: str, headers: dict[str, str], status: int
) -> None:
    got, body, bytes_out = await logged(client, method, target, headers=headers)
    assert got == status
    assert body and bytes_out == len(body)


async def test_answers_without_a_body_count_none(client) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    status, body, bytes_out = await logged(client, "OPTIONS", "/trade-api/v2/x", headers=preflight)
    assert (status, body, bytes_out) == (204, b"", 0)
    status, body, bytes_out = await logged(client, "HEAD", "/healthz")
    assert (status, body, bytes_out) == (200, b"", 0)
