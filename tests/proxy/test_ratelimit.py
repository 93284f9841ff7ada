"""Rate limiter: Kalshi's tiers and costs, FIFO waiting, refusals, cancellation, config errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signing_proxy.config.rate_limit import RateLimitConfig, parse_rate_limit
from signing_proxy.errors import ConfigError
from signing_proxy.proxy.ratelimit import Decision, RateLimiter

V2 = "/trade-api/v2"
MARKETS = f"{V2}/markets"  # a read at the default cost, 10
ORDER = f"{V2}/portfolio/orders/abc-123"  # GET costs 2
ORDERS = f"{V2}/portfolio/orders"  # GET costs the default, 10
CREATE = f"{V2}/portfolio/events/orders"  # POST costs the default, 10
BENCH = f"{V2}/cfbenchmarks"  # GET costs 150


class FakeClock:
    """Monotonic time that moves only when told: by `advance`, or by sleeping when `auto`."""

    def __init__(self, auto: bool = True) -> None:
        self.now = 0.0
        self.auto = auto
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.auto:
            self.now += seconds
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for deadline, future in list(self._sleepers):
            if deadline <= self.now + 1e-12:
                self._sleepers.remove((deadline, future))
                if not future.done():
                    future.set_result(None)
        await settle()


def result(task: asyncio.Task[Decision]) -> Decision:
    # Checked rather than awaited, so a waiter that was never woken fails instead of hanging.
    assert task.done()
    return task.result()


async def settle() -> None:
    # Enough loop turns for woken waiters to run and hand over to the next in line.
    for _ in range(10):
        await asyncio.sleep(0)


def limiter(clock: FakeClock, **raw: Any) -> RateLimiter:
    config = parse_rate_limit(raw)
    assert config is not None
    return RateLimiter(config, clock=clock, sleep=clock.sleep)


def default_limiter() -> RateLimiter:
    config = parse_rate_limit({})
    assert config is not None
    return RateLimiter(config)


def error_of(raw: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_rate_limit(raw)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- budgets ----------------------------------------------------------------------------


async def test_basic_tier_passes_twenty_reads_then_waits_a_twentieth_of_a_second() -> None:
    clock = FakeClock()
    rl = limiter(clock, tier="basic")
    for _ in range(20):
        assert await rl.acquire("GET", MARKETS) == Decision(True, 0.0, None, "read", 10)
    decision = await rl.acquire("GET", MARKETS)
    assert decision.allowed
    assert decision.waited == pytest.approx(0.05)
    assert rl.waits == 1
    assert rl.levels()["read"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("tier", "read", "write", "write_capacity"),
    [
        ("basic", 200, 100, 100),
        ("advanced", 300, 300, 600),
        ("premier", 1000, 1000, 2000),
        ("paragon", 2000, 2000, 4000),
        ("prime", 4000, 4000, 8000),
    ],
)
def test_tier_budgets(tier: str, read: float, write: float, write_capacity: float) -> None:
    config = parse_rate_limit({"tier": tier})
    assert config == RateLimitConfig(read, write, read, write_capacity, 1.0, ())


@pytest.mark.parametrize(("tier", "orders_at_once"), [("basic", 10), ("advanced", 60)])
async def test_write_bucket_holds_two_seconds_except_on_basic(
    tier: str, orders_at_once: int
) -> None:
    clock = FakeClock()
    rl = limiter(clock, tier=tier)
    for _ in range(orders_at_once):
        assert (await rl.acquire("POST", CREATE)).waited == 0.0
    assert (await rl.acquire("POST", CREATE)).waited > 0.0


def test_explicit_rates_and_capacities_override_the_tier() -> None:
    config = parse_rate_limit(
        {"tier": "premier", "read_per_second": 50, "write_per_second": 40, "write_capacity": 100}
    )
    assert config is not None
    # Derived capacities follow the explicit rates: 1 s of reads, 2 s of writes off basic.
    assert (config.read_per_second, config.read_capacity) == (50, 50)
    assert (config.write_per_second, config.write_capacity) == (40, 100)
    assert parse_rate_limit({"read_per_second": 300}) == RateLimitConfig(
        300, 100, 300, 100, 1.0, (), pinned=frozenset({"read_per_second"})
    )
    assert config.pinned == {"read_per_second", "write_per_second", "write_capacity"}


def test_empty_section_enables_basic_and_absent_section_disables() -> None:
    assert parse_rate_limit(None) is None
    assert parse_rate_limit({}) == RateLimitConfig(200, 100, 200, 100, 1.0, ())


async def test_buckets_refill_over_time_up_to_capacity() -> None:
    clock = FakeClock()
    rl = limiter(clock, tier="basic")
    await rl.acquire("GET", BENCH)
    assert rl.levels() == {"read": 50, "write": 100}
    clock.now += 0.5
    assert rl.levels() == {"read": 150, "write": 100}
    clock.now += 10
    assert rl.levels() == {"read": 200, "write": 100}


# --- costs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "bucket", "cost"),
    [
        ("GET", MARKETS, "read", 10),
        ("GET", ORDERS, "read", 10),
        ("GET", ORDER, "read", 2),
        ("HEAD", ORDER, "read", 2),
        # The V2 writes Kalshi lists no special cost for cost the default.
        ("POST", f"{V2}/portfolio/events/orders", "write", 10),
        ("POST", f"{V2}/portfolio/events/orders/abc-123/amend", "write", 10),
        ("DELETE", f"{V2}/portfolio/events/orders/batched", "write", 2),
        ("DELETE", f"{V2}/portfolio/events/orders/o-1", "write", 2),
        ("PUT", f"{V2}/multivariate_event_collections/KXMVE-1/lookup", "write", 2),
        ("GET", f"{V2}/margin/balance", "read", 5),
        ("POST", f"{V2}/account/api_usage_level/upgrade", "write", 30),
        ("POST", f"{V2}/communications/quotes", "write", 2),
        ("DELETE", f"{V2}/communications/quotes/q-9", "write", 2),
        ("GET", BENCH, "read", 150),
        ("GET", f"{BENCH}/index/latest", "read", 150),
        ("PATCH", ORDER, "write", 10),
    ],
)
def test_kalshi_endpoint_costs(method: str, path: str, bucket: str, cost: int) -> None:
    rl = default_limiter()
    assert rl.cost_of(method, path) == (bucket, cost)


@pytest.mark.parametrize(
    "path",
    [
        f"{ORDER}/",  # trailing slash reaches the same handler
        f"{V2}/portfolio/orders/abc%2F123",  # an encoded slash stays inside one segment
        f"{V2}/portfolio/%6Frders/abc-123",  # the upstream routes on the decoded path
    ],
)
def test_raw_path_spellings_cost_the_same(path: str) -> None:
    rl = default_limiter()
    assert rl.cost_of("GET", path) == ("read", 2)


def test_a_parameter_matches_one_segment_only() -> None:
    rl = default_limiter()
    assert rl.cost_of("GET", f"{ORDER}/fills") == ("read", 10)
    assert rl.cost_of("GET", f"{ORDERS}//") == ("read", 10)


def test_user_costs_override_defaults_and_literals_beat_parameters() -> None:
    config = parse_rate_limit(
        {
            "costs": [
                {"method": "post", "path": ORDERS, "cost": 25},
                {"method": "GET", "path": f"{ORDERS}/queue_positions", "cost": 7},
                {"method": "GET", "path": f"{V2}/series/:series/markets/*rest", "cost": 3},
            ]
        }
    )
    assert config is not None
    rl = RateLimiter(config)
    assert rl.cost_of("POST", ORDERS) == ("write", 25)
    assert rl.cost_of("GET", f"{ORDERS}/queue_positions") == ("read", 7)
    assert rl.cost_of("GET", ORDER) == ("read", 2)
    assert rl.cost_of("GET", f"{V2}/series/KX/markets/a/b") == ("read", 3)
    assert rl.cost_of("GET", f"{V2}/series/KX/markets") == ("read", 10)


# --- waiting, refusing, cancelling ------------------------------------------------------


async def drain_reads(rl: RateLimiter) -> None:
    for _ in range(20):
        assert (await rl.acquire("GET", MARKETS)).waited == 0.0


async def test_waiters_are_served_first_in_first_out() -> None:
    clock = FakeClock(auto=False)
    rl = limiter(clock, tier="basic", max_wait=5)
    await drain_reads(rl)
    done: list[int] = []

    async def request(index: int, path: str) -> None:
        decision = await rl.acquire("GET", path)
        assert decision.allowed
        done.append(index)

    tasks = [asyncio.create_task(request(0, BENCH))]
    await settle()
    await clock.advance(0.5)  # 100 tokens are back; the dear head still needs 150
    for index, path in enumerate([ORDER, ORDER, MARKETS, ORDER], start=1):
        tasks.append(asyncio.create_task(request(index, path)))
        await settle()
    # The cheap ones would fit now, but they must not overtake (and starve) the head.
    assert done == []
    for _ in range(100):
        await clock.advance(0.01)
        if len(done) == len(tasks):
            break
    assert done == [0, 1, 2, 3, 4]
    assert clock.now == pytest.approx((150 + 2 + 2 + 10 + 2) / 200, abs=0.011)
    assert (rl.waits, rl.queued()) == (5, {"read": 0, "write": 0})


async def test_refusal_is_immediate_and_takes_no_tokens() -> None:
    clock = FakeClock()
    rl = limiter(clock, tier="basic", max_wait=0.5)
    await drain_reads(rl)
    # 150 tokens at 200/s is 0.75 s, over max_wait: refused now, not after sleeping 0.5 s.
    assert await rl.acquire("GET", BENCH) == Decision(False, 0.0, 1, "read", 150)
    assert clock.sleeps == []
    assert (rl.rejections, rl.waits) == (1, 0)
    assert rl.levels()["read"] == 0.0
    # Nothing was taken or queued: the next cheap read waits only for its own tokens.
    assert (await rl.acquire("GET", MARKETS)).waited == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("rate", "path", "max_wait", "retry_after"),
    [
        (10, MARKETS, 0.5, 1),  # exactly 1.0 s stays 1
        (10, ORDER, 0.0, 1),  # 0.2 s rounds up to at least 1
        (5, MARKETS, 1.0, 2),  # exactly 2.0 s
        (4, MARKETS, 2.0, 3),  # 2.5 s rounds up
    ],
)
async def test_retry_after_is_whole_seconds_rounded_up(
    rate: float, path: str, max_wait: float, retry_after: int
) -> None:
    clock = FakeClock()
    rl = limiter(clock, read_per_second=rate, read_capacity=150, max_wait=max_wait)
    await rl.acquire("GET", BENCH)  # empties the bucket
    decision = await rl.acquire("GET", path)
    assert (decision.allowed, decision.retry_after) == (False, retry_after)


async def test_refusal_counts_the_queue_ahead() -> None:
    clock = FakeClock(auto=False)
    rl = limiter(clock, tier="basic", max_wait=1)
    await drain_reads(rl)
    first = asyncio.create_task(rl.acquire("GET", BENCH))  # needs 0.75 s
    await settle()
    # Alone a read would wait 0.05 s; behind the queued 150 tokens it waits 0.8 s.
    second = asyncio.create_task(rl.acquire("GET", MARKETS))
    await settle()
    # A third would wait 1.55 s, past max_wait: refused with the queue ahead counted.
    third = await rl.acquire("GET", BENCH)
    assert third == Decision(False, 0.0, 2, "read", 150)
    await clock.advance(0.75)
    await clock.advance(0.05)
    assert result(first).waited == pytest.approx(0.75)
    assert result(second).waited == pytest.approx(0.8)


async def test_request_dearer_than_its_bucket_is_refused_not_hung() -> None:
    clock = FakeClock()
    # A small custom bucket is allowed even though Kalshi's cfbenchmarks costs 150.
    rl = limiter(clock, read_capacity=100, max_wait=60)
    decision = await rl.acquire("GET", BENCH)
    assert decision == Decision(False, 0.0, 1, "read", 150)
    assert clock.sleeps == []
    assert rl.levels()["read"] == 100


async def test_cancelled_queued_waiter_frees_its_place() -> None:
    clock = FakeClock(auto=False)
    rl = limiter(clock, tier="basic", max_wait=1)
    await drain_reads(rl)
    head = asyncio.create_task(rl.acquire("GET", MARKETS))
    await settle()
    middle = asyncio.create_task(rl.acquire("GET", BENCH))
    await settle()
    tail = asyncio.create_task(rl.acquire("GET", MARKETS))
    await settle()
    middle.cancel()
    await settle()
    assert middle.cancelled()
    assert rl.queued()["read"] == 2
    # The queue ahead is 20 tokens now, not 170: a dear newcomer fits max_wait (0.85 s).
    late = asyncio.create_task(rl.acquire("GET", BENCH))
    await settle()
    assert not late.done()
    await clock.advance(0.05)
    assert result(head).waited == pytest.approx(0.05)
    # The tail waits for its own 10 tokens only, not the cancelled request's 150.
    await clock.advance(0.05)
    assert result(tail).waited == pytest.approx(0.10)
    await clock.advance(0.75)
    assert result(late).waited == pytest.approx(0.85)
    assert rl.levels()["read"] == pytest.approx(0.0)
    assert (rl.queued()["read"], rl.rejections) == (0, 0)


async def test_cancelled_head_hands_over_without_taking_tokens() -> None:
    clock = FakeClock(auto=False)
    rl = limiter(clock, tier="basic", max_wait=5)
    await drain_reads(rl)
    head = asyncio.create_task(rl.acquire("GET", BENCH))
    await settle()
    nxt = asyncio.create_task(rl.acquire("GET", ORDER))
    await settle()
    await clock.advance(0.5)  # the head is asleep until 0.75 s
    head.cancel()
    await settle()
    assert head.cancelled()
    # The 100 tokens refilled meanwhile are still there: the next one passes at once.
    assert nxt.done()
    assert result(nxt).waited == pytest.approx(0.5)
    assert rl.levels()["read"] == pytest.approx(98.0)
    assert rl.queued()["read"] == 0
    assert (await rl.acquire("GET", MARKETS)).waited == 0.0


# --- the bound, for any sequence --------------------------------------------------------

STEP = st.tuples(
    st.floats(min_value=0, max_value=0.3),
    st.sampled_from([("GET", MARKETS), ("GET", ORDER), ("GET", BENCH), ("POST", ORDERS)]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=30), st.floats(min_value=0, max_value=2))
def test_grants_never_exceed_capacity_plus_refill(
    steps: list[tuple[float, tuple[str, str]]], max_wait: float
) -> None:
    config = parse_rate_limit({"tier": "basic", "max_wait": max_wait})
    assert config is not None
    clock = FakeClock()
    rl = RateLimiter(config, clock=clock, sleep=clock.sleep)
    grants: dict[str, list[tuple[float, int]]] = {"read": [], "write": []}

    async def one(method: str, path: str) -> None:
        decision = await rl.acquire(method, path)
        if decision.allowed:
            grants[decision.bucket].append((clock.now, decision.cost))

    async def run() -> None:
        async with asyncio.timeout(5), asyncio.TaskGroup() as group:
            for gap, (method, path) in steps:
                clock.now += gap
                group.create_task(one(method, path))
                await asyncio.sleep(0)

    asyncio.run(run())
    limits = {
        "read": (config.read_capacity, config.read_per_second),
        "write": (config.write_capacity, config.write_per_second),
    }
    for bucket, events in grants.items():
        capacity, rate = limits[bucket]
        for start, _ in events:
            for end, _ in events:
                if end >= start:
                    granted = sum(cost for at, cost in events if start <= at <= end)
                    assert granted <= capacity + rate * (end - start) + 1e-6


# --- configuration errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["basic"], "rate_limit: must be a mapping of settings"),
        ({"teir": "basic"}, "unknown setting 'rate_limit.teir' (did you mean 'tier'?)"),
        ({"max_wiat": 1}, "unknown setting 'rate_limit.max_wiat' (did you mean 'max_wait'?)"),
        (
            {"tier": "gold"},
            "rate_limit.tier: must be one of basic, advanced, premier, paragon, prime; got 'gold'",
        ),
        ({"read_per_second": -5}, "rate_limit.read_per_second: must be a positive number; got -5"),
        ({"write_per_second": 0}, "rate_limit.write_per_second: must be a positive number; got 0"),
        ({"read_capacity": "lots"}, "rate_limit.read_capacity: must be a number; got 'lots'"),
        (
            {"write_capacity": True},
            "rate_limit.write_capacity: must be a positive number; got True",
        ),
        ({"max_wait": -0.5}, "rate_limit.max_wait: must be a non-negative number; got -0.5"),
        ({"max_wait": float("inf")}, "rate_limit.max_wait: must be a non-negative number; got inf"),
        ({"costs": {"GET": 1}}, "rate_limit.costs: must be a list of {method, path, cost}"),
        (
            {"costs": ["GET /x 3"]},
            "rate_limit.costs[0]: must be a mapping with method, path and cost",
        ),
        (
            {"costs": [{"method": "GET", "path": ORDER, "cots": 3}]},
            "unknown setting 'rate_limit.costs[0].cots' (did you mean 'cost'?)",
        ),
        ({"costs": [{"method": "GET", "path": ORDER}]}, "rate_limit.costs[0]: missing cost"),
        (
            {"costs": [{"method": "FETCH", "path": ORDER, "cost": 3}]},
            "rate_limit.costs[0].method: must be one of GET, POST, PUT, PATCH, DELETE, OPTIONS; "
            "got 'FETCH'",
        ),
        (
            {"costs": [{"method": "GET", "path": "/portfolio/orders", "cost": 3}]},
            "rate_limit.costs[0].path: must be a full path starting with /trade-api/v2/; "
            "got '/portfolio/orders'",
        ),
        (
            {"costs": [{"method": "GET", "path": f"{V2}/*rest/x", "cost": 3}]},
            "rate_limit.costs[0].path: a *catch-all must be the last segment; "
            "got '/trade-api/v2/*rest/x'",
        ),
        (
            {"costs": [{"method": "GET", "path": f"{V2}/:/x", "cost": 3}]},
            "rate_limit.costs[0].path: parameter ':' needs a name; got '/trade-api/v2/:/x'",
        ),
        (
            {"costs": [{"method": "GET", "path": ORDER, "cost": 0}]},
            "rate_limit.costs[0].cost: must be a positive integer; got 0",
        ),
        (
            {"costs": [{"method": "GET", "path": ORDER, "cost": 2.5}]},
            "rate_limit.costs[0].cost: must be a positive integer; got 2.5",
        ),
        (
            {
                "costs": [
                    {"method": "GET", "path": ORDER, "cost": 3},
                    {"method": "get", "path": ORDER, "cost": 4},
                ]
            },
            "rate_limit.costs[1]: repeats GET /trade-api/v2/portfolio/orders/abc-123 "
            "from rate_limit.costs[0]",
        ),
        (
            {"read_per_second": 5},
            "rate_limit.read_capacity: must be at least 10, the default cost of a request; got 5",
        ),
        (
            {"write_capacity": 50, "costs": [{"method": "DELETE", "path": ORDER, "cost": 60}]},
            "rate_limit.costs[0].cost: must be at most the write bucket's capacity, 50; got 60",
        ),
    ],
)
def test_config_errors_name_the_setting(raw: Any, expected: str) -> None:
    assert error_of(raw) == expected
