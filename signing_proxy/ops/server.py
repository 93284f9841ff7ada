"""Serving: bind the app, wait for SIGTERM or SIGINT, shut down with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from signing_proxy.config import LimitsConfig
from signing_proxy.errors import ConfigError
from signing_proxy.ops.connections import BoundedAppRunner
from signing_proxy.ops.logging import get_logger


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
    app: web.Application,
    host: str,
    port: int,
    shutdown_timeout: float = 15.0,
    limits: LimitsConfig | None = None,
) -> Served:
    """Bind `app` on host:port; a port that cannot be bound is a ConfigError.

    `limits` bounds client connections and request heads (the proxy's listener); the
    sandbox's own exchange, which only the proxy calls, runs without.
    """
    runner = (
        BoundedAppRunner(app, limits, access_log=None, shutdown_timeout=shutdown_timeout)
        if limits is not None
        else web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        # A name that does not resolve (a typo, or no DNS) is the user's setting to fix.
        if isinstance(exc, socket.gaierror):
            raise ConfigError(f"listen.host: cannot resolve {host!r}: {exc.strerror}") from None
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"listen.port: {host}:{port} is already in use") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise ConfigError(f"listen.host: cannot bind {host!r}: {exc.strerror}") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"listen.port: binding port {port} is not permitted") from None
        raise
    # The port actually bound, which differs from `port` when it is 0.
    addresses = runner.addresses
    bound_port = addresses[0][1] if addresses else port
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


# After a cut, how long cancelled handlers get to log their call before the process exits.
CUT_GRACE = 1.0


async def drain_within(
    served: Served,
    grace: float,
    second_signal: asyncio.Future[str],
    before_cut: Callable[[], None],
) -> str | None:
    """Stop `served`: drain for at most `grace` seconds, or until `second_signal`.

    aiohttp alone may take twice its shutdown timeout and more (a grace period, then a
    cancel phase, after the shutdown hooks), so this is the hard cap. Returns why the
    drain was cut short, or None when everything finished in time.
    """
    drain = asyncio.ensure_future(served.runner.cleanup())
    waiters: set[asyncio.Future[Any]] = {drain, second_signal}
    await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    if drain.done():
        drain.result()
        return None
    reason = (
        f"second signal ({second_signal.result()})"
        if second_signal.done()
        else f"shutdown_timeout ({grace:g} s) reached"
    )
    before_cut()
    server = served.runner.server
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CUT_GRACE):
            if server is not None:
                # A tiny grace, not 0: aiohttp reads 0 as "wait for ever".
                await server.shutdown(0.01)
            await asyncio.shield(drain)
    if not drain.done():
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
    return reason


@dataclass(frozen=True, slots=True)
class ServeHooks:
    """What the command serving an app does at each step of its life."""

    announce: Callable[[], None]  # once the signals are caught: say where it listens
    stopping: Callable[[], None]  # at the first SIGTERM or SIGINT: report not ready
    cut: Callable[[], None]  # when the drain's time runs out: calls cancelled now are cut
    reload: Callable[[], None] | None = None  # on SIGHUP, if the command reloads


async def serve(served: Served, grace: float, hooks: ServeHooks) -> None:
    """Serve until SIGTERM or SIGINT, then drain for at most `grace` seconds.

    Signals are caught before the announcement, so none can meet the default action; a
    second SIGTERM or SIGINT during the drain cuts it at once.
    """
    loop = asyncio.get_running_loop()
    if hooks.reload is not None:
        loop.add_signal_handler(signal.SIGHUP, hooks.reload)
    stop_signal = install_stop_handlers()
    hooks.announce()
    name = await stop_signal
    if hooks.reload is not None:
        loop.remove_signal_handler(signal.SIGHUP)
    hooks.stopping()
    log = get_logger()
    log.info("stopping", signal=name, shutdown_timeout=grace)
    cut = await drain_within(served, grace, install_stop_handlers(), hooks.cut)
    remove_stop_handlers()
    if cut is not None:
        log.warning("stopped", forced=True, reason=cut)
    else:
        log.info("stopped")


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
