"""The `signing` section's own values: pre-signed routes and how long a signature keeps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signing_proxy.config.tokens import METHODS
from signing_proxy.config.values import seconds
from signing_proxy.errors import ConfigError

# Kalshi's window is about 5 s; keep a margin for the trip and clock skew.
MAX_PRESIGN_AGE = 3.0
# The deepest a route's pool grows under load (at 2,000 calls a second, 16 ms of calls).
MAX_PRESIGN_DEPTH = 32


def presign_routes(value: Any, name: str, env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """'METHOD /trade-api/v2/exact/path' strings, as (METHOD, path) pairs."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{name}: must be a list of 'METHOD /path' strings")
    parsed = []
    for index, route in enumerate(value):
        parts = str(route).split()
        # Exact paths only: a signature covers one path, so a glob could never be pre-signed.
        if (
            len(parts) != 2
            or parts[0].upper() not in METHODS - {"*"}
            or not parts[1].startswith("/trade-api/v2/")
            or any(c in parts[1] for c in "*?")
        ):
            raise ConfigError(
                f"{name}[{index}]: must look like "
                f"'POST /trade-api/v2/portfolio/events/orders' (an exact path); got {route!r}"
            )
        parsed.append((parts[0].upper(), parts[1]))
    return tuple(parsed)


def presign_max_age(value: Any, name: str, env: Mapping[str, str]) -> float:
    """Seconds a pre-made signature may wait before it is thrown away."""
    age: float = seconds()(value, name, env)
    if age > MAX_PRESIGN_AGE:
        raise ConfigError(
            f"{name}: at most {MAX_PRESIGN_AGE:g} seconds (Kalshi's window is about 5); got {age:g}"
        )
    return age
