"""What `check --online` says about Kalshi's own hosts, which the tests never call: the
environment a host belongs to, and the likely cause of a 401 there."""

from __future__ import annotations

import pytest

from signing_proxy.config import Overrides, load_config
from signing_proxy.ops.online_check import describe_host, likely_cause

KEY = "0e2a91c4-1b7d-4a55-9c3e-2f6d8b0a7e31"


@pytest.mark.parametrize(
    ("url", "environment", "said"),
    [
        ("https://external-api.demo.kalshi.co", "demo", "(Kalshi demo)"),
        ("https://demo-api.kalshi.co", "demo", "(Kalshi demo)"),
        ("https://external-api.kalshi.com", "production", "(Kalshi production)"),
        ("https://api.elections.kalshi.com", "production", "(Kalshi production)"),
        (
            "https://external-api.kalshi.com",
            "demo",
            "(Kalshi production, although the environment is demo)",
        ),
        ("http://127.0.0.1:8081", "demo", "(not a Kalshi host: a local or test upstream)"),
    ],
)
def test_the_host_is_named_with_its_environment(url: str, environment: str, said: str) -> None:
    assert describe_host(url, environment) == f"{url} {said}"


@pytest.mark.parametrize(("env", "other"), [("demo", "production"), ("production", "demo")])
def test_an_unknown_key_id_on_kalshi_suggests_the_other_environment(env: str, other: str) -> None:
    config = load_config(None, {}, Overrides(env=env))
    cause = likely_cause("NOT_FOUND", 401, config, KEY, offset=0.2)
    assert cause.startswith(f"Kalshi's {env} does not know key id {KEY}: ")
    assert cause.endswith(f"a {other} key works only on {other} (--env {other})")


def test_a_stale_timestamp_with_a_good_clock_still_names_the_clock() -> None:
    config = load_config(None, {}, Overrides())
    cause = likely_cause("header_timestamp_expired", 401, config, KEY, offset=0.3)
    assert cause.startswith("the clock: the timestamp was outside Kalshi's window")
