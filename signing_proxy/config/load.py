"""Loading the configuration: YAML, environment and flags into the model's dataclasses."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from signing_proxy.config import network
from signing_proxy.config.fields import Key, all_keys, keys_of, section_fields
from signing_proxy.config.model import AccessConfig, Config
from signing_proxy.config.network import is_loopback_host, resolve_urls
from signing_proxy.config.values import env_value
from signing_proxy.errors import ConfigError, did_you_mean

CONFIG_VARIABLE = "SIGNING_PROXY_CONFIG"


@dataclass(frozen=True, slots=True)
class Overrides:
    """Command-line flags of `run`, named as the model's `flag`s; None: not given."""

    host: str | None = None
    port: int | str | None = None
    env: str | None = None
    upstream: str | None = None


def flag_keys() -> list[Key]:
    """The keys that `run` takes as command-line flags (see Overrides)."""
    return [key for key in all_keys(Config) if key.setting.flag]


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Overrides = Overrides(),
) -> Config:
    """Build the configuration: flags override env, env overrides the file, the file defaults."""
    env = os.environ if env is None else env
    path = path or env_value(env, CONFIG_VARIABLE)
    # A path from a config file, an env file or a quoted argument never saw a shell's ~.
    raw = _read_yaml(os.path.expanduser(path)) if path else {}
    given = _given_values(raw, env, overrides)
    config = _build(Config, "", given, env)
    return _checked(_with_urls(config))


def _given_values(
    raw: Mapping[str, Any], env: Mapping[str, str], overrides: Overrides
) -> dict[str, tuple[Any, str]]:
    """Every value set somewhere, by dotted key: (value, the name its error message uses)."""
    given = {dotted: (value, dotted) for dotted, value in _file_values(raw).items()}
    for key in all_keys(Config):
        if key.setting.env and (value := env_value(env, key.setting.env)) is not None:
            # A secret read only from its variable is named by the variable.
            label = key.dotted if key.setting.in_file else key.setting.env
            given[key.dotted] = (value, label)
        if key.setting.flag and (value := getattr(overrides, key.setting.flag)) is not None:
            given[key.dotted] = (value, key.dotted)
    return given


def _file_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The file's values by dotted key; unknown keys and malformed sections are errors."""
    top = {key.name for key in keys_of(Config) if key.setting.in_file}
    sections = {name: kind for name, kind, _ in section_fields(Config)}
    flat: dict[str, Any] = {}
    for name, value in raw.items():
        if name in top:
            flat[name] = value
        elif name in sections:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: must be a mapping of settings")
            known = {k.name for k in keys_of(sections[name]) if k.setting.in_file}
            for sub, subvalue in value.items():
                if sub not in known:
                    hint = did_you_mean(str(sub), dict.fromkeys(known))
                    raise ConfigError(f"unknown setting '{name}.{sub}'{hint}")
                flat[f"{name}.{sub}"] = subvalue
        else:
            hint = did_you_mean(str(name), dict.fromkeys(top | set(sections)))
            raise ConfigError(f"unknown setting {name!r}{hint}")
    return flat


def _build(
    kind: type[Any], prefix: str, given: Mapping[str, tuple[Any, str]], env: Mapping[str, str]
) -> Any:
    """An instance of the model dataclass `kind`: given values parsed, the rest defaulted."""
    values: dict[str, Any] = {}
    for key in keys_of(kind, prefix):
        if key.dotted in given:
            value, label = given[key.dotted]
            values[key.name] = key.setting.parse(value, label, env)
    for name, section_kind, _ in section_fields(kind):
        values[name] = _build(section_kind, f"{name}.", given, env)
    return kind(**values)


def _with_urls(config: Config) -> Config:
    """Empty upstream URLs filled from the environment (or the REST URL's host)."""
    upstream = config.upstream
    rest, ws, margin = resolve_urls(
        upstream.rest_url, upstream.ws_url, upstream.margin_ws_url, config.environment
    )
    upstream = dataclasses.replace(upstream, rest_url=rest, ws_url=ws, margin_ws_url=margin)
    return dataclasses.replace(config, upstream=upstream)


def _checked(config: Config) -> Config:
    """`config`, once the rules that join two keys hold."""
    credentials = config.credentials
    if credentials.private_key_file and credentials.private_key_pem:
        raise ConfigError(
            "credentials: both KALSHI_PRIVATE_KEY and a private key file are set; keep one"
        )
    check_bind(config.listen.host, config.access)
    if config.access.max_body_bytes > config.limits.body_memory_bytes:
        raise ConfigError(
            "limits.body_memory_bytes: must be at least access.max_body_bytes "
            f"({config.access.max_body_bytes}); got {config.limits.body_memory_bytes}"
        )
    return config


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"config file {path!r} cannot be read: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path!r} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must be a mapping of settings at the top level")
    return data


def check_bind(host: str, access: AccessConfig) -> None:
    """Refuse serving `host` without inbound tokens unless it is loopback or opted out."""
    # Anyone who reaches the port can trade with the owner's money: off loopback, require
    # inbound tokens unless the user explicitly opts out (a private container network).
    if is_loopback_host(host) or access.tokens or access.allow_unauthenticated_remote:
        return
    fix = (
        "add an inbound token, or set access.allow_unauthenticated_remote: true on a "
        "private network"
    )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # A name (a typo such as 'locahost', say) is not known to be remote: say only what
        # is known, that it is not a loopback address and so may be reachable.
        raise ConfigError(
            f"listen.host: {host!r} is not an IP address or localhost, so it may be "
            f"reachable from other machines, and no access.tokens are configured; use "
            f"127.0.0.1, {fix}"
        ) from None
    raise ConfigError(
        f"listen.host: {host} is reachable from other machines and no access.tokens "
        f"are configured; {fix}"
    )


def settings_needing_restart(old: Config, new: Config) -> list[str]:
    """The settings that differ between `old` and `new` and take effect only at a start."""
    # Bound when the process starts (the socket, connection bounds, the log setup, signing
    # threads and pools, the probe's timer, aiohttp's keep-alive, the drain): a reload
    # that changes them says so instead of pretending they changed.
    changed = [key.dotted for key in keys_of(Config) if _differs(key, old, new)]
    for name, kind, declared in section_fields(Config):
        before, after = getattr(old, name), getattr(new, name)
        if declared.restart:
            changed += [name] if before != after else []
        else:
            changed += [k.dotted for k in keys_of(kind, f"{name}.") if _differs(k, before, after)]
    return changed


def _differs(key: Key, old: Any, new: Any) -> bool:
    return key.setting.restart and getattr(old, key.name) != getattr(new, key.name)


def with_upstream(config: Config, rest_url: str) -> Config:
    """A copy of `config` pointed at `rest_url`, the WebSocket URL derived from it."""
    parsed = network.rest_url(rest_url, "upstream.rest_url", {})
    upstream = dataclasses.replace(config.upstream, rest_url=parsed, ws_url="", margin_ws_url="")
    return _with_urls(dataclasses.replace(config, upstream=upstream))
