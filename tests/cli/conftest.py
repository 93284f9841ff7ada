"""Fixtures of the command-line tests: a real `signing-proxy sandbox` in a subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.processes import CLI, Background, base_env


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`signing-proxy sandbox --port 0`; yields the proxy's URL."""
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    server = Background(
        [CLI, "sandbox", "--port", "0"], log, base_env(SIGNING_PROXY_LOG_FORMAT="json")
    )
    try:
        event = server.wait_for(r'\{[^\n]*"event": "sandbox_started"[^\n]*\}').group(0)
        yield json.loads(event)["proxy"]
    finally:
        server.stop()
