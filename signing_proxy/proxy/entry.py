"""The order-entry gate, before anything is sent: Kalshi's removed V1 writes (refused, or
checked for translation), subaccount pinning, and the trading gateway (halts, risk rules,
dry runs, the journal) for the calls that trade or cancel."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from signing_proxy.config.risk import RiskConfig
from signing_proxy.errors import proxy_error
from signing_proxy.gateway import orders, pinning, risk
from signing_proxy.gateway.gate import CallInfo, Gate, Ticket
from signing_proxy.gateway.halt import HALTED_CODE
from signing_proxy.gateway.journal import Halt
from signing_proxy.gateway.orders import JUDGED_KINDS, OrderCall, OrderFields
from signing_proxy.gateway.risk import Refused
from signing_proxy.kalshi.orders import V1Write, v1_order_write
from signing_proxy.proxy import compat
from signing_proxy.proxy.access import CLIENT, policy_forms
from signing_proxy.proxy.calls import CALL_RECORD, CallRecord
from signing_proxy.proxy.live import Snapshot
from signing_proxy.proxy.paths import remembered

_NO_STREAMED = "risk rules and pinning read bodies; set access.max_body_bytes above 0"
_TOO_LARGE = "proxy_body_too_large"


def v1_refusal(
    request: web.Request, snapshot: Snapshot, write: V1Write, path: str
) -> tuple[str, web.Response] | None:
    """Why a removed V1 write is not carried out (its code and answer), or None to translate."""
    method = request.method
    if snapshot.config.compat.v1_orders == "refuse":
        return compat.REMOVED_CODE, compat.refusal(write, method, path)
    # Translated only when spelled plainly: the order id then goes into the V2 path as sent,
    # never a decoded form of it that would name another route or order.
    if v1_order_write(method, path) is None or not compat.plain_id(write.order_id):
        message = "spell the V1 route plainly (no encoding) to have it translated"
        return compat.TRANSLATION_CODE, proxy_error(400, compat.TRANSLATION_CODE, message)
    # The policy was checked on the V1 route; what is sent is the V2 route: check that too.
    denied = snapshot.access.authorize(request[CLIENT], write.v2_method, write.v2_path)
    if denied is not None:
        return denied.code, proxy_error(denied.status, denied.code, denied.message)
    return None


@remembered
def v1_write(method: str, path: str) -> V1Write | None:
    """The removed V1 order write that any spelling of `path` names, if one does."""
    for form in sorted(policy_forms(path)):
        if (write := v1_order_write(method, form)) is not None:
            return write
    return None


# Set by the guard on the first call of a client whose dead-man's switch had fired: the
# halt it lifted, so that this call, if it places an order, is still refused.
LIFTED = web.RequestKey("deadman_lifted", Halt)
DRY_RUN_HEADER = "X-Proxy-Dry-Run"
# Only these say "not a dry run"; any other value (true, yes, 2...) is one: a preview that
# was meant must never become a real order.
_NOT_DRY = frozenset({"0", "false", "no", "off"})


def wants_dry_run(request: web.Request) -> bool:
    """Whether any copy of X-Proxy-Dry-Run asks for a preview."""
    values = request.headers.getall(DRY_RUN_HEADER, [])
    return any(value.strip().lower() not in _NOT_DRY for value in values)


@remembered
def order_call(method: str, path: str, write: V1Write | None) -> OrderCall | None:
    """The order call this is, in any spelling; a translated V1 write is its V2 route."""
    if write is not None:
        method, path = write.v2_method, write.v2_path
    return orders.classify(method, policy_forms(path))


def call_info(request: web.Request, record: CallRecord) -> CallInfo:
    """Who sent which call, as the journal names it (never the query or the body)."""
    # The raw path: checked to be plain ASCII by the guard, and never the query.
    path = request.raw_path.partition("?")[0]
    return CallInfo(record.request_id, record.client, request.method, path)


def admit(
    gate: Gate,
    snapshot: Snapshot,
    request: web.Request,
    call: OrderCall,
    write: V1Write | None,
    body: aiohttp.StreamReader | bytes | None,
) -> Ticket | web.Response:
    """Let an order call through (its ticket), or answer it: refused, or a dry run."""
    record = request[CALL_RECORD]
    rules = snapshot.risks.get(record.client or "", snapshot.config.risk)
    judged = call.kind in JUDGED_KINDS and risk.active(rules)
    found: list[OrderFields] | None = []
    if call.has_body_orders and (judged or gate.journal is not None):
        if isinstance(body, aiohttp.StreamReader):
            if judged:
                return _refusal(record, gate, request, call, Refused(413, _TOO_LARGE, _NO_STREAMED))
        else:
            # A translated V1 write is judged and journaled as the V2 order it becomes.
            found = orders.read_orders(call.kind, compat.v2_body(write, body) if write else body)
    dry = wants_dry_run(request)
    lifted = request.get(LIFTED)
    verdict = gate.judge(rules, record.client, call, found, commit=not dry, lifted=lifted)
    if dry:
        code = verdict.code if isinstance(verdict, Refused) else None
        gate.refused(call_info(request, record), call, found, code, dry_run=True)
        return dry_run(record, rules, verdict if isinstance(verdict, Refused) else None, call)
    if isinstance(verdict, Refused):
        return _refusal(record, gate, request, call, verdict, found)
    return verdict


def _refusal(
    record: CallRecord,
    gate: Gate,
    request: web.Request,
    call: OrderCall,
    refused: Refused,
    found: list[OrderFields] | None = None,
) -> web.Response:
    gate.refused(call_info(request, record), call, found, refused.code)
    record.error = refused.code
    return proxy_error(refused.status, refused.code, refused.message)


def dry_run(
    record: CallRecord, rules: RiskConfig, refused: Refused | None, call: OrderCall | None
) -> web.Response:
    """200 with what the proxy would do with this write, having sent nothing."""
    names = (["halt"] if call is not None and call.is_entry else []) + (
        list(risk.active_rules(rules)) if call is not None and call.kind in JUDGED_KINDS else []
    )
    failed = None if refused is None else refused.code
    checks = [{"rule": name, "passed": failed != _code_of(name)} for name in names]
    answer: dict[str, object] = {"dry_run": True, "checks": checks}
    if refused is None:
        answer["decision"] = "would_forward"
    else:
        answer["decision"] = "would_refuse"
        answer["error"] = {
            "code": refused.code,
            "message": refused.message,
            "status": refused.status,
        }
    record.error = "proxy_dry_run"
    return web.json_response(answer)


def _code_of(check: str) -> str:
    return HALTED_CODE if check == "halt" else f"proxy_risk_{check}"


async def journaled(
    gate: Gate,
    ticket: Ticket,
    info: CallInfo,
    record: CallRecord,
    send: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Send an admitted order call with its intent journaled before and its outcome after.

    An order that cannot be journaled is not sent (503): the journal is the record of what
    was sent and what the dead-man's switch cancels. A cancel is sent all the same."""
    if not gate.begin(info, ticket) and ticket.call.is_entry:
        gate.daily.give_back(ticket.client, ticket.day, ticket.reserved)
        record.error = _NO_JOURNAL
        message = "the order journal cannot be written (see the proxy's log); nothing was sent"
        return proxy_error(503, _NO_JOURNAL, message, headers={"Retry-After": "1"})
    # Its rows go to SQLite with the answer, in one write after the answer is relayed; a
    # call still in flight after PENDING_AFTER is shown as pending before that (with no
    # journal there are no rows, and no timer is set).
    loop = asyncio.get_running_loop()
    pending = None
    if ticket.intent is not None:
        pending = loop.call_later(PENDING_AFTER, gate.record, ticket)
    completed = False
    try:
        response = await send()
        body = response.body if isinstance(response, web.Response) else None
        # A 5xx (Kalshi's edge, or the proxy's timeout) may come after the order reached
        # the book: its outcome is unknown, so it stays counted. Only failures that mean
        # nothing was sent (no connection, TLS) are known.
        status = response.status
        known = status < 500 or (record.error or "").startswith(_NOT_SENT)
        # Written once the answer is on its way: the outcome's write (~0.05 ms) is not the
        # order's latency. (The intent above is written before sending, as it must be.)
        outcome = functools.partial(
            gate.complete, ticket, status, _bytes(body), record.error, known=known
        )
        loop.call_soon(outcome)
        completed = True
        return response
    finally:
        if pending is not None:
            pending.cancel()
        if not completed:
            # Cut (the client left, or the proxy is stopping): whether it reached Kalshi
            # is unknown, and the journal says so.
            gate.complete(ticket, 499, None, record.error or "cut", known=False)


_NO_JOURNAL = "proxy_journal_unavailable"
# Seconds after which an order call still in flight gets its pending rows in SQLite, where
# `signing-proxy journal` and the admin API read them (Kalshi answers most within this).
PENDING_AFTER = 0.05
# Failures that mean the call never reached Kalshi.
_NOT_SENT = (
    "proxy_upstream_connect_timeout",
    "proxy_upstream_unreachable",
    "proxy_upstream_tls_error",
)


def _bytes(body: object) -> bytes | None:
    return body if isinstance(body, bytes) else None


def pinned(
    snapshot: Snapshot,
    record: CallRecord,
    method: str,
    raw_target: str,
    body: aiohttp.StreamReader | bytes | None,
) -> tuple[str, aiohttp.StreamReader | bytes | None] | web.Response:
    """The target and body to send for a client pinned to a subaccount (others unchanged)."""
    number = snapshot.pins.get(record.client or "")
    if number is None:
        return raw_target, body
    path, _, query = raw_target.partition("?")
    if isinstance(body, aiohttp.StreamReader):
        record.error = _TOO_LARGE
        return proxy_error(413, _TOO_LARGE, _NO_STREAMED)
    result = pinning.pin(method, policy_forms(path), query, body, number)
    if isinstance(result, Refused):
        record.error = result.code
        return proxy_error(result.status, result.code, result.message)
    return (f"{path}?{result.query}" if result.query else path), result.body
