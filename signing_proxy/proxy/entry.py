"""The order-entry gate, before anything is sent: Kalshi's removed V1 writes (refused, or
checked for translation) and the risk rules on the orders a call would place."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from signing_proxy.errors import proxy_error
from signing_proxy.gateway import pinning, risk
from signing_proxy.kalshi.orders import V1Write, v1_order_write
from signing_proxy.proxy import compat
from signing_proxy.proxy.access import CLIENT, policy_forms
from signing_proxy.proxy.calls import CallRecord
from signing_proxy.proxy.live import Snapshot

_NO_STREAMED = "risk rules and pinning read bodies; set access.max_body_bytes above 0"


def _refusal(record: CallRecord, refused: risk.Refused) -> web.Response:
    record.error = refused.code
    return proxy_error(refused.status, refused.code, refused.message)


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


def v1_write(method: str, path: str) -> V1Write | None:
    """The removed V1 order write that any spelling of `path` names, if one does."""
    for form in sorted(policy_forms(path)):
        if (write := v1_order_write(method, form)) is not None:
            return write
    return None


def risk_refusal(
    order_rate: risk.OrderRate,
    snapshot: Snapshot,
    record: CallRecord,
    method: str,
    path: str,
    write: V1Write | None,
    body: aiohttp.StreamReader | bytes | None,
) -> web.Response | None:
    """The answer when an order breaks a risk rule (or cannot be read for one)."""
    refused = judge(order_rate, snapshot, record, (method, path), write, body, count=True)
    return None if refused is None else _refusal(record, refused)


def judge(
    order_rate: risk.OrderRate,
    snapshot: Snapshot,
    record: CallRecord,
    call: tuple[str, str],
    write: V1Write | None,
    body: aiohttp.StreamReader | bytes | None,
    *,
    count: bool,
) -> risk.Refused | None:
    """The first rule the call's orders break; `count` counts them towards the minute."""
    rules = snapshot.risks.get(record.client or "", snapshot.config.risk)
    # A translated V1 write is judged as the V2 order it becomes.
    method, path = call if write is None else (write.v2_method, write.v2_path)
    kind = risk.order_entry(method, path)
    if kind is None or not risk.active(rules):
        return None  # nothing to judge: no body is parsed
    held = body if isinstance(body, bytes) else None
    if write is not None:
        held = compat.v2_body(write, held)
    if isinstance(body, aiohttp.StreamReader):
        return risk.Refused(413, "proxy_body_too_large", _NO_STREAMED)
    found = risk.orders_of(kind, held)
    if isinstance(found, risk.Refused):
        return found
    for order in found:
        broken = risk.check(order, rules)
        if broken is not None:
            return broken
    limit = rules.max_orders_per_minute
    return order_rate.take(record.client or "", len(found), limit, count=count)


DRY_RUN_HEADER = "X-Proxy-Dry-Run"


def dry_run(
    order_rate: risk.OrderRate,
    snapshot: Snapshot,
    record: CallRecord,
    call: tuple[str, str],
    write: V1Write | None,
    body: aiohttp.StreamReader | bytes | None,
) -> web.Response:
    """200 with what the proxy would do with this write, having sent nothing."""
    refused = judge(order_rate, snapshot, record, call, write, body, count=False)
    rules = snapshot.risks.get(record.client or "", snapshot.config.risk)
    checks = [
        {"rule": name, "passed": refused is None or refused.code != f"proxy_risk_{name}"}
        for name in risk.active_rules(rules)
    ]
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
        return _refusal(record, risk.Refused(413, "proxy_body_too_large", _NO_STREAMED))
    result = pinning.pin(method, policy_forms(path), query, body, number)
    if isinstance(result, risk.Refused):
        return _refusal(record, result)
    return (f"{path}?{result.query}" if result.query else path), result.body
