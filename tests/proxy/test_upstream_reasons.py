"""Why the upstream could not be reached, in words, in the client's JSON error and in the
log event: TLS verification (expired, unknown authority) and a connection never accepted.
(Refused, DNS, self-signed and name mismatch: tests/proxy/test_failures.py.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.support.certificates import issued_certificate, new_authority
from tests.support.upstreams import tls_server

pytestmark = pytest.mark.usefixtures("clean_env")


async def failure(client, target: str = "/trade-api/v2/markets") -> tuple[int, dict, str]:
    """(status, the JSON error, the log event's error) of one call."""
    with capture_logs() as events:
        resp = await client.get(target)
        error = (await resp.json())["error"]
    (event,) = [e for e in events if e["event"] == "request"]
    return resp.status, error, event["error"]


@pytest.mark.parametrize(
    ("trusted", "expired", "verdict"),
    [
        (
            True,
            True,
            "certificate has expired (its end date has passed, or this machine's clock is wrong)",
        ),
        (
            False,
            False,
            "unable to get local issuer certificate (issued by a certificate authority this "
            "machine does not trust; behind a TLS-inspecting proxy, point SSL_CERT_FILE at its "
            "CA bundle)",
        ),
    ],
)
async def test_tls_verification_failure_says_why(
    make_proxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trusted: bool,
    expired: bool,
    verdict: str,
) -> None:
    authority = new_authority(tmp_path)
    cert, key = issued_certificate(tmp_path, authority, expired=expired)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(authority.path))
    async with tls_server(cert, key) as server:
        client = await make_proxy(f"https://127.0.0.1:{server.port}")
        status, error, logged = await failure(client)
    where = f"127.0.0.1:{server.port}"
    assert (status, error["code"]) == (502, "proxy_upstream_tls_error")
    assert (
        error["message"]
        == f"TLS certificate verify failed for {where}: {verdict} (https://{where})"
    )
    assert (
        logged == f"proxy_upstream_tls_error: TLS certificate verify failed for {where}: {verdict}"
    )


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A loopback port whose listener never accepts: its one-slot queue is already taken, so
    a new connection waits (the kernel drops its SYNs) until the client gives up."""
    with socket.socket() as listener, socket.socket() as first:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        first.connect(("127.0.0.1", port))  # fills the queue; never accepted
        yield port


async def test_a_connection_never_accepted_is_a_connect_timeout(
    make_proxy, tmp_path: Path, unaccepting_port: int
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("upstream: {connect_timeout: 0.3, retries: 0}\n")
    client = await make_proxy(f"http://127.0.0.1:{unaccepting_port}", config_file=config)
    status, error, logged = await failure(client)
    reason = "the connection was not accepted within upstream.connect_timeout"
    assert (status, error["code"]) == (504, "proxy_upstream_connect_timeout")
    assert error["message"] == f"{reason} (http://127.0.0.1:{unaccepting_port})"
    assert logged == f"proxy_upstream_connect_timeout: {reason}"
