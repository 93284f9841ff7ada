"""Configuration: one model of every key (model.py), loaded from YAML, environment and
flags (load.py), validated once into frozen dataclasses."""

from signing_proxy.config.load import (
    Overrides,
    check_bind,
    flag_keys,
    load_config,
    settings_needing_restart,
    with_upstream,
)
from signing_proxy.config.model import (
    AccessConfig,
    CompatConfig,
    Config,
    CredentialsConfig,
    JournalConfig,
    LimitsConfig,
    ListenConfig,
    LoggingConfig,
    SigningConfig,
    UpstreamConfig,
)
from signing_proxy.config.network import (
    DEFAULT_MARGIN_WS_URLS,
    DEFAULT_REST_URLS,
    DEFAULT_WS_URLS,
    MARGIN_WS_PATH,
    REST_PREFIX,
    WS_PATH,
    is_loopback_host,
)
from signing_proxy.config.tokens import RuleConfig, TokenConfig

__all__ = [
    "DEFAULT_MARGIN_WS_URLS",
    "DEFAULT_REST_URLS",
    "DEFAULT_WS_URLS",
    "MARGIN_WS_PATH",
    "REST_PREFIX",
    "WS_PATH",
    "AccessConfig",
    "CompatConfig",
    "Config",
    "CredentialsConfig",
    "JournalConfig",
    "LimitsConfig",
    "ListenConfig",
    "LoggingConfig",
    "Overrides",
    "RuleConfig",
    "SigningConfig",
    "TokenConfig",
    "UpstreamConfig",
    "check_bind",
    "flag_keys",
    "is_loopback_host",
    "load_config",
    "settings_needing_restart",
    "with_upstream",
]
