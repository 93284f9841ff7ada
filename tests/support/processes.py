"""The real `signing-proxy` command in a subprocess: environment, start, output, stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = str(Path(sys.executable).parent / "signing-proxy")


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment without the developer's KALSHI_*, SIGNING_PROXY_* and
    PROXY_TOKEN (the examples read it), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KALSHI_", "SIGNING_PROXY_"))}
    env.pop("PROXY_TOKEN", None)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `signing-proxy *args` to completion (30 s at most)."""
    return subprocess.run(
        [CLI, *args], env=env or base_env(), capture_output=True, text=True, timeout=30
    )


class Proc:
    """A running CLI subprocess whose output is drained continuously.

    Draining matters: a proxy under load logs a line per call, and a pipe nobody reads
    fills up and blocks the proxy's event loop on its next log write.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._errors: list[str] = []
        self._new_line = asyncio.Event()
        assert process.stdout is not None and process.stderr is not None
        self._drains = [
            asyncio.create_task(self._drain(process.stdout, self.lines)),
            asyncio.create_task(self._drain(process.stderr, self._errors)),
        ]

    async def _drain(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while raw := await stream.readline():
            into.append(raw.decode())
            self._new_line.set()
        self._new_line.set()

    async def wait_for(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """The first output line matching `pattern`, waiting for it if need be."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines[seen:]:
                    if m := re.search(pattern, line):
                        return m
                seen = len(self.lines)
                if self._drains[0].done():
                    raise AssertionError(f"{pattern!r} not seen; output: {self.lines}")
                self._new_line.clear()
                await self._new_line.wait()

    async def stop(self, sig: int | None = signal.SIGTERM) -> tuple[int, str, str]:
        """Send `sig` (None: it was sent already) and collect the exit code and output."""
        if sig is not None:
            self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), 20)
        await asyncio.wait_for(asyncio.gather(*self._drains), 5)
        return code, "".join(self.lines), "".join(self._errors)


RUNNING: list[asyncio.subprocess.Process] = []


async def start_cli(*args: str, env: dict[str, str]) -> Proc:
    """Start `signing-proxy *args` with its output drained; stop_leftovers kills it."""
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    RUNNING.append(process)
    return Proc(process)


async def stop_leftovers() -> None:
    """Kill every CLI process a test started and left running (a failed test, say)."""
    while RUNNING:
        process = RUNNING.pop()
        if process.returncode is None:
            process.kill()
            await process.wait()


class Background:
    """A server subprocess whose output goes to a file (a pipe nobody reads could fill up)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first match of `pattern` in the output, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text(errors="replace")
            if match := re.search(pattern, text):
                return match
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not seen; output:\n{text}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop within 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
