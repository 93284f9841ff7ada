"""Console log lines for a person at a terminal: a call reads `HH:MM:SS status METHOD path ms
client`, then its other fields in the order they were logged; any other event reads
`HH:MM:SS level event`, then its fields. (JSON lines stay as they are, for machines.)"""

from __future__ import annotations

import json
from typing import Any

from structlog.typing import EventDict, WrappedLogger

# What a person scans a call's line for, first; everything else follows.
_LEAD = ("status", "method", "path", "total_ms", "client")
_RESET = "\033[0m"
_STATUS_COLORS = {2: "\033[32m", 3: "\033[36m", 4: "\033[33m", 5: "\033[31m"}
_LEVEL_COLORS = {"warning": "\033[33m", "error": "\033[31m", "critical": "\033[31m"}


class ConsoleLines:
    """A structlog renderer: one short line per event, the call's essentials first."""

    def __init__(self, colors: bool = False) -> None:
        self._colors = colors

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        fields = dict(event_dict)
        clock = _clock(fields.pop("timestamp", None))
        level = str(fields.pop("level", method))
        event = str(fields.pop("event", ""))
        if event == "request" and all(name in fields for name in _LEAD):
            head = self._call_head(fields)
            if level != "info":
                fields["level"] = level  # a call with an error is a warning: said at the end
        else:
            head = f"{self._paint(f'{level:<7}', _LEVEL_COLORS.get(level))} {event}"
        rest = " ".join(f"{key}={_shown(value)}" for key, value in fields.items())
        return f"{clock} {head}" + (f" {rest}" if rest else "")

    def _call_head(self, fields: dict[str, Any]) -> str:
        status, method, path, total_ms, client = (fields.pop(name) for name in _LEAD)
        painted = self._paint(str(status), _STATUS_COLORS.get(_status_class(status)))
        return f"{painted} {method} {path} {_ms(total_ms)} {client}"

    def _paint(self, text: str, color: str | None) -> str:
        return f"{color}{text}{_RESET}" if self._colors and color else text


def _clock(timestamp: Any) -> str:
    """HH:MM:SS of an ISO timestamp (the log's time zone, UTC), or the text as it is."""
    text = str(timestamp or "")
    return text[11:19] if len(text) >= 19 and text[10] == "T" else text or "--:--:--"


def _status_class(status: Any) -> int:
    return status // 100 if isinstance(status, int) else 0


def _ms(value: Any) -> str:
    return f"{value:.1f}ms" if isinstance(value, int | float) else f"{value}ms"


def _shown(value: Any) -> str:
    """A value as one token: plain when it has no space, quote or '=', else JSON-quoted."""
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "\"'=" for c in value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    return str(value)
