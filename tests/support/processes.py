"""The real `signing-proxy` command in a subprocess: environment, start, output, stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).parent / "signing-proxy")


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KALSHI_", "SIGNING_PROXY_"))}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
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
