"""Configuration: precedence, validation, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from signing_proxy.config import (
    DEFAULT_REST_URLS,
    DEFAULT_WS_URLS,
    Overrides,
    load_config,
    settings_needing_restart,
)
from signing_proxy.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def error_of(
    path: str | None = None, env: dict[str, str] | None = None, overrides: Overrides | None = None
) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {}, overrides or Overrides())
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_without_file_or_env() -> None:
    config = load_config(None, {})
    assert config.environment == "demo"
    assert config.upstream.rest_url == DEFAULT_REST_URLS["demo"]
    assert config.upstream.ws_url == DEFAULT_WS_URLS["demo"]
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8080)
    assert config.access.max_body_bytes == 1048576
    assert (config.upstream.connect_timeout, config.upstream.timeout) == (5.0, 30.0)


def test_production_hosts() -> None:
    config = load_config(None, {"KALSHI_ENV": "production"})
    assert config.upstream.rest_url == "https://external-api.kalshi.com"
    assert config.upstream.ws_url == "wss://external-api-ws.kalshi.com/trade-api/ws/v2"


def test_flags_beat_env_beat_file(tmp_path: Path) -> None:
    path = write(tmp_path, "environment: production\nlisten: {port: 9001, host: 127.0.0.2}\n")
    from_file = load_config(path, {})
    assert (from_file.environment, from_file.listen.port) == ("production", 9001)
    env = {"KALSHI_ENV": "demo", "SIGNING_PROXY_PORT": "9002"}
    from_env = load_config(path, env)
    assert (from_env.environment, from_env.listen.port, from_env.listen.host) == (
        "demo",
        9002,
        "127.0.0.2",
    )
    flagged = load_config(path, env, Overrides(port=9003, env="production"))
    assert (flagged.environment, flagged.listen.port) == ("production", 9003)


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: {port: 9100}\n")
    assert load_config(None, {"SIGNING_PROXY_CONFIG": path}).listen.port == 9100


def test_empty_env_var_counts_as_unset(tmp_path: Path) -> None:
    path = write(tmp_path, "environment: production\n")
    assert load_config(path, {"KALSHI_ENV": ""}).environment == "production"


def test_env_only_for_containers(tmp_path: Path) -> None:
    env = {
        "KALSHI_API_KEY_ID": "abc",
        "KALSHI_PRIVATE_KEY_FILE": "/run/secrets/kalshi_key",
        "SIGNING_PROXY_HOST": "0.0.0.0",
        "SIGNING_PROXY_UPSTREAM": "http://sandbox:8081",
        "SIGNING_PROXY_ALLOW_UNAUTHENTICATED_REMOTE": "true",
    }
    config = load_config(None, env)
    assert config.credentials.api_key_id == "abc"
    assert config.credentials.private_key_file == "/run/secrets/kalshi_key"
    assert config.listen.host == "0.0.0.0"
    assert config.upstream.rest_url == "http://sandbox:8081"
    assert config.upstream.ws_url == "ws://sandbox:8081/trade-api/ws/v2"


def test_rest_url_with_kalshi_base_path_keeps_origin() -> None:
    config = load_config(None, {}, Overrides(upstream="https://demo-api.kalshi.co/trade-api/v2/"))
    assert config.upstream.rest_url == "https://demo-api.kalshi.co"
    assert config.upstream.ws_url == "wss://demo-api.kalshi.co/trade-api/ws/v2"


def test_explicit_ws_url_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path, "upstream:\n  rest_url: http://127.0.0.1:1\n  ws_url: ws://127.0.0.1:2\n"
    )
    assert load_config(path, {}).upstream.ws_url == "ws://127.0.0.1:2/trade-api/ws/v2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("enviroment: demo\n", "unknown setting 'enviroment' (did you mean 'environment'?)"),
        ("upstream: {timout: 3}\n", "unknown setting 'upstream.timout' (did you mean 'timeout'?)"),
        ("bogus: 1\n", "unknown setting 'bogus'"),
        ("environment: staging\n", "environment: must be one of demo, production; got 'staging'"),
        ("upstream: {timeout: -1}\n", "upstream.timeout: must be a positive number"),
        ("upstream: {timeout: soon}\n", "upstream.timeout: must be a number of seconds"),
        (
            "upstream: {rest_url: ftp://x}\n",
            "upstream.rest_url: must be an absolute http:// or https:// URL",
        ),
        ("upstream: {rest_url: 'https://x/other'}\n", "upstream.rest_url: must be an origin"),
        (
            "upstream: {ws_url: 'https://x'}\n",
            "upstream.ws_url: must be an absolute ws:// or wss:// URL",
        ),
        ("listen: {port: 70000}\n", "listen.port: must be between 0 and 65535"),
        ("listen: {port: eighty}\n", "listen.port: must be an integer"),
        ("listen: 5\n", "listen: must be a mapping of settings"),
        ("access: {read_only: maybe}\n", "access.read_only: must be true or false"),
        ("access: {max_body_bytes: -5}\n", "access.max_body_bytes: must be at least 0"),
        ("logging: {format: xml}\n", "logging.format: must be one of auto, json, console"),
        ("- a\n- b\n", "must be a mapping of settings at the top level"),
        ("a: [\n", "is not valid YAML at line"),
    ],
)
def test_file_errors_name_the_setting(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(write(tmp_path, text))


def test_missing_config_file(tmp_path: Path) -> None:
    assert "does not exist" in error_of(str(tmp_path / "nope.yaml"))


def test_tokens_inline_and_from_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "access:\n  tokens:\n    - {name: dash, token: abcdefghijklmnop}\n"
        "    - {name: bot, token_env: BOT_TOKEN}\n",
    )
    config = load_config(path, {"BOT_TOKEN": "0123456789abcdef0123"})
    assert [(t.name, t.token) for t in config.access.tokens] == [
        ("dash", "abcdefghijklmnop"),
        ("bot", "0123456789abcdef0123"),
    ]
    assert "0123456789abcdef0123" not in repr(config)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (
            "- {name: a, token: short}",
            "access.tokens[0]: token must be at least 16 characters; got 5",
        ),
        ("- {name: a, token_env: NOPE}", "environment variable NOPE is not set"),
        ("- {name: a}", "give exactly one of token or token_env"),
        ("- {token: abcdefghijklmnopq}", "access.tokens[0].name: must be a non-empty string"),
        ("- {name: a, tokn: abcdefghijklmnopq}", "unknown setting 'access.tokens[0].tokn'"),
        (
            "- {name: a, token: abcdefghijklmnopq}\n    - {name: a, token: bbcdefghijklmnopq}",
            "token names must be unique",
        ),
    ],
)
def test_token_errors(tmp_path: Path, tokens: str, expected: str) -> None:
    message = error_of(write(tmp_path, f"access:\n  tokens:\n    {tokens}\n"))
    assert expected in message
    assert "short" not in message or "got 5" in message


def test_short_token_is_not_echoed(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "access:\n  tokens:\n    - {name: a, token: s3cr3t}\n"))
    assert "s3cr3t" not in message


def test_every_signing_setting_in_the_file_takes_effect(tmp_path: Path) -> None:
    config = load_config(None, {}, Overrides())
    assert config.signing.learn_hot_routes == 8
    text = "signing:\n  learn_hot_routes: 0\n  threads: 3\n  presign_depth: 4\n"
    path = tmp_path / "signing.yaml"
    path.write_text(text)
    signing = load_config(str(path), {}).signing
    assert (signing.learn_hot_routes, signing.threads, signing.presign_depth) == (0, 3, 4)


# How os.environ holds the bytes b"\xff\xfe" of a variable that is not UTF-8 (on POSIX).
NOT_UTF8 = b"pass\xff\xfe".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("variable", ["KALSHI_PRIVATE_KEY_PASSPHRASE", "KALSHI_PRIVATE_KEY"])
def test_secret_env_var_that_is_not_utf8_is_named(variable: str) -> None:
    message = error_of(env={variable: NOT_UTF8})
    assert message.startswith(f"{variable}: ") and "not valid UTF-8" in message
    assert "pass" not in message


def test_token_env_var_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "access:\n  tokens:\n    - {name: bot, token_env: BOT_TOKEN}\n")
    message = error_of(path, {"BOT_TOKEN": NOT_UTF8 * 4})
    assert "access.tokens[0].token_env" in message and "BOT_TOKEN" in message
    assert "pass" not in message


@pytest.mark.parametrize(
    "key_id", ["abc\r\nX-Injected: 1", "abc\ndef", "abc\x00def", "abc\x7fdef", "ab cd", "abé"]
)
def test_key_id_with_a_control_or_non_ascii_character_is_refused(key_id: str) -> None:
    message = error_of(env={"KALSHI_API_KEY_ID": key_id})
    assert "credentials.api_key_id" in message and "KALSHI_API_KEY_ID" in message
    # The value is never echoed: neither its bad characters nor the rest of it.
    assert "abc" not in message and "Injected" not in message and "\r" not in message


def test_key_id_with_a_control_character_from_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'credentials:\n  api_key_id: "abc\\tdef"\n')
    assert "credentials.api_key_id" in error_of(path)


def test_key_id_trailing_newline_is_trimmed() -> None:
    config = load_config(None, {"KALSHI_API_KEY_ID": "abc-123\r\n"})
    assert config.credentials.api_key_id == "abc-123"


def test_a_host_name_is_not_called_remote() -> None:
    message = error_of(overrides=Overrides(host="locahost"))
    assert "listen.host: 'locahost' is not an IP address or localhost" in message
    assert "is reachable" not in message  # a name may resolve anywhere: no claim


def test_an_address_off_loopback_is_called_remote() -> None:
    message = error_of(overrides=Overrides(host="0.0.0.0"))
    assert "listen.host: 0.0.0.0 is reachable from other machines" in message


@pytest.mark.parametrize("host", ["localhost", "LocalHost", "127.0.0.2", "::1", "[::1]"])
def test_loopback_hosts_need_no_token(host: str) -> None:
    assert load_config(None, {}, Overrides(host=host)).listen.host == host.strip("[]")


@pytest.mark.parametrize("host", ["local host", "a\nb", NOT_UTF8])
def test_host_that_is_not_a_name_or_address_is_refused(host: str) -> None:
    message = error_of(
        env={"SIGNING_PROXY_ALLOW_UNAUTHENTICATED_REMOTE": "1"}, overrides=Overrides(host=host)
    )
    assert message.startswith("listen.host: must be an IP address or a host name")


def test_tilde_in_private_key_file_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    from_env = load_config(None, {"KALSHI_PRIVATE_KEY_FILE": "~/keys/k.pem"})
    assert from_env.credentials.private_key_file == str(tmp_path / "keys" / "k.pem")
    from_file = load_config(write(tmp_path, "credentials:\n  private_key_file: ~/k.pem\n"), {})
    assert from_file.credentials.private_key_file == str(tmp_path / "k.pem")


def test_tilde_in_config_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, "listen: {port: 9200}\n")
    assert load_config("~/config.yaml", {}).listen.port == 9200
    assert load_config(None, {"SIGNING_PROXY_CONFIG": "~/config.yaml"}).listen.port == 9200


@pytest.mark.parametrize(
    "url",
    [
        "ftp://user:SECRETPW@host/x",
        "user:SECRETPW@host",
        "ftp://host/x?token=SECRETPW",
        "http://user:SECRETPW@host:99999",
    ],
)
def test_a_bad_upstream_url_is_never_echoed_with_its_secrets(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(None, {"SIGNING_PROXY_UPSTREAM": url})
    assert "SECRETPW" not in str(refused.value)
    assert str(refused.value).startswith("upstream.rest_url:")


def test_a_reload_names_every_setting_that_needs_a_restart(tmp_path: Path) -> None:
    old = load_config(None, {})
    path = tmp_path / "new.yaml"
    path.write_text(
        "shutdown_timeout: 5\nupstream: {probe_interval: 10, timeout: 7}\n"
        "access: {client_timeout: 9}\nlimits: {max_connections: 10}\n"
    )
    new = load_config(str(path), {})
    assert settings_needing_restart(old, new) == [
        "shutdown_timeout",
        "upstream.probe_interval",
        "access.client_timeout",
        "limits",
    ]  # upstream.timeout follows a reload: it is not named
    assert settings_needing_restart(old, old) == []
