"""Likely mistakes in the key are warned about at start, one line each, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.keys import KEY_ID, KeyMaterial, pkcs8_pem, write_key
from tests.support.processes import base_env, run_cli, start_cli

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes")]

NOT_A_UUID = "my-kalshi-key-id"


@pytest.fixture(scope="module")
def short_key_pem() -> bytes:
    """A 1024-bit RSA key: it loads and signs, but it is not the kind Kalshi issues."""
    return pkcs8_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505 - on purpose


def warnings_of(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    assert all(line.startswith("signing-proxy: warning: ") for line in lines), stderr
    return [line.removeprefix("signing-proxy: warning: ") for line in lines]


def test_key_id_that_is_not_a_uuid(key_file: Path) -> None:
    env = base_env(KALSHI_API_KEY_ID=NOT_A_UUID, KALSHI_PRIVATE_KEY_FILE=str(key_file))
    result = run_cli("check", env=env)
    assert result.returncode == 0
    (warning,) = warnings_of(result.stderr)
    assert warning.startswith("credentials.api_key_id (KALSHI_API_KEY_ID) is not a UUID (16 ")
    assert NOT_A_UUID not in result.stderr  # the value itself is never repeated


def test_uuid_in_capitals_is_a_uuid(key_file: Path) -> None:
    env = base_env(KALSHI_API_KEY_ID=KEY_ID.upper(), KALSHI_PRIVATE_KEY_FILE=str(key_file))
    result = run_cli("check", env=env)
    assert result.returncode == 0 and result.stderr == ""


def test_rsa_key_under_2048_bits(tmp_path: Path, short_key_pem: bytes) -> None:
    key = write_key(tmp_path, short_key_pem)
    result = run_cli(
        "check", env=base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY_FILE=str(key))
    )
    assert result.returncode == 0
    assert warnings_of(result.stderr) == [
        "the RSA key has 1024 bits, under 2048; Kalshi issues 2048-bit keys, so this is "
        "likely not the key Kalshi knows"
    ]


@pytest.mark.parametrize("source", ["file", "variable"])
def test_passphrase_for_a_key_that_is_not_encrypted(
    source: str, key_file: Path, key_material: KeyMaterial
) -> None:
    secret = "a passphrase that is not needed"
    key = (
        {"KALSHI_PRIVATE_KEY_FILE": str(key_file)}
        if source == "file"
        else {"KALSHI_PRIVATE_KEY": key_material.pkcs1.decode()}
    )
    env = base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY_PASSPHRASE=secret, **key)
    result = run_cli("check", env=env)
    assert result.returncode == 0
    (warning,) = warnings_of(result.stderr)
    assert warning.startswith("KALSHI_PRIVATE_KEY_PASSPHRASE is set but the key is not encrypted")
    assert secret not in result.stdout + result.stderr


def test_an_encrypted_key_with_its_passphrase_is_no_warning(
    tmp_path: Path, key_material: KeyMaterial
) -> None:
    key = write_key(tmp_path, key_material.encrypted("the right one"))
    env = base_env(
        KALSHI_API_KEY_ID=KEY_ID,
        KALSHI_PRIVATE_KEY_FILE=str(key),
        KALSHI_PRIVATE_KEY_PASSPHRASE="the right one",
    )
    result = run_cli("check", env=env)
    assert result.returncode == 0 and result.stderr == ""


async def test_run_logs_one_warning_event_each(tmp_path: Path, short_key_pem: bytes) -> None:
    key = write_key(tmp_path, short_key_pem)
    env = base_env(
        KALSHI_API_KEY_ID=NOT_A_UUID,
        KALSHI_PRIVATE_KEY_FILE=str(key),
        SIGNING_PROXY_LOG_FORMAT="json",
        SIGNING_PROXY_JOURNAL="null",
    )
    # Nothing listens on port 9 of loopback: the proxy starts all the same.
    proc = await start_cli("run", "--port", "0", "--upstream", "http://127.0.0.1:9", env=env)
    await proc.wait_for(r'"event": "started"')
    code, out, err = await proc.stop()
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    warned = [e for e in events if e["event"] == "key_warning"]
    assert [e["level"] for e in warned] == ["warning", "warning"]
    assert "is not a UUID" in warned[0]["message"]
    assert "1024 bits" in warned[1]["message"]
    assert NOT_A_UUID not in json.dumps(warned)
