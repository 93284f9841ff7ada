"""Serving: bind the app, wait for SIGTERM or SIGINT, shut down with a deadline."""

from __future__ import annotations

import asyncio
import errno
import signal
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .config import ConfigError


@dataclass(slots=True)
class Served:
    """A running site: its runner and the port it actually bound (useful with port 0)."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        """The http:// URL of the site."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


async def start(
    app: web.Application, host: str, port: int, shutdown_timeout: float = 15.0
) -> Served:
    """Bind `app` on host:port; a port that cannot be bound is a ConfigError."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"listen.port: {host}:{port} is already in use") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise ConfigError(f"listen.host: cannot bind {host!r}: {exc.strerror}") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"listen.port: binding port {port} is not permitted") from None
        raise
    server = site._server  # the only way to learn the port bound for port 0
    sockets = getattr(server, "sockets", None) or []
    bound_port = sockets[0].getsockname()[1] if sockets else port
    return Served(runner=runner, host=host, port=bound_port)


def install_stop_handlers() -> asyncio.Future[str]:
    """Catch SIGTERM and SIGINT from now on; the future resolves to the first one's name.

    Install before announcing readiness, so no signal can meet the default action. The
    handlers stay afterwards, so a second signal during the drain cannot kill the process
    midway; `remove_stop_handlers` takes them away once stopped.
    """
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()

    def stop(name: str) -> None:
        if not stopped.done():
            stopped.set_result(name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    return stopped


def remove_stop_handlers() -> None:
    """Restore the default SIGTERM and SIGINT behaviour."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when installed (the `speed` extra), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
