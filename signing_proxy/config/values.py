"""Parsers of single setting values: each turns a YAML, environment or flag value into a
typed one, or raises ConfigError naming the setting (never echoing a secret)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from signing_proxy.errors import ConfigError

# A parser gets the raw value, the name to use in an error (the dotted setting, or the
# environment variable for a setting read only from there) and the process environment
# (a token may name a variable that holds it).
Parser = Callable[[Any, str, Mapping[str, str]], Any]


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value; an empty variable counts as unset."""
    value = env.get(name)
    return value if value else None


def is_utf8(text: str) -> bool:
    """Whether `text` encodes as UTF-8 (os.environ keeps other bytes as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def seconds(allow_zero: bool = False) -> Parser:
    """A finite number of seconds, positive (or zero when `allow_zero`)."""

    def parse(value: Any, name: str, env: Mapping[str, str]) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: must be a number of seconds; got {value!r}") from None
        in_range = number >= 0 if allow_zero else number > 0
        if isinstance(value, bool) or not in_range or number == float("inf"):
            kind = "zero or a positive" if allow_zero else "a positive"
            raise ConfigError(f"{name}: must be {kind} number of seconds; got {value!r}")
        return number

    return parse


def integer(minimum: int, maximum: int | None = None) -> Parser:
    """An integer within [minimum, maximum]."""

    def parse(value: Any, name: str, env: Mapping[str, str]) -> int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: must be an integer; got {value!r}")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{name}: must be an integer; got {value!r}") from None
        if maximum is not None and not minimum <= number <= maximum:
            raise ConfigError(f"{name}: must be between {minimum} and {maximum}; got {number}")
        if number < minimum:
            raise ConfigError(f"{name}: must be at least {minimum}; got {number}")
        return number

    return parse


def boolean(value: Any, name: str, env: Mapping[str, str]) -> bool:
    """true/false, yes/no, 1/0 or on/off, any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{name}: must be true or false; got {value!r}")


def choice(*choices: str) -> Parser:
    """One of `choices`, any case."""

    def parse(value: Any, name: str, env: Mapping[str, str]) -> str:
        text = str(value).strip().lower() if value is not None else ""
        if text not in choices:
            raise ConfigError(f"{name}: must be one of {', '.join(choices)}; got {value!r}")
        return text

    return parse


def optional_text(value: Any, name: str, env: Mapping[str, str]) -> str | None:
    """A string (a number is taken as its digits); null or empty is None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | int):
        raise ConfigError(f"{name}: must be a string; got {type(value).__name__}")
    return str(value).strip()


def utf8_text(value: Any, name: str, env: Mapping[str, str]) -> str | None:
    """A value from the environment that must be UTF-8 text; the message names only `name`."""
    # Bytes that are not UTF-8 only fail later, deep inside key loading; name the
    # variable now (never its value: it is a secret).
    if value is not None and not is_utf8(str(value)):
        raise ConfigError(f"{name}: contains bytes that are not valid UTF-8; set it as UTF-8 text")
    return str(value) if value else None


def string_list(value: Any, name: str) -> list[str]:
    """A list of non-empty strings; from the environment, a comma-separated list."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{name}: must be a list of non-empty strings")
    return [v.strip() for v in value]


def visible_ascii(text: str) -> bool:
    """Whether `text` is printable ASCII without spaces."""
    return all("!" <= c <= "~" for c in text)


def key_id(value: Any, name: str, env: Mapping[str, str]) -> str | None:
    """Kalshi's key id: printable ASCII, since it is sent as a header on every request."""
    text = optional_text(value, name, env)
    # A control character (a pasted CR/LF) would make every request fail, so refuse it
    # here. The message never echoes the value.
    if text is not None and not visible_ascii(text):
        raise ConfigError(
            f"{name} (KALSHI_API_KEY_ID): contains a control, space or "
            "non-ASCII character; a Kalshi key id is printable ASCII such as a UUID"
        )
    return text
