"""`signing-proxy init`, run as the real command: the files it writes, their modes, and
that what it writes is a configuration and a key the proxy accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.keys import KEY_ID
from tests.support.processes import CLI, base_env, run_cli

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "config.example.yaml"


def init_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`signing-proxy init *args` run in `folder`."""
    return subprocess.run(
        [CLI, "init", *args], cwd=folder, env=base_env(), capture_output=True, text=True, timeout=60
    )


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_init_writes_the_starter_config_with_mode_0600(tmp_path: Path) -> None:
    result = init_in(tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "signing-proxy.yaml"
    assert mode_of(written) == 0o600
    assert written.read_text() == EXAMPLE.read_text()
    assert "wrote signing-proxy.yaml (mode 0600)" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing-proxy.yaml"]


def test_the_starter_config_loads_with_check(tmp_path: Path, key_file: Path) -> None:
    config = tmp_path / "proxy.yaml"
    assert init_in(tmp_path, str(config)).returncode == 0
    env = base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY_FILE=str(key_file))
    result = run_cli("check", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_init_refuses_to_replace_a_file(tmp_path: Path) -> None:
    config = tmp_path / "signing-proxy.yaml"
    config.write_text("environment: production\n")
    result = init_in(tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "signing-proxy: init: 'signing-proxy.yaml' exists; pass --force to replace it"
    ]
    assert config.read_text() == "environment: production\n"


def test_init_force_replaces_the_file_and_tightens_its_mode(tmp_path: Path) -> None:
    config = tmp_path / "signing-proxy.yaml"
    config.write_text("environment: production\n")
    config.chmod(0o644)
    result = init_in(tmp_path, "--force")
    assert result.returncode == 0, result.stderr
    assert config.read_text() == EXAMPLE.read_text()
    assert mode_of(config) == 0o600


def test_init_in_a_missing_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = init_in(tmp_path, str(tmp_path / "nope" / "proxy.yaml"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_new_key_writes_a_key_pair_whose_halves_match(tmp_path: Path) -> None:
    result = init_in(tmp_path, "--new-key")
    assert result.returncode == 0, result.stderr
    private_path, public_path = tmp_path / "kalshi-key.pem", tmp_path / "kalshi-key.pub.pem"
    assert mode_of(private_path) == 0o600
    assert mode_of(public_path) == 0o644
    assert mode_of(tmp_path / "signing-proxy.yaml") == 0o600
    private = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    public = serialization.load_pem_public_key(public_path.read_bytes())
    assert isinstance(private, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey)
    assert private.key_size == 2048
    assert private.public_key().public_numbers() == public.public_numbers()
    assert "upload the public key" in result.stdout


def test_new_key_config_names_the_key_and_check_accepts_both(tmp_path: Path) -> None:
    assert init_in(tmp_path, "--new-key").returncode == 0
    config = tmp_path / "signing-proxy.yaml"
    assert f"private_key_file: {tmp_path / 'kalshi-key.pem'}" in config.read_text()
    # Only the key id, which Kalshi gives when the public key is uploaded, is missing.
    result = run_cli("check", "--config", str(config), env=base_env(KALSHI_API_KEY_ID=KEY_ID))
    assert result.returncode == 0, result.stderr
    assert "RSA 2048 bits" in result.stdout


def test_new_key_refuses_to_replace_a_key_and_writes_nothing(tmp_path: Path) -> None:
    key = tmp_path / "kalshi-key.pem"
    key.write_text("an existing key")
    result = init_in(tmp_path, "--new-key")
    assert result.returncode == 2
    assert "kalshi-key.pem' exists; pass --force" in result.stderr
    assert key.read_text() == "an existing key"
    assert not (tmp_path / "signing-proxy.yaml").exists()


def test_key_file_chooses_where_the_pair_goes(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    result = init_in(tmp_path, "--new-key", "--key-file", "keys/demo.pem")
    assert result.returncode == 0, result.stderr
    assert mode_of(tmp_path / "keys" / "demo.pem") == 0o600
    assert (tmp_path / "keys" / "demo.pub.pem").is_file()


def test_print_shows_the_example_and_writes_nothing(tmp_path: Path) -> None:
    result = init_in(tmp_path, "--print")
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXAMPLE.read_text()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args", [["--print", "--new-key"], ["--key-file", "k.pem"]], ids=["print-new-key", "key-file"]
)
def test_contradictory_flags_are_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = init_in(tmp_path, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_key_path_that_yaml_must_quote_still_loads(tmp_path: Path) -> None:
    folder = tmp_path / "my keys: demo #1"
    folder.mkdir()
    result = init_in(folder, "--new-key")
    assert result.returncode == 0, result.stderr
    config = folder / "signing-proxy.yaml"
    env = base_env(KALSHI_API_KEY_ID=KEY_ID)
    checked = run_cli("check", "--config", str(config), env=env)
    assert checked.returncode == 0, checked.stderr
