"""The admin API under /proxy/v1/: status, halt, resume and the journal, answered in JSON
by the proxy itself and never forwarded. The guard has already let only admins in."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from signing_proxy import __version__
from signing_proxy.config import Config
from signing_proxy.errors import proxy_error
from signing_proxy.gateway import journal as journal_
from signing_proxy.gateway.gate import HALT_LABEL, Gate
from signing_proxy.gateway.halt import EVERYONE, Caller, CancelReport

PREFIX: Final = "/proxy/v1/"
# Halt and resume bodies are a few keys; anything bigger is not one.
_MAX_BODY: Final = 4096
_MAX_REASON: Final = 200
_MAX_ROWS: Final = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminApi:
    """Serves /proxy/v1/*: the gate's state, and the operator's halt and resume."""

    def __init__(
        self, gate: Gate, current: Callable[[], Config], caller: Callable[[str], Caller]
    ) -> None:
        self._gate = gate
        self._current = current
        self._caller = caller
        self._routes: dict[str, tuple[str, Handler]] = {
            "status": ("GET", self.status),
            "halt": ("POST", self.halt),
            "resume": ("POST", self.resume),
            "journal": ("GET", self.journal),
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one admin call by its path and method."""
        name = request.path[len(PREFIX) :]
        route = self._routes.get(name)
        if route is None:
            return proxy_error(404, "proxy_not_found", f"no admin endpoint {PREFIX}{name[:40]}")
        method, handler = route
        if request.method != method and not (method == "GET" and request.method == "HEAD"):
            return proxy_error(
                405, "proxy_method_not_allowed", f"use {method}", headers={"Allow": method}
            )
        return await handler(request)

    async def status(self, request: web.Request) -> web.Response:
        """GET /proxy/v1/status: halts in force, clients, the journal."""
        config = self._current()
        gate = self._gate
        silence = gate.heartbeats.silence()
        clients = [
            {
                "name": token.name,
                "admin": token.admin,
                "subaccount": token.subaccount,
                "heartbeat": token.heartbeat,
                "silent_seconds": silence.get(token.name),
                "halted": gate.halts.for_client(token.name) is not None,
            }
            for token in config.access.tokens
        ]
        journal = gate.journal
        return web.json_response(
            {
                "version": __version__,
                "environment": config.environment,
                "halted": bool(gate.halts.active()),
                "halts": [_halt_json(h) for h in gate.halts.active()],
                "clients": clients,
                "journal": None
                if journal is None
                else {"path": str(journal.path), "unknown_outcomes": journal.pending()},
            }
        )

    async def halt(self, request: web.Request) -> web.Response:
        """POST /proxy/v1/halt: stop order entry, optionally cancelling resting orders."""
        config = self._current()
        body = await _json_body(request, config.access.client_timeout)
        if isinstance(body, web.Response):
            return body
        client = _client(body, config)
        if isinstance(client, web.Response):
            return client
        cancel = body.get("cancel_orders", False)
        reason = body.get("reason") or "halted by an admin"
        if not isinstance(cancel, bool) or not isinstance(reason, str):
            return _bad("cancel_orders must be true or false, and reason a string")
        reason = "".join(c for c in reason if c.isprintable())[:_MAX_REASON]
        halts = self._gate.halts
        halt = halts.halt(client or EVERYONE, reason)
        persisted = halts.persisted
        self._gate.stats.halts["manual"] += 1
        report = await self._cancel(client, config) if cancel else None
        answer = {
            "halted": True,
            "halt": _halt_json(halt),
            "persisted": persisted,
            "cancel": None if report is None else report.as_json(),
        }
        if not persisted:
            answer["warning"] = "in force now, but not written to the journal: a restart lifts it"
        return web.json_response(answer)

    async def _cancel(self, client: str | None, config: Config) -> CancelReport:
        """Cancel the resting orders of everyone, or of one client (per its subaccount)."""
        gate = self._gate
        caller = self._caller(HALT_LABEL)
        if client is None:
            return await gate.cancel_orders(caller, HALT_LABEL, subaccount=None, only=None)
        token = next(t for t in config.access.tokens if t.name == client)
        only = gate.journal.placed_orders(client) if gate.journal is not None else None
        if only is None and token.subaccount is None:
            return CancelReport(error="no journal: which orders this client placed is unknown")
        if only is not None and not only:
            return CancelReport()
        subaccount = token.subaccount
        return await gate.cancel_orders(caller, HALT_LABEL, subaccount=subaccount, only=only)

    async def resume(self, request: web.Request) -> web.Response:
        """POST /proxy/v1/resume: lift the halts on one client, or all of them."""
        body = await _json_body(request, self._current().access.client_timeout)
        if isinstance(body, web.Response):
            return body
        client = _client(body, self._current())
        if isinstance(client, web.Response):
            return client
        resumed = self._gate.halts.resume(client)
        answer: dict[str, Any] = {"resumed": resumed}
        if not self._gate.halts.persisted:
            answer["warning"] = "lifted now, but not written to the journal: a restart restores it"
        return web.json_response(answer)

    async def journal(self, request: web.Request) -> web.Response:
        """GET /proxy/v1/journal?since=&client=&limit=: the journal's rows, oldest first."""
        journal = self._gate.journal
        if journal is None:
            return proxy_error(409, "proxy_journal_off", "journal.path is null: nothing is kept")
        query = request.query
        try:
            limit = min(int(query.get("limit", "1000")), _MAX_ROWS)
        except ValueError:
            return _bad("limit must be a whole number")
        try:
            rows = read_rows(journal.path, query.get("since"), query.get("client"), max(limit, 1))
        except (sqlite3.Error, OSError) as exc:
            message = f"the journal cannot be read: {exc}"
            return proxy_error(503, "proxy_journal_unavailable", message)
        return web.json_response({"entries": rows})


def read_rows(path: Path, since: str | None, client: str | None, limit: int) -> list[Any]:
    """The journal's rows for the admin API and the CLI."""
    return journal_.read(path, since=since, client=client, limit=limit)


def _halt_json(halt: journal_.Halt) -> dict[str, Any]:
    return {
        "scope": "everyone" if halt.scope == EVERYONE else halt.scope,
        "client": None if halt.scope == EVERYONE else halt.scope,
        "reason": halt.reason,
        "since": halt.since,
        "kind": "dead-man" if halt.automatic else "manual",
    }


async def _json_body(request: web.Request, seconds: float) -> dict[str, Any] | web.Response:
    """The request's JSON object (an empty body is {}), or the 400 for it; the body must
    arrive within `seconds` (access.client_timeout)."""
    too_large = proxy_error(
        413, "proxy_body_too_large", f"admin bodies are under {_MAX_BODY} bytes"
    )
    if request.content_length is not None and request.content_length > _MAX_BODY:
        return too_large
    raw = b""
    try:
        async with asyncio.timeout(seconds):
            while len(raw) <= _MAX_BODY and (chunk := await request.content.read(_MAX_BODY)):
                raw += chunk
    except TimeoutError:
        return proxy_error(408, "proxy_client_timeout", "the admin body arrived too slowly")
    if len(raw) > _MAX_BODY:
        return too_large
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return _bad("the body must be a JSON object")
    return body if isinstance(body, dict) else _bad("the body must be a JSON object")


def _client(body: dict[str, Any], config: Config) -> str | web.Response | None:
    """The client a halt or resume names (None: everyone), which must be a token's name."""
    client = body.get("client")
    if client is None:
        return None
    names = {t.name for t in config.access.tokens}
    if not isinstance(client, str) or client not in names:
        known = ", ".join(sorted(names)) or "none: no tokens are configured"
        return _bad(f"client must be null or a token's name (known: {known})")
    return client


def _bad(message: str) -> web.Response:
    return proxy_error(400, "proxy_invalid_admin_request", message)
