"""Pre-signed hot routes and adaptive signing: every signature verifies, none is reused."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from signing_proxy.config import load_config
from signing_proxy.errors import ConfigError
from signing_proxy.kalshi.signer import Signer
from signing_proxy.proxy.app import FORWARDER, LIVE
from signing_proxy.proxy.live import make_snapshot
from signing_proxy.proxy.signing_engine import SigningEngine
from tests.support.keys import KEY_ID, new_rsa_key

pytestmark = pytest.mark.usefixtures("clean_env")

ORDERS = "/trade-api/v2/portfolio/events/orders"
BATCHED = "/trade-api/v2/portfolio/events/orders/batched"


async def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def wait_for_pool(engine: SigningEngine, method: str, path: str) -> None:
    await wait_until(lambda: bool(engine._pools[(method, path)]))


async def test_presigned_orders_verify_and_are_used_once(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    engine = client.app[FORWARDER].engine
    for _ in range(6):
        await wait_for_pool(engine, "POST", ORDERS)
        resp = await client.post(ORDERS, data=b"{}")
        assert resp.status == 200
    assert engine.presigned_used == 6
    metrics = await (await client.get("/metrics")).text()
    assert "signing_proxy_presigned_used_total 6.0" in metrics
    assert all(s.auth_error is None for s in upstream.seen)
    signatures = [s.headers["KALSHI-ACCESS-SIGNATURE"] for s in upstream.seen]
    assert len(set(signatures)) == 6  # never reused
    now_ms = time.time_ns() // 1_000_000
    for seen in upstream.seen:
        assert now_ms - int(seen.headers["KALSHI-ACCESS-TIMESTAMP"]) < 5000


async def test_a_taken_signature_is_replaced_once_its_call_has_its_answer(
    make_upstream, make_proxy
) -> None:
    """The background signature that refills the pool is made after the order that took
    one is answered, not while it is in flight (it would compete with the answer for the
    CPU): the next order's signature is younger than the first order's answer."""
    answered: list[int] = []

    async def slow_book(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.1)  # the order in flight
        answered.append(time.time_ns() // 1_000_000)
        return web.json_response({"order_id": "o"}, status=201)

    upstream = await make_upstream(slow_book)
    client = await make_proxy(upstream.url)
    engine = client.app[FORWARDER].engine
    async with asyncio.timeout(5):
        while len(engine._pools[("POST", ORDERS)]) < 2:
            await asyncio.sleep(0.01)
    assert (await client.post(ORDERS, data=b"{}")).status == 201
    async with asyncio.timeout(5):
        while len(engine._pools[("POST", ORDERS)]) < 2:  # refilled
            await asyncio.sleep(0.01)
    assert (await client.post(ORDERS, data=b"{}")).status == 201
    second = int(upstream.seen[1].headers["KALSHI-ACCESS-TIMESTAMP"])
    assert second >= answered[0]  # made after the first order's answer
    assert engine.presigned_used == 2
    assert all(s.auth_error is None for s in upstream.seen)


async def test_no_presigned_signature_reaches_the_upstream_twice(make_upstream, make_proxy) -> None:
    """Many pre-signed orders, one at a time and in bursts: every signature is sent once."""
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    engine = client.app[FORWARDER].engine
    for _ in range(5):
        for _ in range(4):
            await wait_for_pool(engine, "POST", BATCHED)
            assert (await client.post(BATCHED, data=b"{}")).status == 200
        # A burst takes the pool dry at once; the rest are signed on demand.
        burst = [client.post(BATCHED, data=b"{}") for _ in range(6)]
        assert {resp.status for resp in await asyncio.gather(*burst)} == {200}
    assert len(upstream.seen) == 50
    assert all(s.auth_error is None for s in upstream.seen)
    assert engine.presigned_used >= 20  # the pre-signed path was the one exercised
    # What the upstream saw: (timestamp, signature) pairs, none of them twice.
    pairs = Counter(
        (s.headers["KALSHI-ACCESS-TIMESTAMP"], s.headers["KALSHI-ACCESS-SIGNATURE"])
        for s in upstream.seen
    )
    assert [pair for pair, seen in pairs.items() if seen > 1] == []


async def test_presigned_signature_older_than_max_age_is_discarded(
    tmp_path: Path, key_file
) -> None:
    signer = _signer(key_file)
    engine = SigningEngine(lambda: signer, routes=(("POST", ORDERS),), max_age=0.2, depth=1)
    engine.start()
    try:
        await wait_for_pool(engine, "POST", ORDERS)
        await engine.close()  # stop refilling, then let the signature age
        await asyncio.sleep(0.25)
        assert engine.take_presigned("POST", ORDERS) is None
        assert engine.presigned_discarded >= 1
    finally:
        await engine.close()


async def test_presigned_signature_of_an_old_key_is_never_used(
    make_upstream, make_proxy, key_file
) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    engine = client.app[FORWARDER].engine
    await wait_for_pool(engine, "POST", ORDERS)
    live = client.app[LIVE]
    other = Signer(str(uuid.uuid4()), new_rsa_key())
    old_signatures = len(engine._pools[("POST", ORDERS)])
    discarded = engine.presigned_discarded
    live.swap(make_snapshot(live.current.config, other, live.current))
    # No await since the swap: the pool holds only the old key's signatures, all thrown away.
    assert engine.take_presigned("POST", ORDERS) is None
    assert engine.presigned_discarded == discarded + old_signatures
    # The refill then signs with the new key.
    await wait_for_pool(engine, "POST", ORDERS)
    headers = engine.take_presigned("POST", ORDERS)
    assert headers is not None
    assert headers["KALSHI-ACCESS-KEY"] == other.key_id


async def test_other_routes_are_signed_on_demand(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    responses = await asyncio.gather(
        *(client.get(f"/trade-api/v2/markets/KX-{i}") for i in range(20))
    )
    assert {r.status for r in responses} == {200}
    assert all(s.auth_error is None for s in upstream.seen)
    assert client.app[FORWARDER].engine.presigned_used == 0


async def test_threaded_signing_under_load_verifies(key_file) -> None:
    signer = _signer(key_file)
    engine = SigningEngine(lambda: signer)
    engine.in_flight = 10  # as if busy: signs on the worker threads
    try:
        results = await asyncio.gather(*(engine.headers("GET", f"/p/{i}") for i in range(8)))
    finally:
        await engine.close()
    public = signer.public_key()
    import base64

    from cryptography.hazmat.primitives import hashes

    from tests.support.keys import KALSHI_PSS

    for i, headers in enumerate(results):
        message = f"{headers['KALSHI-ACCESS-TIMESTAMP']}GET/p/{i}".encode()
        public.verify(
            base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"]),
            message,
            KALSHI_PSS,
            hashes.SHA256(),
        )


def _signer(key_file: Path) -> Signer:
    from signing_proxy.config import CredentialsConfig
    from signing_proxy.kalshi.signer import load_signer

    return load_signer(CredentialsConfig(api_key_id=KEY_ID, private_key_file=str(key_file)))


@pytest.mark.parametrize(
    "routes",
    ["[GET /trade-api/v2/markets*]", "['* /trade-api/v2/x']", "[POST /other]", "POST /x"],
)
def test_bad_presign_routes(tmp_path: Path, routes: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"signing: {{presign_routes: {routes}}}\n")
    with pytest.raises(ConfigError, match=r"signing\.presign_routes"):
        load_config(str(path), {})


def test_presign_max_age_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("signing: {presign_max_age: 10}\n")
    with pytest.raises(ConfigError, match="at most 3 seconds"):
        load_config(str(path), {})


async def test_polled_read_route_is_learned_and_presigned(make_upstream, make_proxy) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    engine = client.app[FORWARDER].engine
    balance = "/trade-api/v2/portfolio/balance"
    for _ in range(3):
        assert (await client.get(balance)).status == 200
    await wait_for_pool(engine, "GET", balance)
    assert (await client.get(balance + "?x=1")).status == 200  # the query is not signed
    assert engine.presigned_used == 1
    assert all(s.auth_error is None for s in upstream.seen)
    signatures = [s.headers["KALSHI-ACCESS-SIGNATURE"] for s in upstream.seen]
    assert len(set(signatures)) == len(signatures)


async def test_learning_is_bounded_and_forgets(key_file, monkeypatch) -> None:
    from signing_proxy.proxy import signing_engine

    signer = _signer(key_file)
    engine = SigningEngine(lambda: signer, max_learned=2)
    try:
        for i in range(4):
            for _ in range(3):
                await engine.headers("GET", f"/trade-api/v2/markets/KX-{i}")
        assert len(engine._learned) == 2
        for _ in range(3):
            await engine.headers("DELETE", "/trade-api/v2/portfolio/events/orders/x")
        assert ("DELETE", "/trade-api/v2/portfolio/events/orders/x") not in engine._pools
        monkeypatch.setattr(signing_engine, "FORGET_AFTER", 0.0)
        engine._forget_idle(time.monotonic() + 1)
        assert engine._learned == {}
    finally:
        await engine.close()


@asynccontextmanager
async def started(key_file: Path, **settings: Any) -> AsyncIterator[tuple[SigningEngine, Any]]:
    """An engine pre-signing ORDERS (and `settings`), its pool full; closed afterwards."""
    signer = _signer(key_file)
    engine = SigningEngine(lambda: signer, **{"routes": (("POST", ORDERS),), **settings})
    engine.start()
    try:
        pool = engine._pools[("POST", ORDERS)]
        await wait_until(lambda: len(pool) == settings.get("depth", 2))
        yield engine, pool
    finally:
        await engine.close()


async def test_the_pools_refill_while_the_event_loop_is_busy(key_file) -> None:
    """The refill threads put new signatures in the pools themselves: the event loop is
    not needed for it (nor woken by it)."""
    async with started(key_file) as (engine, pool):
        taken = [engine.take_presigned("POST", ORDERS) for _ in range(3)]
        assert taken[2] is None  # found empty: the refill threads are woken at once
        deadline = time.monotonic() + 0.4  # within max_age / 2: not their own timer
        while len(pool) < 2 and time.monotonic() < deadline:
            # The event loop blocked on purpose: only a refill thread can refill the pool.
            time.sleep(0.001)  # noqa: ASYNC251
        assert len(pool) >= 2


async def test_the_refill_waits_until_the_answer_is_written(key_file) -> None:
    """A call's end wakes the refill threads only once the event loop's turn (in which
    aiohttp writes the answer) is over, so they do not take a core from the answer."""
    async with started(key_file) as (engine, pool):
        assert engine.take_presigned("POST", ORDERS) is not None
        engine.call_ended()
        time.sleep(0.05)  # noqa: ASYNC251 - the rest of this loop turn: no refill yet
        assert len(pool) == 1
        await wait_until(lambda: len(pool) == 2, timeout=0.4)  # the turn over: refilled


async def test_a_pool_a_burst_empties_grows_and_shrinks_back(key_file) -> None:
    """Calls that find the pool empty deepen it, so that the next burst finds its
    signatures ready; without another miss it is made shallow again (max_age / 2 later)."""
    async with started(key_file, max_age=0.4) as (engine, pool):
        burst = [engine.take_presigned("POST", ORDERS) for _ in range(3)]
        assert burst[2] is None  # the third found it empty: signed on demand
        await wait_until(lambda: len(pool) == 4)
        burst = [engine.take_presigned("POST", ORDERS) for _ in range(4)]
        assert None not in burst  # the next burst of four found them all ready
        engine.call_ended()  # their answers: refilled now
        await wait_until(lambda: len(pool) == 4)
        await wait_until(lambda: len(pool) == 2, timeout=3)
        await asyncio.sleep(0.3)
        assert len(pool) <= 2  # and stays so


async def test_a_busy_read_route_does_not_starve_order_entry(key_file) -> None:
    """The refill threads sign for the routes in turn: a read route taken as fast as its
    signatures are made still leaves the order route its share."""
    signer = _signer(key_file)
    busy = ("GET", "/trade-api/v2/portfolio/balance")
    routes = (busy, ("POST", ORDERS))
    engine = SigningEngine(lambda: signer, routes=routes, depth=2, threads=1)
    engine.start()
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            engine.take_presigned(*busy)
            time.sleep(0.0001)

    draining = threading.Thread(target=drain)
    try:
        await wait_until(lambda: all(len(pool) == 2 for pool in engine._pools.values()))
        draining.start()
        await asyncio.sleep(0.05)  # the busy route's pool is deepened and kept empty
        assert engine.take_presigned("POST", ORDERS) is not None
        engine.call_ended()
        await wait_until(lambda: len(engine._pools[("POST", ORDERS)]) == 2, timeout=0.5)
    finally:
        stop.set()
        if draining.is_alive():
            draining.join()
        await engine.close()
