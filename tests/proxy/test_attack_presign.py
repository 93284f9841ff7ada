"""Attacks on the pre-signing refill threads: each test shows a promise the engine broke."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from signing_proxy.config.signing import MAX_PRESIGN_DEPTH
from signing_proxy.kalshi.signer import Signer
from signing_proxy.proxy.signing_engine import SigningEngine
from tests.proxy.test_signing_engine import ORDERS, _signer, wait_until

pytestmark = pytest.mark.usefixtures("clean_env")


class _HeldWake(threading.Event):
    """The refill threads' wake-up, able to hold one thread just before it waits: where
    a thread is preempted between its `_stopping` check and its `wait`."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.armed = False
        self.at_wait = threading.Event()  # the held thread reached its wait
        self.go = threading.Event()
        self.other_waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        if self.armed:
            if threading.current_thread().name == self.held:
                self.at_wait.set()
                self.go.wait(5)
            else:
                self.other_waiting.set()
        return super().wait(timeout)


async def test_close_is_prompt_when_another_thread_clears_the_stop(key_file: Path) -> None:
    """close() sets the wake-up; a refill thread that wakes clears it again, and one that
    was between its `_stopping` check and its wait then sleeps a whole max_age / 2.
    (Seen without the hold too: 4 of 367 start/close rounds took 1.5 s.)"""
    signer = _signer(key_file)
    engine = SigningEngine(lambda: signer, routes=(("POST", ORDERS),), max_age=3.0, threads=2)
    wake = _HeldWake("presigning-1")
    engine._wake = wake
    engine.start()
    pool = engine._pools[("POST", ORDERS)]
    await wait_until(lambda: len(pool) == 2)
    wake.armed = True
    wake.set()  # both go round once; presigning-1 is held on its way back to the wait
    await wait_until(wake.at_wait.is_set)
    await wait_until(wake.other_waiting.is_set)
    started = time.monotonic()
    closing = asyncio.create_task(engine.close())
    await wait_until(lambda: not engine._threads[0].is_alive())  # woke, cleared, stopped
    wake.go.set()
    await closing
    assert time.monotonic() - started < 0.5


async def test_a_configured_depth_beyond_the_maximum_is_capped(key_file: Path) -> None:
    """presign_depth has no upper bound in the config: the pool must still stay within
    MAX_PRESIGN_DEPTH (and an idle proxy re-sign no more than that per max_age)."""
    signer = _signer(key_file)
    depth = MAX_PRESIGN_DEPTH + 8
    engine = SigningEngine(lambda: signer, routes=(("POST", ORDERS),), depth=depth)
    engine.start()
    pool = engine._pools[("POST", ORDERS)]
    try:
        await wait_until(lambda: len(pool) >= MAX_PRESIGN_DEPTH)
        await asyncio.sleep(0.2)  # it would have reached `depth` by now
        assert len(pool) <= MAX_PRESIGN_DEPTH
    finally:
        await engine.close()


class _SlowSigner(Signer):
    """A signer whose thread is preempted after the signature's timestamp is taken."""

    __slots__ = ("delay",)

    def headers(self, method: str, path: str, timestamp_ms: int | None = None) -> dict[str, str]:
        signed = super().headers(method, path, timestamp_ms)
        time.sleep(self.delay)
        return signed


async def test_a_signature_is_aged_from_its_timestamp_not_from_when_it_landed(
    key_file: Path,
) -> None:
    """The age a pool checks must start when the signature's timestamp was taken: a
    refill thread held up after signing must not make an old signature look fresh."""
    plain = _signer(key_file)
    signer = _SlowSigner(plain.key_id, plain._key)
    signer.delay = 0.4
    max_age = 0.3
    engine = SigningEngine(lambda: signer, routes=(("POST", ORDERS),), max_age=max_age, depth=1)
    engine.start()
    ages: list[float] = []
    try:
        deadline = time.monotonic() + 1.0  # two slow signatures land meanwhile
        while time.monotonic() < deadline:
            headers = engine.take_presigned("POST", ORDERS)
            if headers is not None:
                ages.append(time.time() - int(headers["KALSHI-ACCESS-TIMESTAMP"]) / 1000)
            await asyncio.sleep(0.002)
    finally:
        await engine.close()
    assert [age for age in ages if age > max_age + 0.002] == []  # timestamps: whole ms


async def test_forgotten_routes_leave_no_bookkeeping_behind(key_file: Path, monkeypatch) -> None:
    """Learned routes come and go (one market after another): a forgotten route must not
    stay in the engine's per-route tables, or they grow for as long as the proxy runs."""
    from signing_proxy.proxy import signing_engine

    signer = _signer(key_file)
    engine = SigningEngine(lambda: signer, max_age=0.2, depth=1, max_learned=4)
    try:
        routes = [("GET", f"/trade-api/v2/markets/KX-{i}") for i in range(3)]
        for route in routes:
            for _ in range(3):
                await engine.headers(*route)
        await wait_until(lambda: all(engine._pools.get(r) for r in routes))
        for route in routes:  # taken dry: each route records a miss
            while engine.take_presigned(*route) is not None:
                pass
        monkeypatch.setattr(signing_engine, "FORGET_AFTER", 0.0)
        await wait_until(lambda: not engine._pools and not engine._learned)
        await asyncio.sleep(0.05)  # any signature in flight lands
        assert engine._signing == {}
        assert engine._last_miss == {}
        assert engine._depths == {}
    finally:
        await engine.close()


async def test_a_take_racing_the_forget_leaves_no_bookkeeping(key_file: Path) -> None:
    """A refill thread may forget a route while the event loop is inside take_presigned
    for it (here: at the moment it asks for the current signer): the take must not record
    a miss for the route that is gone."""
    signer = _signer(key_file)
    route = ("GET", "/trade-api/v2/portfolio/balance")
    racing = False

    def current() -> Signer:
        if racing:  # the refill thread's forget runs now
            with engine._lock:
                engine._forget_idle(time.monotonic() + 3600)
        return signer

    engine = SigningEngine(current, max_learned=2)
    try:
        await engine.close()  # no refill threads: the learned route's pool stays empty
        for _ in range(3):
            await engine.headers(*route)
        assert route in engine._pools
        racing = True
        assert engine.take_presigned(*route) is None
        assert route not in engine._pools
        assert route not in engine._learned
        assert engine._depths == {}
        assert engine._last_miss == {}
    finally:
        await engine.close()
