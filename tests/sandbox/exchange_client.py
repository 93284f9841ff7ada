"""A sandbox served for real behind a test client, called with signed requests at the
time of a clock the tests move: shared by the sandbox tests of groups, keys and limits."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import SANDBOX_STATE, SandboxState
from signing_proxy.sandbox.ws import SANDBOX_WS, WsSettings
from tests.sandbox.test_sandbox import API, KEY_ID, MARKET, NOW_MS, fetch, signed_headers

Client = TestClient[web.Request, web.Application]
# pytest-aiohttp's aiohttp_client fixture: an app served for real, and its client.
Factory = Callable[[web.Application], Awaitable[Client]]
GROUPS = f"{API}/portfolio/order_groups"
ORDERS = f"{API}/portfolio/events/orders"


class Clock:
    """The sandbox's clock, moved by the tests (requests are signed at its time)."""

    def __init__(self) -> None:
        self.ms = NOW_MS

    def __call__(self) -> float:
        return self.ms / 1000


class Exchange:
    """The sandbox behind a test client, with a signed `call` and the clock."""

    def __init__(self, client: Client, key: rsa.RSAPrivateKey, clock: Clock) -> None:
        self.client, self.key, self.clock = client, key, clock
        self.state: SandboxState = client.app[SANDBOX_STATE]

    async def raw(
        self,
        method: str,
        target: str,
        body: object = None,
        *,
        key: rsa.RSAPrivateKey | None = None,
        key_id: str = KEY_ID,
    ) -> tuple[int, bytes]:
        """A request signed by `key` (the sandbox's own by default); (status, body bytes)."""
        path = target.partition("?")[0]
        headers = signed_headers(key or self.key, method, path, ts=self.clock.ms, key_id=key_id)
        data = None if body is None else json.dumps(body).encode()
        return await fetch(self.client, method, target, headers, data)

    async def call(self, method: str, target: str, body: object = None) -> tuple[int, Any]:
        """A correctly signed request; (status, decoded JSON)."""
        status, raw = await self.raw(method, target, body)
        return status, json.loads(raw)

    async def ok(self, method: str, target: str, body: object = None) -> Any:
        """call(), which must succeed."""
        status, answer = await self.call(method, target, body)
        assert status < 300, (status, answer)
        return answer

    async def group(self, limit: int, **extra: Any) -> str:
        """A new group's id."""
        answer = await self.ok("POST", f"{GROUPS}/create", {"contracts_limit": limit, **extra})
        return str(answer["order_group_id"])

    async def order(self, side: str, price: str, count: str, **extra: Any) -> tuple[int, Any]:
        """Place a V2 order: (status, answer)."""
        body = {"ticker": MARKET, "side": side, "price": price, "count": count,
                "time_in_force": "good_till_canceled",
                "self_trade_prevention_type": "taker_at_cross", **extra}  # fmt: skip
        return await self.call("POST", ORDERS, body)

    async def status_of(self, order_id: str) -> str:
        """The order's status as GET /portfolio/orders/{id} gives it."""
        return str((await self.ok("GET", f"{API}/portfolio/orders/{order_id}"))["order"]["status"])


async def serve(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    key: rsa.RSAPrivateKey,
    **options: Any,
) -> Exchange:
    """The sandbox (makers still: every fill is one the test caused) and its signed caller."""
    clock = Clock()
    options = {"seed": 3, **options}
    app = create_sandbox_app({KEY_ID: key.public_key()}, clock=clock, **options)
    app[SANDBOX_WS].settings = WsSettings(heartbeat_interval=60, update_interval=3600)
    return Exchange(await aiohttp_client(app), key, clock)
