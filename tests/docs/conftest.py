"""Fixtures of the docs' tests: a fresh `signing-proxy sandbox` per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import CLI, Background, base_env


class Sandbox:
    """`signing-proxy sandbox --port 0` in the background, and what it announced."""

    def __init__(self, folder: Path) -> None:
        env = base_env(SIGNING_PROXY_LOG_FORMAT="json")
        self.server = Background([CLI, "sandbox", "--port", "0"], folder / "sandbox.log", env)
        event = self.server.wait_for(r'\{[^\n]*"event": "sandbox_started"[^\n]*\}').group(0)
        self.started = json.loads(event)
        self.proxy: str = self.started["proxy"]
        self.exchange: str = self.started["upstream"]

    @property
    def address(self) -> str:
        return self.proxy.removeprefix("http://")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A fresh sandbox for one test (it starts in well under a second)."""
    started = Sandbox(tmp_path)
    try:
        yield started
    finally:
        started.server.stop()
