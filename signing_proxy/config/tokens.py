"""The `access.tokens` list: inbound bearer tokens and their allow / deny rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from signing_proxy.config import risk
from signing_proxy.config.values import boolean, env_value, is_utf8, seconds
from signing_proxy.errors import ConfigError, did_you_mean

MIN_TOKEN_LENGTH = 16
METHODS = frozenset({"*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TOKEN_KEYS = frozenset(
    {
        "name",
        "token",
        "token_env",
        "read_only",
        "allow",
        "deny",
        "risk",
        "subaccount",
        "admin",
        "heartbeat",
    }
)
# The journal names the proxy's own calls (the cancels of a halt) with this prefix.
RESERVED_PREFIX = "proxy:"
# Kalshi numbers subaccounts 1-63 (0 is the primary).
MAX_SUBACCOUNT = 63


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One policy rule: a method (or *) and a path glob, e.g. GET /trade-api/v2/markets*."""

    method: str
    pattern: str

    def __str__(self) -> str:
        return f"{self.method} {self.pattern}"


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """One inbound bearer token and its policy; only its name is ever logged."""

    name: str
    token: str = field(repr=False)
    read_only: bool = False
    allow: tuple[RuleConfig, ...] = ()
    deny: tuple[RuleConfig, ...] = ()
    # Overrides of the top-level `risk` section for this client, checked as those keys are.
    risk: Mapping[str, Any] = field(default_factory=dict)
    # Pinned: this client acts on this subaccount only (0 is the primary).
    subaccount: int | None = None
    # May call the admin API under /proxy/v1/ (status, halt, resume, journal).
    admin: bool = False
    # Dead-man's switch: silent this many seconds, its resting orders are cancelled.
    heartbeat: float | None = None


def tokens(value: Any, name: str, env: Mapping[str, str]) -> tuple[TokenConfig, ...]:
    """Parse the token list; a token may come from the variable its `token_env` names."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{name}: must be a list of {{name, token | token_env}}")
    parsed = tuple(_token(item, f"{name}[{index}]", env) for index, item in enumerate(value))
    names = [t.name for t in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"{name}: token names must be unique")
    return parsed


def _token(item: Any, where: str, env: Mapping[str, str]) -> TokenConfig:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be a mapping with name and token or token_env")
    unknown = set(item) - _TOKEN_KEYS
    if unknown:
        key = sorted(unknown)[0]
        hint = did_you_mean(key, dict.fromkeys(_TOKEN_KEYS))
        raise ConfigError(f"unknown setting '{where}.{key}'{hint}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: must be a non-empty string")
    if name.strip() == "*" or name.strip().startswith(RESERVED_PREFIX):
        # '*' names every client in a halt; 'proxy:' names the proxy's own calls.
        raise ConfigError(f"{where}.name: '*' and names starting with 'proxy:' are reserved")
    return TokenConfig(
        name=name.strip(),
        token=_token_value(item, where, env),
        read_only=boolean(item.get("read_only", False), f"{where}.read_only", env),
        allow=policy_rules(item.get("allow"), f"{where}.allow"),
        deny=policy_rules(item.get("deny"), f"{where}.deny"),
        risk=risk.overrides(item.get("risk"), f"{where}.risk", env),
        subaccount=_subaccount(item.get("subaccount"), f"{where}.subaccount"),
        admin=boolean(item.get("admin", False), f"{where}.admin", env),
        heartbeat=_heartbeat(item.get("heartbeat"), f"{where}.heartbeat", env),
    )


# Below a second the switch would fire between two calls of a healthy bot.
MIN_HEARTBEAT = 1.0


def _heartbeat(value: Any, where: str, env: Mapping[str, str]) -> float | None:
    if value is None:
        return None
    number: float = seconds()(value, where, env)
    if number < MIN_HEARTBEAT:
        raise ConfigError(f"{where}: must be at least {MIN_HEARTBEAT:g} second; got {value!r}")
    return number


def _subaccount(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SUBACCOUNT:
        limit = MAX_SUBACCOUNT
        raise ConfigError(f"{where}: must be a subaccount number, 0 to {limit}; got {value!r}")
    return value


def policy_rules(value: Any, where: str) -> tuple[RuleConfig, ...]:
    """A list of 'METHOD /path-glob' rules (a single string is a list of one)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of 'METHOD /path-glob' rules")
    rules = []
    for index, item in enumerate(value):
        parts = str(item).split()
        if len(parts) != 2 or parts[0].upper() not in METHODS or not parts[1].startswith("/"):
            raise ConfigError(
                f"{where}[{index}]: must look like 'GET /trade-api/v2/markets*' "
                f"(a method or *, a space, a path glob); got {item!r}"
            )
        rules.append(RuleConfig(method=parts[0].upper(), pattern=parts[1]))
    return tuple(rules)


def _token_value(item: Mapping[str, Any], where: str, env: Mapping[str, str]) -> str:
    if ("token" in item) == ("token_env" in item):
        raise ConfigError(f"{where}: give exactly one of token or token_env")
    if "token_env" in item:
        var = str(item["token_env"])
        token = env_value(env, var)
        if token is None:
            raise ConfigError(f"{where}.token_env: environment variable {var} is not set")
        if not is_utf8(token):  # it is compared as UTF-8 bytes on every request
            raise ConfigError(
                f"{where}.token_env: environment variable {var} contains bytes that are "
                "not valid UTF-8"
            )
    else:
        token = str(item["token"]) if item["token"] is not None else ""
    # The message never echoes the token itself, only its length.
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{where}: token must be at least {MIN_TOKEN_LENGTH} characters; got {len(token)}"
        )
    return token
