"""Inbound access: bearer tokens compared in constant time, read-only mode, allow/deny rules."""

from __future__ import annotations

import fnmatch
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from signing_proxy.config import AccessConfig, RuleConfig, TokenConfig
from signing_proxy.proxy.paths import Refusal, remembered

SAFE_METHODS = frozenset({"GET", "HEAD"})
_MISSING_TOKEN = Refusal(
    401,
    "proxy_unauthorized",
    "an inbound token is required: send Authorization: Bearer <token> or X-Proxy-Token",
)
_WRONG_TOKEN = Refusal(401, "proxy_unauthorized", "the inbound token is not valid")


@dataclass(frozen=True, slots=True)
class _Rule:
    source: RuleConfig
    regex: re.Pattern[str]

    def matches(self, method: str, path: str) -> bool:
        # A GET rule covers HEAD: HEAD is GET without the body.
        method_ok = self.source.method in ("*", method) or (
            method == "HEAD" and self.source.method == "GET"
        )
        return method_ok and self.regex.fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated inbound token: its name (logged) and its policy (never its value)."""

    name: str
    read_only: bool
    allow: tuple[_Rule, ...]
    deny: tuple[_Rule, ...]
    admin: bool = False


def _compile(rule: RuleConfig, flags: int = 0) -> _Rule:
    # fnmatch's '*' also crosses '/', so 'GET /trade-api/v2/markets*' covers sub-paths.
    return _Rule(source=rule, regex=re.compile(fnmatch.translate(rule.pattern), flags))


def _client(token: TokenConfig) -> Client:
    return Client(
        name=token.name,
        read_only=token.read_only,
        allow=tuple(_compile(r) for r in token.allow),
        # A deny rule also holds for other letter cases: refusing more is the safe side.
        deny=tuple(_compile(r, re.IGNORECASE) for r in token.deny),
        admin=token.admin,
    )


# Rounds of percent-decoding a rule sees through (%256F is %6F is o).
_DECODE_ROUNDS = 3


@remembered  # asked for up to three times a request (policy, V1 check, batch billing)
def policy_forms(raw_path: str) -> frozenset[str]:
    """Every spelling a server might route `raw_path` as; rules must hold for each.

    Deny matches if any form matches; allow only if every form does. Kalshi decodes once,
    but a rule should not depend on that: decoded forms, '//' folded, ';params' dropped
    and a trailing '/' dropped are all checked.
    """
    forms = {raw_path}
    decoded = raw_path
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(decoded, errors="surrogateescape")
        forms.add(decoded)
    return frozenset(forms | {_plain(form) for form in forms})


def _plain(path: str) -> str:
    # Backslashes read as slashes and trailing white space dropped, as some servers do.
    path = path.replace("\\", "/").rstrip(" \t\r\n")
    segments = [segment.split(";", 1)[0] for segment in path.split("/")]
    return "/" + "/".join(segment for segment in segments if segment)


# The client the guard authenticated (None when no tokens are configured), for checks that
# only the handler can make: a translated V1 write is checked again on its V2 route.
CLIENT: web.RequestKey[Client | None] = web.RequestKey("client")


class AccessPolicy:
    """Decides, before anything is signed, whether a request may go to Kalshi."""

    def __init__(self, config: AccessConfig) -> None:
        self._read_only = config.read_only
        self._tokens = tuple((t.token.encode(), _client(t)) for t in config.tokens)

    def authenticate(self, headers: Mapping[str, str]) -> Client | Refusal | None:
        """The client behind the presented token; None when no tokens are configured."""
        if not self._tokens:
            return None
        presented = presented_token(headers)
        if presented is None:
            return _MISSING_TOKEN
        # Undecodable bytes in the header stay bytes: compared, never an error.
        candidate = presented.encode("utf-8", "surrogateescape")
        found: Client | None = None
        # Compare against every token without stopping early, so timing reveals nothing.
        for secret, client in self._tokens:
            if hmac.compare_digest(candidate, secret):
                found = client
        return found or _WRONG_TOKEN

    @property
    def has_tokens(self) -> bool:
        """Whether inbound tokens are configured (then every route but the probes needs one)."""
        return bool(self._tokens)

    def authorize(self, client: Client | None, method: str, raw_path: str) -> Refusal | None:
        """A 403 naming the rule that refuses `method` on `raw_path`, or None to let it pass."""
        if self._read_only and method not in SAFE_METHODS:
            return _forbidden(f"access.read_only allows only GET and HEAD, not {method}")
        if client is None:
            return None
        if client.read_only and method not in SAFE_METHODS:
            return _forbidden(f"token {client.name!r} is read_only; {method} is not allowed")
        forms = policy_forms(raw_path)
        for rule in client.deny:
            if any(rule.matches(method, form) for form in forms):
                return _forbidden(f"token {client.name!r} denies '{rule.source}'")
        if client.allow and not any(
            all(rule.matches(method, form) for form in forms) for rule in client.allow
        ):
            return _forbidden(f"token {client.name!r} allows no rule matching {method} here")
        return None


def _forbidden(message: str) -> Refusal:
    return Refusal(403, "proxy_forbidden", f"refused by policy: {message}")


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The inbound token from `Authorization: Bearer` or `X-Proxy-Token`, if any."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    token = headers.get("X-Proxy-Token")
    return token.strip() if token and token.strip() else None
