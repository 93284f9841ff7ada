"""The bench's anchor: a minimal aiohttp reverse proxy (one shared ClientSession; no
signing, no checks, no logging). What any aiohttp proxy pays; the real one is measured
against it. Usage: minimal_proxy.py PORT UPSTREAM_URL"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


def app_for(upstream: str) -> web.Application:
    """One catch-all route that forwards to `upstream` and relays the answer."""
    app = web.Application()

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(auto_decompress=False)

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        async with request.app["session"].request(
            request.method, upstream + request.raw_path, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP}
            return web.Response(status=answer.status, body=body, headers=out)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


if __name__ == "__main__":
    web.run_app(app_for(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), print=None)
