"""Path namespace and dot-segment checks, and header filtering, including property tests."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from signing_proxy.proxy.headers import downstream_response_headers, upstream_request_headers
from signing_proxy.proxy.paths import (
    MEMO_MAX_CHARS,
    Refusal,
    RestTarget,
    Route,
    check_rest_target,
    has_dot_segment,
    route_target,
)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/trade-api/v2/portfolio/balance", "/trade-api/v2/portfolio/balance", None),
        (
            "/trade-api/v2/markets?limit=5&cursor=a%2Fb",
            "/trade-api/v2/markets",
            "limit=5&cursor=a%2Fb",
        ),
        ("/trade-api/v2/series/A%2FB/markets?", "/trade-api/v2/series/A%2FB/markets", ""),
        ("/trade-api/v2/markets/KX...TICKER", "/trade-api/v2/markets/KX...TICKER", None),
    ],
)
def test_forwarded_targets(target: str, path: str, query: str | None) -> None:
    assert check_rest_target(target) == RestTarget(path=path, query=query)


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/healthz2",
        "/trade-api/v2",
        "/trade-api/v1/markets",
        "/TRADE-API/v2/x",
        "http://evil.example/trade-api/v2/x",
        "*",
        "/trade-api/v2x/markets",
    ],
)
def test_outside_namespace_is_404(target: str) -> None:
    result = check_rest_target(target)
    assert isinstance(result, Refusal) and result.status == 404


@pytest.mark.parametrize(
    "target",
    [
        "/trade-api/v2/../v1/x",
        "/trade-api/v2/%2e%2e/v1/x",
        "/trade-api/v2/%2E%2e/v1/x",
        "/trade-api/v2/..%2Fv1/x",
        "/trade-api/v2/.%2e/x",
        "/trade-api/v2/%252e%252e/x",
        "/trade-api/v2/a/./b",
        "/trade-api/v2/..;/x",
        "/trade-api/v2/..%5Cx",
        "/trade-api/v2/..",
        "/trade-api/v2/a b",
        "/trade-api/v2/a\\..\\b",
        "/trade-api/v2/caf\u00e9",
        "/trade-api/v2/x#frag",
        "/trade-api/v2/x\x00",
        "/trade-api/v2/%2525252e%2525252e/x",
        "/trade-api/v2/markets/%25",
        "/trade-api/v2/%c0%ae%c0%ae/x",
        "/trade-api/v2/markets/%ff",
    ],
)
def test_dot_segments_and_raw_specials_are_400(target: str) -> None:
    result = check_rest_target(target)
    assert isinstance(result, Refusal) and result.status == 400


# '?' and '#' end the path: a '..' after them is in the query or fragment, not a segment.
segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="?#"), min_size=0, max_size=12
)


@given(st.lists(segment, min_size=1, max_size=6), st.integers(min_value=0, max_value=2))
def test_any_encoded_dot_segment_is_refused(segments: list[str], rounds: int) -> None:
    """Whatever surrounds it and however often it is percent-encoded, '..' never passes."""
    parts = [*segments[:2], "..", *segments[2:]]
    path = "/".join(parts)
    for _ in range(rounds):
        path = quote(path, safe="/")
    result = check_rest_target("/trade-api/v2/" + path)
    assert isinstance(result, Refusal)


@given(st.text(max_size=80))
def test_forwarded_targets_stay_in_namespace(tail: str) -> None:
    """A target the checker accepts is ASCII, in the namespace, and free of dot segments."""
    result = check_rest_target("/trade-api/v2/" + tail)
    if isinstance(result, RestTarget):
        assert result.path.startswith("/trade-api/v2/")
        assert result.path.isascii()
        assert not has_dot_segment(result.path)


def proxy(pairs: list[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_request_headers_drop_secrets_hops_and_client_addresses() -> None:
    incoming = proxy(
        [
            ("Host", "127.0.0.1:8080"),
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("KALSHI-ACCESS-KEY", "client-key"),
            ("kalshi-access-signature", "client-sig"),
            ("Kalshi-Access-Timestamp", "1"),
            ("KALSHI_ACCESS_SIGNATURE", "client-sig-underscored"),
            ("X_Proxy_Token", "inbound-token-0123456789"),
            ("Authorization", "Bearer inbound-token-0123456789"),
            ("X-Proxy-Token", "inbound-token-0123456789"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("x-forwarded-proto", "http"),
            ("Forwarded", "for=10.0.0.1"),
            ("X-Real-IP", "10.0.0.1"),
            ("Connection", "keep-alive, X-Custom-Hop"),
            ("X-Custom-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic x"),
            ("X-Request-ID", "abc"),
            ("X-Client-Note", "one"),
            ("X-Client-Note", "two"),
        ]
    )
    out = upstream_request_headers(incoming)
    assert list(out.items()) == [
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
        ("X-Client-Note", "one"),
        ("X-Client-Note", "two"),
    ]


def test_response_headers_keep_repeats_and_drop_hops() -> None:
    upstream = proxy(
        [
            ("Content-Type", "application/json"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Encoding", "gzip"),
        ]
    )
    out = downstream_response_headers(upstream)
    assert out.getall("Set-Cookie") == ["a=1", "b=2"]
    assert "X-Hop" not in out and "Transfer-Encoding" not in out and "Connection" not in out
    assert out["Content-Encoding"] == "gzip"


header_name = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)


@given(st.lists(st.tuples(header_name, st.text(max_size=10)), max_size=20))
def test_no_forbidden_header_ever_goes_upstream(pairs: list[tuple[str, str]]) -> None:
    out = upstream_request_headers(proxy(pairs))
    for name in out:
        lower = name.lower()
        assert not lower.startswith(("kalshi-access-", "x-forwarded-"))
        assert lower not in {
            "authorization",
            "x-proxy-token",
            "connection",
            "host",
            "forwarded",
            "x-real-ip",
            "transfer-encoding",
        }


def test_remembered_answers_are_bounded_in_count_and_size() -> None:
    """A flood of made-up targets cannot grow the memos: long ones are never kept, and at
    most 4096 short ones are."""
    memo = route_target.cache_info  # type: ignore[attr-defined]
    before = memo().currsize
    for n in range(200):
        long_target = f"/trade-api/v2/markets/{n}{'x' * MEMO_MAX_CHARS}"
        assert isinstance(route_target(long_target), Route)  # served all the same
    assert memo().currsize == before
    for n in range(5000):
        route_target(f"/trade-api/v2/markets/T-{n}")
    assert memo().currsize == memo().maxsize == 4096
