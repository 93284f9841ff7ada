"""A deny rule written for the V2 route does not hold for the V1 spelling that translate turns into it."""

from __future__ import annotations

import pytest

from tests.proxy.attacks.helpers import V1, V2, cfg, create, kalshi_v2

pytestmark = pytest.mark.usefixtures("clean_env")
TOKEN = "abcdefghijklmnopq"


@pytest.mark.parametrize(
    ("rule", "method", "path", "body"),
    [
        (f"DELETE {V2}/batched*", "DELETE", f"{V1}/batched", {"ids": ["a", "b"]}),
        (f"POST {V2}*", "POST", V1, create()),
        (f"DELETE {V2}/*", "DELETE", f"{V1}/abc", None),
    ],
)
async def test_v2_deny_rule_holds_for_translated_v1(
    make_upstream, make_proxy, tmp_path, rule, method, path, body
) -> None:
    upstream = await make_upstream(kalshi_v2())
    text = (
        "compat: {v1_orders: translate}\n"
        f"access:\n  tokens:\n    - {{name: bot, token: {TOKEN}, deny: ['{rule}']}}\n"
    )
    client = await make_proxy(upstream.url, config_file=cfg(tmp_path, text))
    # Control: the V2 route itself is refused.
    direct = await client.request(
        method, path.replace(V1, V2), json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert direct.status == 403
    reply = await client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    print(rule, reply.status, [(s.method, s.raw_path) for s in upstream.seen])
    assert not [s for s in upstream.seen if s.method != "GET"], "denied V2 write performed via V1"
