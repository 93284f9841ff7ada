"""The `journal` section's value: where the SQLite order journal lives, or off."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from signing_proxy.errors import ConfigError

DEFAULT = "default"


def journal_path(value: Any, name: str, env: Mapping[str, str]) -> str | None:
    """`default`, a file path (~ expanded), or null (no journal)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none")):
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}: must be a file path, 'default' or null; got {value!r}")
    text = value.strip()
    return DEFAULT if text == DEFAULT else os.path.expanduser(text)


def resolve(path: str | None, environment: str, env: Mapping[str, str] = os.environ) -> Path | None:
    """The journal file for `path` as configured: `default` is in the user's state directory.

    One file per environment, so a demo proxy's halt never stops a production one."""
    if path is None:
        return None
    if path != DEFAULT:
        return Path(path)
    return state_directory(env) / f"journal-{environment}.sqlite3"


def state_directory(env: Mapping[str, str]) -> Path:
    """Where this user's programs keep state: XDG on Linux, the platform's place elsewhere."""
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "signing-proxy"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "signing-proxy"
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "signing-proxy"
