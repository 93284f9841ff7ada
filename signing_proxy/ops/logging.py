"""Logging: structlog events to stdout, JSON or console, with secrets redacted from every event."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from signing_proxy.config import LoggingConfig
from signing_proxy.ops.console import ConsoleLines

REDACTED = "[REDACTED]"

# Field names that must never carry a value into a log, whatever code put them there.
_SECRET_FIELD_NAMES = frozenset(
    {
        "authorization",
        "x-proxy-token",
        "token",
        "signature",
        "kalshi-access-signature",
        "private_key",
        "passphrase",
        "body",
    }
)


class SecretRedactor:
    """A structlog processor that blanks known secret values wherever they appear.

    The proxy never logs secrets on purpose; this is the second line of defence against
    a future event that forwards a header or an exception message by accident.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Replace the set of secret values (on start and on key or config reload)."""
        # Very short values would blank innocent text; the config refuses short tokens anyway.
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True))

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            if key.lower() in _SECRET_FIELD_NAMES:
                event[key] = REDACTED
            elif isinstance(value, str) and self._secrets:
                event[key] = self._scrub(value)
        return event

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def exception_summary(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """A structlog processor: an exception becomes its type name, one line, no text."""
    # One line per event, never a traceback.
    exc_info = event.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        if isinstance(exc, BaseException):
            # The type only: library messages can quote raw request bytes (aiohttp's parser
            # errors carry the offending header, query or body), which may hold secrets.
            event["exception"] = type(exc).__name__
    return event


def _withhold_arguments(record: logging.LogRecord) -> bool:
    """A logging filter: a library's line keeps its words, never its arguments.

    Libraries fill their messages with what the client sent (aiohttp logs the WebSocket
    subprotocols a client offered, where browser clients often put a token).
    """
    if record.args:
        record.msg = f"{record.msg} (arguments withheld)"
        record.args = None
    return True


def configure_logging(
    config: LoggingConfig, redactor: SecretRedactor, stream: TextIO | None = None
) -> None:
    """Send structlog events, and the stdlib logs of aiohttp, to `stream` as one line each."""
    stream = stream or sys.stdout
    use_json = not stream.isatty() if config.format == "auto" else config.format == "json"
    renderer: Processor = (
        structlog.processors.JSONRenderer() if use_json else ConsoleLines(colors=stream.isatty())
    )
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        exception_summary,
        redactor,
    ]
    level = logging.getLevelNamesMapping()[config.level.upper()]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        # Loggers are configured once per process, so the bound logger can be cached.
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    handler.addFilter(_withhold_arguments)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log is replaced by the proxy's own event per call.
    logging.getLogger("aiohttp.access").disabled = True


# One lazy proxy for the whole package: with caching on, it resolves the configured
# logger once instead of on every call.
_LOGGER: structlog.typing.FilteringBoundLogger = structlog.get_logger("signing_proxy")


def get_logger(**context: Any) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger bound to `context`."""
    return _LOGGER.bind(**context) if context else _LOGGER


def drop_none(fields: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Remove fields whose value is None, so events stay compact."""
    for key in [k for k, v in fields.items() if v is None]:
        del fields[key]
    return fields
