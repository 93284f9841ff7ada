"""The container gets the time the proxy's drain needs, and its key the right mode: the
compose example and the Dockerfile are checked against the config model and the server's
drain, not against numbers written twice."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from signing_proxy.config import Config
from signing_proxy.ops.server import CUT_GRACE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "examples" / "docker-compose.yml"
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}


def duration(text: str) -> float:
    """Seconds in a compose duration such as '20s', '1m30s' or '500ms'."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def proxy_service() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]["signing-proxy"]


def longest_stop() -> float:
    """The longest a stop takes by default: the drain, then the cut's own grace."""
    return Config().shutdown_timeout + CUT_GRACE


def test_compose_stop_grace_outlasts_the_drain() -> None:
    grace = duration(str(proxy_service()["stop_grace_period"]))
    assert grace > longest_stop(), (grace, longest_stop())


def test_dockerfiles_docker_run_line_gives_the_drain_its_time() -> None:
    header = (ROOT / "Dockerfile").read_text()
    (seconds,) = re.findall(r"docker run .*--stop-timeout (\d+)", header)
    assert int(seconds) > longest_stop()


def test_duration_reading() -> None:
    assert [duration(t) for t in ("20s", "1m30s", "500ms")] == [20.0, 90.0, 0.5]


def test_the_key_is_a_secret_with_no_insecure_opt_out() -> None:
    service = proxy_service()
    assert "kalshi_private_key" in service["secrets"]
    assert service["environment"]["KALSHI_PRIVATE_KEY_FILE"] == "/run/secrets/kalshi_private_key"
    mounted = {volume.split(":")[1] for volume in service["volumes"]}
    config = next(v.split(":")[0] for v in service["volumes"] if ":/config/" in v)
    assert "/config/signing-proxy.yaml" in mounted
    settings = yaml.safe_load((COMPOSE.parent / config).read_text())
    assert "allow_insecure_key_file" not in str(settings)
    assert "ALLOW_INSECURE" not in str(service["environment"])
    # The compose file says how to give the key the right owner and mode.
    assert "chown 10001:10001" in COMPOSE.read_text() and "0400" in COMPOSE.read_text()


def test_the_image_is_built_from_the_official_python_image_by_default() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.12-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS build$", dockerfile, re.MULTILINE)
    # The smoke builds offline on its own Debian base, so it must pass the argument.
    smoke = (ROOT / "scripts" / "container-smoke.sh").read_text()
    assert 'build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")' in smoke
    assert 'podman build --format docker --network=host "${build_args[@]}"' in smoke
