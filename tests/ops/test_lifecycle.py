"""The server lifecycle in-process (ops/server.serve): signals, drain, the hard cap.

The CLI tests prove the same through real processes; these show each step directly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from signing_proxy.ops.server import ServeHooks, serve, start

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Steps:
    """Which hooks ran, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.announced = asyncio.Event()

    def hooks(self) -> ServeHooks:
        def announce() -> None:
            self.seen.append("announce")
            self.announced.set()

        return ServeHooks(
            announce=announce,
            stopping=lambda: self.seen.append("stopping"),
            cut=lambda: self.seen.append("cut"),
        )


def app_with(handler: Handler) -> web.Application:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


async def test_sigterm_drains_the_call_in_flight_then_returns() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    served = await start(app_with(slow), "127.0.0.1", 0)
    steps = Steps()
    serving = asyncio.create_task(serve(served, 5.0, steps.hooks()))
    await steps.announced.wait()
    async with aiohttp.ClientSession() as session:
        call = asyncio.create_task(session.get(f"{served.url}/x"))
        await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.1)
        assert not serving.done()  # the drain waits for the call
        release.set()
        answer = await call
        assert answer.status == 200
        assert await answer.text() == "done"
    async with asyncio.timeout(5):
        await serving
    assert steps.seen == ["announce", "stopping"]


async def test_the_drain_is_cut_at_its_cap() -> None:
    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    served = await start(app_with(silent), "127.0.0.1", 0)
    steps = Steps()
    serving = asyncio.create_task(serve(served, 0.5, steps.hooks()))
    await steps.announced.wait()
    async with aiohttp.ClientSession() as session:
        call = asyncio.create_task(session.get(f"{served.url}/x"))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(5):
            await serving
        assert time.monotonic() - started < 0.5 + 1.5
        call.cancel()
    assert steps.seen == ["announce", "stopping", "cut"]


async def test_a_second_signal_cuts_the_drain_at_once() -> None:
    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    served = await start(app_with(silent), "127.0.0.1", 0)
    steps = Steps()
    serving = asyncio.create_task(serve(served, 60.0, steps.hooks()))
    await steps.announced.wait()
    async with aiohttp.ClientSession() as session:
        call = asyncio.create_task(session.get(f"{served.url}/x"))
        await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)
        async with asyncio.timeout(5):
            await serving
        assert time.monotonic() - started < 1.5
        call.cancel()
    assert steps.seen == ["announce", "stopping", "cut"]
