"""`signing-proxy init`: a commented starter config and, optionally, a fresh key pair for
Kalshi's "bring your own public key" flow, written with safe file modes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signing_proxy.config.describe import starter_yaml
from signing_proxy.errors import ConfigError

DEFAULT_CONFIG = "signing-proxy.yaml"
DEFAULT_KEY = "kalshi-key.pem"
KEY_BITS = 2048  # what Kalshi issues
PRIVATE_MODE = 0o600  # the config may hold inline tokens; the key is the key
PUBLIC_MODE = 0o644


@dataclass(frozen=True, slots=True)
class InitRequest:
    """What `init` was asked to write."""

    config: Path
    new_key: bool = False
    key_file: Path | None = None  # default: kalshi-key.pem beside the config
    force: bool = False


@dataclass(frozen=True, slots=True)
class Written:
    """One file `init` wrote, and what to tell the user about it."""

    path: Path
    mode: int
    what: str


def example_text() -> str:
    """The starter config with every default: what `init --print` shows."""
    return starter_yaml()


def public_key_path(private: Path) -> Path:
    """Where the public half of `private` goes: kalshi-key.pem -> kalshi-key.pub.pem."""
    return private.with_name(f"{private.stem}.pub{private.suffix or '.pem'}")


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh RSA-2048 key: (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def initialise(request: InitRequest) -> list[Written]:
    """Write the starter config (and the key pair), refusing to replace files unless forced."""
    files = [Written(request.config, PRIVATE_MODE, "the configuration, every key shown")]
    values: dict[str, str] = {}
    if request.new_key:
        private_path = request.key_file or request.config.parent / DEFAULT_KEY
        files += [
            Written(private_path, PRIVATE_MODE, "the private key; it never leaves this machine"),
            Written(public_key_path(private_path), PUBLIC_MODE, "the public key, for Kalshi"),
        ]
        values["credentials.private_key_file"] = str(private_path.absolute())
    _check_targets([file.path for file in files], request.force)
    contents = [starter_yaml(values).encode()]
    if request.new_key:
        contents += new_key_pair()
    for file, content in zip(files, contents, strict=True):
        _write(file.path, content, file.mode)
    return files


def _check_targets(paths: list[Path], force: bool) -> None:
    """Every target can be written: its folder exists, and it does not (unless forced)."""
    if len(set(paths)) != len(paths):
        raise ConfigError("init: the key file and the config file must be different files")
    for path in paths:
        if not path.parent.is_dir():
            raise ConfigError(f"init: folder {str(path.parent)!r} does not exist")
        if path.is_dir():
            raise ConfigError(f"init: {str(path)!r} is a folder")
        if path.exists() and not force:
            raise ConfigError(f"init: {str(path)!r} exists; pass --force to replace it")


def _write(path: Path, content: bytes, mode: int) -> None:
    """Write `content` to `path` whole or not at all, created with `mode` from the start."""
    try:
        # mkstemp creates the file 0600, so a private key is never readable by others,
        # not even for a moment; os.replace swaps it in whole.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"init: cannot write in {str(path.parent)!r}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise ConfigError(f"init: cannot write {str(path)!r}: {exc.strerror}") from None


def report(written: list[Written], config: Path) -> list[str]:
    """What to print after `init`: each file, then the next steps."""
    lines = [f"wrote {w.path} (mode {w.mode:04o}): {w.what}" for w in written]
    if len(written) > 1:
        lines += [
            "next: upload the public key to Kalshi (POST /trade-api/v2/api_keys with",
            "  {name, public_key}, open to Premier and Market Maker API usage levels; other",
            "  accounts create a key in Kalshi's web page and use that key file instead);",
            f"  then: KALSHI_API_KEY_ID=<key id> signing-proxy check --config {config}",
        ]
    else:
        lines.append(f"next: set your key, then: signing-proxy check --config {config}")
    return lines
