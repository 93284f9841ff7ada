"""The offline exchange behind `signing-proxy sandbox`; the proxy never imports it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from email.utils import formatdate

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from signing_proxy.sandbox.exchange import handle_request
from signing_proxy.sandbox.makers import run_makers
from signing_proxy.sandbox.rfq_flow import seed_desk
from signing_proxy.sandbox.state import SANDBOX_STATE, SandboxState
from signing_proxy.sandbox.ws import SANDBOX_WS, add_ws_endpoint


def create_sandbox_app(
    keys: Mapping[str, RSAPublicKey],
    *,
    window_ms: int = 5000,
    clock: Callable[[], float] = time.time,
    require_auth_everywhere: bool = True,
    v1_orders_live: bool = False,
    seed: int | None = None,
    rate_limit_tier: str | None = None,
) -> web.Application:
    """The Kalshi-like upstream; `keys` maps key id -> public key.

    `seed` makes the market makers' moves and the ids given out repeatable;
    `rate_limit_tier` (basic, advanced, premier, paragon, prime) keeps Kalshi's rate limits
    of that tier, None none at all.
    """
    app = web.Application()
    app[SANDBOX_STATE] = SandboxState(
        keys,
        clock=clock,
        window_ms=window_ms,
        require_auth_everywhere=require_auth_everywhere,
        v1_orders_live=v1_orders_live,
        rate_limit_tier=rate_limit_tier,
        seed=seed,
    )
    seed_desk(app[SANDBOX_STATE])  # the desk's own RFQs, open from the start
    # REST and WebSocket are built here, so neither module imports the other's builder.
    add_ws_endpoint(app)
    app.cleanup_ctx.append(_makers(seed))
    app.on_response_prepare.append(_date_from_clock)
    # One catch-all route: dispatch happens on the raw path, which aiohttp's router decodes.
    app.router.add_route("*", "/{tail:.*}", handle_request)
    return app


async def _date_from_clock(request: web.Request, response: web.StreamResponse) -> None:
    """Date from the sandbox clock, as Kalshi's comes from Kalshi's: a moved clock shows."""
    response.headers["Date"] = formatdate(request.app[SANDBOX_STATE].clock(), usegmt=True)


def _makers(seed: int | None) -> Callable[[web.Application], AsyncIterator[None]]:
    """The market makers' task, for as long as the sandbox serves."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        ws = app[SANDBOX_WS]
        task = asyncio.create_task(
            run_makers(app[SANDBOX_STATE], lambda: ws.settings.update_interval, seed)
        )
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run
