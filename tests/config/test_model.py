"""The config model is the one place a key is declared: the example file, environment
variables, flags and the reload's restart list all follow it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from signing_proxy.config import Config, Overrides, flag_keys, load_config
from signing_proxy.config.describe import starter_yaml
from signing_proxy.config.fields import all_keys

EXAMPLE = Path(__file__).parent.parent.parent / "config.example.yaml"

# A valid value other than the default for every key a file may set. A new key without
# one here fails test_sample_table_covers_every_key: each key's effect is then tested.
SAMPLES: dict[str, Any] = {
    "environment": "production",
    "rate_limit": {"tier": "advanced"},
    "shutdown_timeout": 3,
    "upstream.rest_url": "http://127.0.0.1:9999",
    "upstream.ws_url": "ws://127.0.0.1:9998",
    "upstream.margin_ws_url": "ws://127.0.0.1:9997",
    "upstream.connect_timeout": 1.5,
    "upstream.timeout": 7,
    "upstream.deadline": 9,
    "upstream.retries": 0,
    "upstream.probe_interval": 0,
    "credentials.api_key_id": "00000000-0000-0000-0000-000000000000",
    "credentials.private_key_file": "/run/secrets/kalshi.pem",
    "credentials.allow_insecure_key_file": True,
    "listen.host": "127.0.0.2",
    "listen.port": 9000,
    "listen.allowed_hosts": ["signing-proxy"],
    "access.tokens": [{"name": "bot", "token": "b" * 32}],
    "access.read_only": True,
    "access.max_body_bytes": 0,
    "access.client_timeout": 5,
    "access.allow_unauthenticated_remote": True,
    "access.allowed_origins": ["http://localhost:3000"],
    "limits.max_connections": 10,
    "limits.max_header_bytes": 4096,
    "limits.websocket_sessions": 0,
    "limits.body_memory_bytes": 2 * 1024 * 1024,
    "logging.format": "json",
    "logging.level": "debug",
    "signing.presign_routes": [],
    "signing.presign_max_age": 2,
    "signing.presign_depth": 1,
    "signing.learn_hot_routes": 0,
    "signing.threads": 3,
    "compat.v1_orders": "translate",
    "risk.max_order_count": 10,
    "risk.max_order_notional": "25.50",
    "risk.price_collar": [0.05, 0.95],
    "risk.allow_tickers": ["KXHIGHNY-*"],
    "risk.deny_tickers": ["KXBTC*"],
    "risk.max_orders_per_minute": 60,
    "risk.max_daily_notional": 2500,
    "journal.path": "journal-of-the-model-test.sqlite3",
    "websocket.mode": "relay",
    "websocket.linger": 5,
    "websocket.upstream_grace": 7,
    "websocket.client_queue_frames": 50,
}


def _file_keys() -> list[str]:
    return [key.dotted for key in all_keys(Config) if key.setting.in_file]


def _flattened(data: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict) and name != "rate_limit":
            flat.update({f"{name}.{sub}": v for sub, v in value.items()})
        else:
            flat[name] = value
    return flat


def _value_of(config: Config, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def test_example_file_shows_every_key_with_its_default() -> None:
    written = _flattened(yaml.safe_load(EXAMPLE.read_text()))
    assert sorted(written) == sorted(_file_keys())
    # Each value the example writes parses to the model's default.
    assert load_config(str(EXAMPLE), {}) == load_config(None, {})


def test_example_file_names_every_environment_variable() -> None:
    text = EXAMPLE.read_text()
    for key in all_keys(Config):
        if key.setting.env:
            assert key.setting.env in text, f"config.example.yaml does not name {key.setting.env}"


def test_sample_table_covers_every_key() -> None:
    assert sorted(SAMPLES) == sorted(_file_keys())


@pytest.mark.parametrize("dotted", sorted(SAMPLES))
def test_every_key_in_a_file_takes_effect(dotted: str, tmp_path: Path) -> None:
    section, _, name = dotted.rpartition(".")
    data = {section: {name: SAMPLES[dotted]}} if section else {name: SAMPLES[dotted]}
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(data))
    assert _value_of(load_config(str(path), {}), dotted) != _value_of(load_config(None, {}), dotted)


def test_flags_are_the_models_flags() -> None:
    assert {f.name for f in dataclasses.fields(Overrides)} == {
        str(key.setting.flag) for key in flag_keys()
    }


def test_every_declared_key_has_a_doc() -> None:
    assert all(key.setting.doc for key in all_keys(Config))


def test_example_file_is_the_generated_starter_config() -> None:
    # config.example.yaml is what `signing-proxy init` writes, generated from the model;
    # after changing a key, regenerate it: signing-proxy init --print > config.example.yaml
    assert EXAMPLE.read_text() == starter_yaml()
