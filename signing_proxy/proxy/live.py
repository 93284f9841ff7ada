"""The state a reload replaces as one: configuration, signer and access policy."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from signing_proxy.config import Config
from signing_proxy.config.risk import RiskConfig, for_client
from signing_proxy.kalshi.signer import Signer
from signing_proxy.proxy.access import AccessPolicy
from signing_proxy.proxy.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent generation of settings; requests read it once and use it throughout."""

    config: Config
    signer: Signer
    access: AccessPolicy
    limiter: RateLimiter | None
    # Built once per generation, so a reload of the timeouts reaches every new request.
    client_timeout: aiohttp.ClientTimeout
    # listen.allowed_hosts as a set, for the Host check on every request.
    allowed_hosts: frozenset[str]
    # Each token's risk rules (the top-level ones with its overrides), by token name.
    risks: dict[str, RiskConfig]
    # The subaccount each pinned token acts on, by token name.
    pins: dict[str, int]


class Live:
    """Holds the current Snapshot; replacing it is one reference swap, atomic on the loop."""

    __slots__ = ("current", "generation")

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        self.generation = 1

    @classmethod
    def build(cls, config: Config, signer: Signer) -> Live:
        """A holder for `config` and `signer` with the access policy derived from config."""
        return cls(make_snapshot(config, signer))

    def swap(self, snapshot: Snapshot) -> None:
        """Make `snapshot` current for every request that starts from now on."""
        self.current = snapshot
        self.generation += 1


def make_snapshot(config: Config, signer: Signer, previous: Snapshot | None = None) -> Snapshot:
    """A Snapshot of `config` and `signer`; keeps `previous`'s limiter if its settings hold."""
    limiter: RateLimiter | None = None
    if config.rate_limit is not None:
        # Same settings: keep the buckets, so a reload does not hand out a fresh budget.
        if previous and previous.limiter and previous.config.rate_limit == config.rate_limit:
            limiter = previous.limiter
        else:
            limiter = RateLimiter(config.rate_limit)
    return Snapshot(
        config=config,
        signer=signer,
        access=AccessPolicy(config.access),
        limiter=limiter,
        client_timeout=aiohttp.ClientTimeout(
            total=None,
            sock_connect=config.upstream.connect_timeout,
            sock_read=config.upstream.timeout,
        ),
        allowed_hosts=frozenset(config.listen.allowed_hosts),
        risks={t.name: for_client(config.risk, t.risk) for t in config.access.tokens},
        pins={t.name: t.subaccount for t in config.access.tokens if t.subaccount is not None},
    )
