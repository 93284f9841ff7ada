"""Loading the configuration: YAML, environment and flags into the frozen dataclasses."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import SplitResult, urlsplit

import yaml

from signing_proxy.config.rate_limit import RateLimitConfig, parse_rate_limit
from signing_proxy.errors import ConfigError, did_you_mean

Environment = Literal["demo", "production"]
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

# Kalshi's recommended hosts (API_FACTS.md); the WebSocket host differs from the REST host.
DEFAULT_REST_URLS: dict[str, str] = {
    "demo": "https://external-api.demo.kalshi.co",
    "production": "https://external-api.kalshi.com",
}
DEFAULT_WS_URLS: dict[str, str] = {
    "demo": "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
    "production": "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
}
REST_PREFIX = "/trade-api/v2"
WS_PATH = "/trade-api/ws/v2"
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Where signed requests go and how long to wait for them."""

    rest_url: str
    ws_url: str
    connect_timeout: float = 5.0
    timeout: float = 30.0
    deadline: float = 60.0
    retries: int = 2
    probe_interval: float = 300.0


@dataclass(frozen=True, slots=True)
class CredentialsConfig:
    """The Kalshi key id and where the private key comes from (never the key in a log)."""

    api_key_id: str | None = None
    private_key_file: str | None = None
    # The PEM itself, from KALSHI_PRIVATE_KEY only: a key must never sit in a YAML file.
    private_key_pem: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    allow_insecure_key_file: bool = False


@dataclass(frozen=True, slots=True)
class ListenConfig:
    """The address the proxy serves on."""

    host: str = "127.0.0.1"
    port: int = 8080
    # Extra Host header names served (a compose service name, say); loopback names and
    # IP literals are always served. Anything else is refused: it defeats DNS rebinding.
    allowed_hosts: tuple[str, ...] = ()


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


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """Who may use the proxy and what they may send."""

    tokens: tuple[TokenConfig, ...] = ()
    read_only: bool = False
    max_body_bytes: int = 1024 * 1024
    client_timeout: float = 30.0
    allow_unauthenticated_remote: bool = False
    # Browser origins (scheme://host[:port]) allowed to call; a request from any other
    # web page is refused, so a page in the user's browser cannot trade with the key.
    allowed_origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Bounds on what clients can hold: connections, request heads, WebSocket sessions."""

    max_connections: int = 1024
    max_header_bytes: int = 32768
    websocket_sessions: int = 64
    # Request bodies are read whole before they go upstream; this bounds them all together.
    body_memory_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """How events are rendered."""

    format: LogFormat = "auto"
    level: LogLevel = "info"


DEFAULT_PRESIGN_ROUTES = (
    "POST /trade-api/v2/portfolio/orders",
    "POST /trade-api/v2/portfolio/events/orders",
)


@dataclass(frozen=True, slots=True)
class SigningConfig:
    """How signatures are produced: pre-signed hot routes and signing threads."""

    presign_routes: tuple[tuple[str, str], ...] = tuple(
        (r.split()[0], r.split()[1]) for r in DEFAULT_PRESIGN_ROUTES
    )
    presign_max_age: float = 1.0
    presign_depth: int = 2
    learn_hot_routes: int = 8
    threads: int = 2


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated configuration of one proxy."""

    environment: Environment
    upstream: UpstreamConfig
    credentials: CredentialsConfig = CredentialsConfig()
    listen: ListenConfig = ListenConfig()
    access: AccessConfig = AccessConfig()
    limits: LimitsConfig = LimitsConfig()
    logging: LoggingConfig = LoggingConfig()
    rate_limit: RateLimitConfig | None = None
    shutdown_timeout: float = 15.0
    signing: SigningConfig = SigningConfig()

    def secret_values(self) -> tuple[str, ...]:
        """Every secret string this configuration holds, for log redaction."""
        secrets = [t.token for t in self.access.tokens]
        if self.credentials.passphrase:
            secrets.append(self.credentials.passphrase)
        return tuple(secrets)


# The YAML schema: section -> key -> default. Unknown keys are errors.
_SCHEMA: dict[str, dict[str, Any] | Any] = {
    "environment": "demo",
    "shutdown_timeout": 15,
    "upstream": {
        "rest_url": None,
        "ws_url": None,
        "connect_timeout": 5,
        "timeout": 30,
        "deadline": 60,
        "retries": 2,
        "probe_interval": 300,
    },
    "credentials": {
        "api_key_id": None,
        "private_key_file": None,
        "allow_insecure_key_file": False,
    },
    "listen": {"host": "127.0.0.1", "port": 8080, "allowed_hosts": []},
    "access": {
        "tokens": [],
        "read_only": False,
        "max_body_bytes": 1024 * 1024,
        "client_timeout": 30,
        "allow_unauthenticated_remote": False,
        "allowed_origins": [],
    },
    "limits": {
        "max_connections": 1024,
        "max_header_bytes": 32768,
        "websocket_sessions": 64,
        "body_memory_bytes": 64 * 1024 * 1024,
    },
    "logging": {"format": "auto", "level": "info"},
    "signing": {
        "presign_routes": list(DEFAULT_PRESIGN_ROUTES),
        "presign_max_age": 1.0,
        "presign_depth": 2,
        "learn_hot_routes": 8,
        "threads": 2,
    },
    # Validated by ratelimit.parse_rate_limit, which owns its keys.
    "rate_limit": None,
}
_OPAQUE_SECTIONS = frozenset({"rate_limit"})

# Environment variable -> dotted setting. An empty variable counts as unset.
ENV_VARS: dict[str, str] = {
    "SIGNING_PROXY_ALLOW_UNAUTHENTICATED_REMOTE": "access.allow_unauthenticated_remote",
    "SIGNING_PROXY_ALLOW_INSECURE_KEY_FILE": "credentials.allow_insecure_key_file",
    "KALSHI_ENV": "environment",
    "KALSHI_API_KEY_ID": "credentials.api_key_id",
    "KALSHI_PRIVATE_KEY_FILE": "credentials.private_key_file",
    "SIGNING_PROXY_UPSTREAM": "upstream.rest_url",
    "SIGNING_PROXY_HOST": "listen.host",
    "SIGNING_PROXY_ALLOWED_HOSTS": "listen.allowed_hosts",
    "SIGNING_PROXY_ALLOWED_ORIGINS": "access.allowed_origins",
    "SIGNING_PROXY_PORT": "listen.port",
    "SIGNING_PROXY_LOG_FORMAT": "logging.format",
    "SIGNING_PROXY_LOG_LEVEL": "logging.level",
}


@dataclass(frozen=True, slots=True)
class Overrides:
    """Command-line flags; None means the flag was not given."""

    host: str | None = None
    port: int | None = None
    environment: str | None = None
    upstream: str | None = None


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Overrides = Overrides(),
) -> Config:
    """Build the configuration: flags override env, env overrides the file, the file defaults."""
    env = os.environ if env is None else env
    path = path or _env(env, "SIGNING_PROXY_CONFIG")
    # A path from a config file, an env file or a quoted argument never saw a shell's ~.
    raw = _read_yaml(os.path.expanduser(path)) if path else {}
    _check_keys(raw)
    values = _flatten_defaults()
    for dotted, value in _flatten(raw).items():
        values[dotted] = value
    for var, dotted in ENV_VARS.items():
        if (value := _env(env, var)) is not None:
            values[dotted] = value
    for dotted, value in (
        ("listen.host", overrides.host),
        ("listen.port", overrides.port),
        ("environment", overrides.environment),
        ("upstream.rest_url", overrides.upstream),
    ):
        if value is not None:
            values[dotted] = value
    return _build(values, env)


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None


def _env_text(env: Mapping[str, str], name: str) -> str | None:
    value = _env(env, name)
    # os.environ keeps bytes that are not UTF-8 as lone surrogates, which only fail later,
    # deep inside key loading; name the variable now (never its value: it is a secret).
    if value is not None and not _is_utf8(value):
        raise ConfigError(f"{name}: contains bytes that are not valid UTF-8; set it as UTF-8 text")
    return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path!r} cannot be read: {_reason(exc)}") from None
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


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _check_keys(raw: Mapping[str, Any]) -> None:
    for key, value in raw.items():
        if key not in _SCHEMA:
            raise ConfigError(f"unknown setting {key!r}{did_you_mean(str(key), _SCHEMA)}")
        if key in _OPAQUE_SECTIONS:
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{key}: must be a mapping of settings")
            continue
        section = _SCHEMA[key]
        if isinstance(section, dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: must be a mapping of settings")
            for sub in value:
                if sub not in section:
                    hint = did_you_mean(str(sub), section)
                    raise ConfigError(f"unknown setting '{key}.{sub}'{hint}")


def _flatten_defaults() -> dict[str, Any]:
    return _flatten(_SCHEMA)


def _flatten(raw: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(_SCHEMA.get(key), dict) and key not in _OPAQUE_SECTIONS:
            for sub, subvalue in (value or {}).items():
                flat[f"{key}.{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


def _build(values: dict[str, Any], env: Mapping[str, str]) -> Config:
    environment = _choice(values, "environment", ("demo", "production"))
    rest_url = _rest_url(values["upstream.rest_url"], environment)
    ws_url = _ws_url(values["upstream.ws_url"], values["upstream.rest_url"], rest_url, environment)
    upstream = UpstreamConfig(
        rest_url=rest_url,
        ws_url=ws_url,
        connect_timeout=_positive_number(values, "upstream.connect_timeout"),
        timeout=_positive_number(values, "upstream.timeout"),
        deadline=_positive_number(values, "upstream.deadline"),
        retries=_int(values, "upstream.retries", minimum=0),
        probe_interval=_non_negative_number(values, "upstream.probe_interval"),
    )
    if upstream.retries > 10:
        raise ConfigError(f"upstream.retries: at most 10; got {upstream.retries}")
    credentials = _credentials(values, env)
    listen = ListenConfig(
        host=_host(values),
        port=_port(values),
        allowed_hosts=_allowed_hosts(values["listen.allowed_hosts"]),
    )
    access = AccessConfig(
        tokens=_tokens(values["access.tokens"], env),
        read_only=_bool(values, "access.read_only"),
        max_body_bytes=_int(values, "access.max_body_bytes", minimum=0),
        client_timeout=_positive_number(values, "access.client_timeout"),
        allow_unauthenticated_remote=_bool(values, "access.allow_unauthenticated_remote"),
        allowed_origins=_allowed_origins(values["access.allowed_origins"]),
    )
    check_bind(listen.host, access)
    limits = LimitsConfig(
        max_connections=_int(values, "limits.max_connections", minimum=1),
        max_header_bytes=_int(values, "limits.max_header_bytes", minimum=1024),
        websocket_sessions=_int(values, "limits.websocket_sessions", minimum=0),
        body_memory_bytes=_int(values, "limits.body_memory_bytes", minimum=1),
    )
    if access.max_body_bytes > limits.body_memory_bytes:
        raise ConfigError(
            "limits.body_memory_bytes: must be at least access.max_body_bytes "
            f"({access.max_body_bytes}); got {limits.body_memory_bytes}"
        )
    log = LoggingConfig(
        format=cast(LogFormat, _choice(values, "logging.format", ("auto", "json", "console"))),
        level=cast(
            LogLevel, _choice(values, "logging.level", ("debug", "info", "warning", "error"))
        ),
    )

    return Config(
        environment=cast(Environment, environment),
        upstream=upstream,
        credentials=credentials,
        listen=listen,
        access=access,
        limits=limits,
        logging=log,
        rate_limit=parse_rate_limit(values["rate_limit"]),
        shutdown_timeout=_non_negative_number(values, "shutdown_timeout"),
        signing=_signing(values),
    )


def _credentials(values: Mapping[str, Any], env: Mapping[str, str]) -> CredentialsConfig:
    pem = _env_text(env, "KALSHI_PRIVATE_KEY")
    key_file = _optional_str(values, "credentials.private_key_file")
    if key_file and pem:
        raise ConfigError(
            "credentials: both KALSHI_PRIVATE_KEY and a private key file are set; keep one"
        )
    return CredentialsConfig(
        api_key_id=_key_id(values),
        # No shell expands ~ in a YAML value or an env file, so do it here.
        private_key_file=os.path.expanduser(key_file) if key_file else None,
        private_key_pem=pem,
        passphrase=_env_text(env, "KALSHI_PRIVATE_KEY_PASSPHRASE"),
        allow_insecure_key_file=_bool(values, "credentials.allow_insecure_key_file"),
    )


def _signing(values: Mapping[str, Any]) -> SigningConfig:
    routes = values["signing.presign_routes"]
    if routes is None:
        routes = []
    if not isinstance(routes, list):
        raise ConfigError("signing.presign_routes: must be a list of 'METHOD /path' strings")
    parsed = []
    for index, route in enumerate(routes):
        parts = str(route).split()
        # Exact paths only: a signature covers one path, so a glob could never be pre-signed.
        if (
            len(parts) != 2
            or parts[0].upper() not in _METHODS - {"*"}
            or not parts[1].startswith("/trade-api/v2/")
            or any(c in parts[1] for c in "*?")
        ):
            raise ConfigError(
                f"signing.presign_routes[{index}]: must look like "
                f"'POST /trade-api/v2/portfolio/orders' (an exact path); got {route!r}"
            )
        parsed.append((parts[0].upper(), parts[1]))
    max_age = _positive_number(values, "signing.presign_max_age")
    if max_age > 3:
        raise ConfigError(
            "signing.presign_max_age: at most 3 seconds (Kalshi's window is about 5); "
            f"got {max_age:g}"
        )
    depth = _int(values, "signing.presign_depth", minimum=1)
    return SigningConfig(
        presign_routes=tuple(parsed),
        presign_max_age=max_age,
        presign_depth=depth,
        learn_hot_routes=_int(values, "signing.learn_hot_routes", minimum=0),
        threads=_int(values, "signing.threads", minimum=1),
    )


def _choice(values: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = values[name]
    text = str(value).strip().lower() if value is not None else ""
    if text not in choices:
        raise ConfigError(f"{name}: must be one of {', '.join(choices)}; got {value!r}")
    return text


def _rest_url(value: Any, environment: str) -> str:
    if value is None or value == "":
        return DEFAULT_REST_URLS[environment]
    url = _url(value, "upstream.rest_url", ("http", "https"))
    parts = urlsplit(url)
    # Users paste Kalshi's documented base (".../trade-api/v2"); only the origin is kept
    # because the client's own path, /trade-api/v2/..., is forwarded byte for byte.
    path = parts.path.rstrip("/")
    if path not in ("", REST_PREFIX):
        raise ConfigError(
            f"upstream.rest_url: must be an origin such as https://host[:port] "
            f"(optionally ending in {REST_PREFIX}); got a path {parts.path!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _ws_url(value: Any, rest_value: Any, rest_url: str, environment: str) -> str:
    if value not in (None, ""):
        url = _url(value, "upstream.ws_url", ("ws", "wss"))
        parts = urlsplit(url)
        if parts.path.rstrip("/") in ("", WS_PATH):
            return f"{parts.scheme}://{parts.netloc}{WS_PATH}"
        raise ConfigError(f"upstream.ws_url: must be ws[s]://host[:port]{WS_PATH}; got {url!r}")
    if rest_value in (None, ""):
        return DEFAULT_WS_URLS[environment]
    # Only rest_url overridden (a local upstream, say): the WebSocket lives on the same host.
    scheme = "wss" if rest_url.startswith("https:") else "ws"
    return f"{scheme}://{rest_url.split('://', 1)[1]}{WS_PATH}"


def _url(value: Any, name: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name}: must be a URL string; got {type(value).__name__}")
    parts = urlsplit(value.strip())
    if parts.scheme not in schemes or not parts.hostname:
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{name}: must be an absolute {allowed} URL; got {_shown(parts)!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{name}: must not carry a query, fragment or credentials")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{name}: has an invalid port; got {_shown(parts)!r}") from None
    return value.strip()


def _shown(parts: SplitResult) -> str:
    """A URL as an error message may show it: no credentials, query or fragment."""
    if "@" in parts.netloc + parts.path:
        return "(a URL with credentials, not shown)"
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path


def _seconds(values: Mapping[str, Any], name: str, allow_zero: bool) -> float:
    value = values[name]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: must be a number of seconds; got {value!r}") from None
    in_range = number >= 0 if allow_zero else number > 0
    if isinstance(value, bool) or not in_range or number == float("inf"):
        kind = "zero or a positive" if allow_zero else "a positive"
        raise ConfigError(f"{name}: must be {kind} number of seconds; got {value!r}")
    return number


def _positive_number(values: Mapping[str, Any], name: str) -> float:
    return _seconds(values, name, allow_zero=False)


def _non_negative_number(values: Mapping[str, Any], name: str) -> float:
    return _seconds(values, name, allow_zero=True)


def _int(values: Mapping[str, Any], name: str, minimum: int) -> int:
    value = values[name]
    if isinstance(value, bool):
        raise ConfigError(f"{name}: must be an integer; got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}: must be an integer; got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}; got {number}")
    return number


def _bool(values: Mapping[str, Any], name: str, label: str | None = None) -> bool:
    value = values[name]
    name = label or name
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{name}: must be true or false; got {value!r}")


def _optional_str(values: Mapping[str, Any], name: str) -> str | None:
    value = values[name]
    if value is None or value == "":
        return None
    if not isinstance(value, str | int):
        raise ConfigError(f"{name}: must be a string; got {type(value).__name__}")
    return str(value).strip()


def _key_id(values: Mapping[str, Any]) -> str | None:
    value = _optional_str(values, "credentials.api_key_id")
    # The key id is sent as a header on every request: a control character (a pasted CR/LF)
    # would make each one fail, so refuse it here. The message never echoes the value.
    if value is not None and not _visible_ascii(value):
        raise ConfigError(
            "credentials.api_key_id (KALSHI_API_KEY_ID): contains a control, space or "
            "non-ASCII character; a Kalshi key id is printable ASCII such as a UUID"
        )
    return value


def _visible_ascii(text: str) -> bool:
    return all("!" <= c <= "~" for c in text)


def _host(values: Mapping[str, Any]) -> str:
    value = _optional_str(values, "listen.host")
    if not value:
        raise ConfigError("listen.host: must not be empty")
    if not _visible_ascii(value):
        raise ConfigError(
            f"listen.host: must be an IP address or a host name (printable ASCII, no spaces); "
            f"got {value!r}"
        )
    return value.strip("[]")


def _port(values: Mapping[str, Any]) -> int:
    port = _int(values, "listen.port", minimum=0)
    if port > 65535:
        raise ConfigError(f"listen.port: must be between 0 and 65535; got {port}")
    return port


def _tokens(value: Any, env: Mapping[str, str]) -> tuple[TokenConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("access.tokens: must be a list of {name, token | token_env}")
    tokens: list[TokenConfig] = []
    for index, item in enumerate(value):
        where = f"access.tokens[{index}]"
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
        tokens.append(
            TokenConfig(
                name=name.strip(),
                token=_token_value(item, where, env),
                read_only=_bool({"v": item.get("read_only", False)}, "v", f"{where}.read_only"),
                allow=_policy_rules(item.get("allow"), f"{where}.allow"),
                deny=_policy_rules(item.get("deny"), f"{where}.deny"),
            )
        )
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ConfigError("access.tokens: token names must be unique")
    return tuple(tokens)


_TOKEN_KEYS = frozenset({"name", "token", "token_env", "read_only", "allow", "deny"})
_METHODS = frozenset({"*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _policy_rules(value: Any, where: str) -> tuple[RuleConfig, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of 'METHOD /path-glob' rules")
    rules = []
    for index, item in enumerate(value):
        parts = str(item).split()
        if len(parts) != 2 or parts[0].upper() not in _METHODS or not parts[1].startswith("/"):
            raise ConfigError(
                f"{where}[{index}]: must look like 'GET /trade-api/v2/markets*' "
                f"(a method or *, a space, a path glob); got {item!r}"
            )
        rules.append(RuleConfig(method=parts[0].upper(), pattern=parts[1]))
    return tuple(rules)


def _string_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        # From the environment: a comma-separated list.
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{name}: must be a list of non-empty strings")
    return [v.strip() for v in value]


def _allowed_hosts(value: Any) -> tuple[str, ...]:
    hosts = []
    for index, host in enumerate(_string_list(value, "listen.allowed_hosts")):
        # Names only, compared without the port: "signing-proxy", not "http://signing-proxy:8080".
        if any(c in host for c in "/:@ ") or host == "*":
            raise ConfigError(
                f"listen.allowed_hosts[{index}]: must be a host name such as 'signing-proxy' "
                f"(no scheme, port or wildcard); got {host!r}"
            )
        hosts.append(host.lower().rstrip("."))
    return tuple(hosts)


def _allowed_origins(value: Any) -> tuple[str, ...]:
    origins = []
    for index, origin in enumerate(_string_list(value, "access.allowed_origins")):
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username
        ):
            raise ConfigError(
                f"access.allowed_origins[{index}]: must be an origin such as "
                f"'http://localhost:3000' (scheme, host and port only); got {origin!r}"
            )
        # Browsers send the origin lower-case and without a trailing slash.
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


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


def _token_value(item: Mapping[str, Any], where: str, env: Mapping[str, str]) -> str:
    if ("token" in item) == ("token_env" in item):
        raise ConfigError(f"{where}: give exactly one of token or token_env")
    if "token_env" in item:
        var = str(item["token_env"])
        token = _env(env, var)
        if token is None:
            raise ConfigError(f"{where}.token_env: environment variable {var} is not set")
        if not _is_utf8(token):  # it is compared as UTF-8 bytes on every request
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


def is_loopback_host(host: str) -> bool:
    """Whether binding to `host` keeps the port reachable from this machine only."""
    if host.lower() == "localhost":  # host names are case-insensitive
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Bound when the process starts (the socket, connection bounds, the log setup, signing
# threads and pools, the probe's timer, aiohttp's keep-alive, the drain): a reload that
# changes them says so instead of pretending they changed.
_RESTART_SETTINGS = (
    "listen",
    "limits",
    "logging",
    "signing",
    "shutdown_timeout",
    "upstream.probe_interval",
    "access.client_timeout",
)


def settings_needing_restart(old: Config, new: Config) -> list[str]:
    """The settings that differ between `old` and `new` and take effect only at a start."""
    changed = []
    for dotted in _RESTART_SETTINGS:
        section, _, key = dotted.partition(".")
        before, after = getattr(old, section), getattr(new, section)
        if key:
            before, after = getattr(before, key), getattr(after, key)
        if before != after:
            changed.append(dotted)
    return changed


def with_upstream(config: Config, rest_url: str) -> Config:
    """A copy of `config` pointed at `rest_url`, the WebSocket URL derived from it."""
    url = _rest_url(rest_url, config.environment)
    ws_url = _ws_url(None, rest_url, url, config.environment)
    upstream = dataclasses.replace(config.upstream, rest_url=url, ws_url=ws_url)
    return dataclasses.replace(config, upstream=upstream)
