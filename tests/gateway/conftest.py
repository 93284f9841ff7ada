"""A trading desk for the gateway's tests: the sandbox exchange (its matching engine, every
signature verified) behind a real proxy with an admin, two bots and a journal file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from signing_proxy.sandbox import create_sandbox_app
from signing_proxy.sandbox.state import SANDBOX_STATE, SandboxState
from tests.support.keys import KEY_ID, KeyMaterial

ORDERS = "/trade-api/v2/portfolio/events/orders"
MARKET = "KXHIGHNY-26JUN12-B74.5"  # the makers quote it 0.30 bid / 0.32 ask
OPS, BOT, DESK, MAKER = (f"{who}-token-0123456789abcdef" for who in ("ops", "bot", "desk", "maker"))
TOKENS = [
    {"name": "ops", "token": OPS, "admin": True},
    {"name": "bot", "token": BOT},
    {"name": "desk", "token": DESK},
    {"name": "maker", "token": MAKER, "subaccount": 1},
]


def bid(price: str = "0.10", count: str = "2", **changes: Any) -> dict[str, Any]:
    """A V2 bid on MARKET; below the makers' bid it rests, at 0.32 or more it fills."""
    return {
        "ticker": MARKET, "side": "bid", "price": price, "count": count,
        "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross",
        **changes,
    }  # fmt: skip


@dataclass
class Desk:
    """The proxy (as a test client), the exchange's state, and the journal file."""

    proxy: TestClient[Any, Any]
    exchange: TestServer
    journal: Path
    config: Path
    restart: Callable[[], Awaitable[TestClient[Any, Any]]]

    @property
    def state(self) -> SandboxState:
        """The exchange's state: what its engine holds."""
        return self.exchange.app[SANDBOX_STATE]

    def resting(self) -> set[str]:
        """Ids of the orders resting on the exchange, any subaccount."""
        return {o.order_id for o in self.state.orders.values() if o.status == "resting"}

    async def call(
        self, token: str | None, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        """One call through the proxy with `token`; (status, JSON or None)."""
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        reply = await self.proxy.request(method, path, data=data, headers=headers)
        text = await reply.text()
        return reply.status, json.loads(text) if text else None

    async def place(self, token: str, **changes: Any) -> str:
        """Place a bid that must be accepted; its order id."""
        status, answer = await self.call(token, "POST", ORDERS, bid(**changes))
        assert status == 201, answer
        return str(answer["order_id"])


@pytest.fixture
async def desk(key_material: KeyMaterial, make_proxy: Any, tmp_path: Path) -> AsyncIterator[Desk]:
    """The desk; extra top-level config can be merged with `desk_config`."""
    exchange = TestServer(create_sandbox_app({KEY_ID: key_material.public_key}, seed=7))
    await exchange.start_server()
    journal = tmp_path / "journal.sqlite3"
    config = tmp_path / "desk.yaml"
    config.write_text(json.dumps({"access": {"tokens": TOKENS}}))
    url = str(exchange.make_url("")).rstrip("/")

    async def start() -> TestClient[Any, Any]:
        return await make_proxy(url, config_file=config, SIGNING_PROXY_JOURNAL=str(journal))

    holder = Desk(await start(), exchange, journal, config, start)

    async def restart() -> TestClient[Any, Any]:
        await holder.proxy.close()
        holder.proxy = await start()
        return holder.proxy

    holder.restart = restart
    # Subaccount 1 with $100, for the pinned maker.
    status, _ = await holder.call(DESK, "POST", "/trade-api/v2/portfolio/subaccounts", {})
    assert status == 201
    move = {"from_subaccount": 0, "to_subaccount": 1, "amount_cents": 10_000}
    transfer = "/trade-api/v2/portfolio/subaccounts/transfer"
    status, _ = await holder.call(DESK, "POST", transfer, move)
    assert status == 200
    yield holder
    await exchange.close()
