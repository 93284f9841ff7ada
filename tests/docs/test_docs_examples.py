"""Every shell example of the docs is run, and its shown output checked.

Shell examples are files in docs/snippets/ (NAME.sh, and NAME.out for the output a page
shows), included into pages with `--8<-- "snippets/NAME.sh"`. Each is run as bash with
`set -euo pipefail`, on the real `signing-proxy` command: against a fresh
`signing-proxy sandbox` (SANDBOX), or against `signing-proxy run` with the sandbox's
exchange standing in for Kalshi (the tests below that name them). Before a run,
`127.0.0.1:8080` becomes the address of what the test started and placeholders such as
`your-key-id` become real values; the output is mapped back before it is compared. In
an .out file `...` matches anything. What cannot run here is in STATIC, with the reason,
and is checked for syntax and for `signing-proxy` arguments the CLI accepts.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.docs.conftest import Sandbox
from tests.support.processes import CLI, Background, base_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
SHOWN = "127.0.0.1:8080"
SHELL = {"sh", "bash", "shell", "console", "zsh"}
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)

# Run against a fresh sandbox, in an empty folder (own-key writes files) or the
# repository (ws-client runs examples/).
SANDBOX = {
    "first-calls.sh": "tmp",
    "order-filled.sh": "tmp",
    "order-rest-cancel.sh": "tmp",
    "own-key.sh": "tmp",
    "proxy-errors.sh": "tmp",
    "dry-run.sh": "tmp",
    "metrics.sh": "tmp",
    "ws-client.sh": "root",
}
# Run by the tests named after them below.
DEDICATED = {
    "sandbox.sh",
    "real-key.sh",
    "run.sh",
    "balance.sh",
    "token-call.sh",
    "gateway-run.sh",
    "gateway-refusal.sh",
    "gateway-ops.sh",
    "diagnose-401.sh",
    "pem-env.sh",
    "side-by-side.sh",
}
STATIC = {
    "install-venv.sh": ".ci/run makes the test environment this way",
    "install-tool.sh": "installs from the package index; CI's packaging step tests it",
    "systemd-install.sh": "needs root and systemd (the unit is checked by test_systemd_unit)",
    "launchd-install.sh": "needs macOS (the plist is checked by test_launchd_plist)",
    "docker-run.sh": "needs a container engine (scripts/container-smoke.sh runs the image)",
    "compose.sh": "needs a container engine (scripts/container-smoke.sh runs the compose file)",
    "upgrade.sh": "upgrades an installed tool from the package index, and restarts a service",
    "clock.sh": "calls Kalshi's demo exchange",
    "bench.sh": "takes a minute of both cores (bench/ has its own tests)",
    "develop.sh": "is CI itself (.ci/run)",
}


def fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    """(language, body) of each fenced block of a Markdown page."""
    for match in FENCE.finditer(text):
        yield match.group(1), match.group(2)


def included(lang: set[str] | None = None) -> dict[str, list[str]]:
    """Each file a docs page includes (in blocks of `lang`, or any), with the pages."""
    found: dict[str, list[str]] = {}
    for page in sorted(DOCS.glob("*.md")):
        for block_lang, body in fenced_blocks(page.read_text()):
            if lang is not None and block_lang not in lang:
                continue
            for line in body.splitlines():
                if match := INCLUDE.match(line.strip()):
                    found.setdefault(match.group(1), []).append(page.name)
    return found


def shown_output(name: str) -> str:
    """The output a page shows for snippet `name`."""
    return (SNIPPETS / name.replace(".sh", ".out")).read_text()


def assert_shown(name: str, output: str, back: Mapping[str, str] | None = None) -> None:
    """`output` (with real values mapped back to the shown ones) has the shown shape."""
    for real, shown in (back or {}).items():
        output = output.replace(real, shown)
    parts = [re.escape(part) for part in shown_output(name).strip().split("...")]
    if re.fullmatch(".*?".join(parts), output.strip(), re.DOTALL):
        return
    # Name the first piece of the shown output that the real one lacks (or its end).
    text, pieces = output.strip(), shown_output(name).strip().split("...")
    count = next(
        (n for n in range(1, len(parts) + 1) if not re.match(".*?".join(parts[:n]), text, re.S)),
        len(parts),
    )
    raise AssertionError(
        f"{name}: the output differs from {name.replace('.sh', '.out')} at "
        f"{pieces[count - 1][:200]!r}; the output:\n{output}"
    )


def snippet_env(**extra: str) -> dict[str, str]:
    """The environment of a snippet: the test's CLI first on PATH, nothing of the user's."""
    env = base_env(**extra)
    env["PATH"] = f"{Path(CLI).parent}:{env.get('PATH', '')}"
    return env


def run_snippet(
    name: str, cwd: Path, env: dict[str, str], replace: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run docs/snippets/`name` as bash -euo pipefail, `replace`d; stderr joins stdout."""
    text = (SNIPPETS / name).read_text()
    for shown, real in replace.items():
        text = text.replace(shown, real)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


class StandIn:
    """`signing-proxy run`, started by a snippet, with the sandbox's exchange as Kalshi."""

    def __init__(self, snippet: str, folder: Path, env: dict[str, str]) -> None:
        command = "exec " + (SNIPPETS / snippet).read_text().strip()
        log = folder / f"{snippet}.log"
        self.server = Background(["bash", "-c", command], log, env)
        self.url = self.server.wait_for(r'"listen": "(http://[^"]+)"').group(1)

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")


def stand_in_env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    """`signing-proxy run` against the sandbox's exchange, on a free port, logging JSON."""
    settings = {
        "KALSHI_API_KEY_ID": sandbox.started["key_id"],
        "KALSHI_PRIVATE_KEY_FILE": sandbox.started["key_file"],
        "SIGNING_PROXY_UPSTREAM": sandbox.exchange,
        "SIGNING_PROXY_PORT": "0",
        "SIGNING_PROXY_LOG_FORMAT": "json",
    }
    return snippet_env(**{**settings, **extra})


# --- what runs, and that nothing shown goes unrun ----------------------------------------


def test_every_shell_block_of_the_docs_is_an_included_snippet() -> None:
    for page in sorted(DOCS.glob("*.md")):
        for lang, body in fenced_blocks(page.read_text()):
            if lang in SHELL:
                lines = [line for line in body.splitlines() if line.strip()]
                assert len(lines) == 1 and INCLUDE.match(lines[0].strip()), (
                    f"{page.name}: a shell block that is not one docs/snippets/ include "
                    f"(so no test runs it):\n{body}"
                )


def test_every_shell_snippet_is_run_by_a_test() -> None:
    shown = included(SHELL)
    assert shown, "no shell snippet found in the docs"
    for name, pages in shown.items():
        snippet = name.removeprefix("snippets/")
        assert name.startswith("snippets/") and snippet.endswith(".sh"), (name, pages)
        assert snippet in SANDBOX.keys() | DEDICATED | STATIC.keys(), (
            f"{name} (shown on {pages}) is run by no test: add it to SANDBOX, a dedicated "
            "test, or STATIC with the reason"
        )


def test_each_dedicated_snippet_is_named_by_a_test() -> None:
    source = Path(__file__).read_text()
    listing = source[source.index("DEDICATED = {") : source.index("STATIC = {")]
    tests = source.replace(listing, "")
    for name in DEDICATED:
        assert f'"{name}"' in tests, f"{name} is listed as run by its own test, but none is"


def test_no_snippet_lies_unused() -> None:
    used = {name.removeprefix("snippets/") for name in included()}
    unused = {p.name for p in SNIPPETS.iterdir()} - used
    assert not unused, f"docs/snippets/ files no page shows: {sorted(unused)}"
    listed = SANDBOX.keys() | DEDICATED | STATIC.keys()
    assert listed <= used, f"listed but shown on no page: {sorted(listed - used)}"


def test_every_shown_output_file_belongs_to_a_snippet() -> None:
    for out in SNIPPETS.glob("*.out"):
        assert out.with_suffix(".sh").exists(), out.name


# --- snippets run against a fresh sandbox -------------------------------------------------


@pytest.mark.parametrize("name", sorted(SANDBOX))
def test_sandbox_snippet(name: str, sandbox: Sandbox, tmp_path: Path) -> None:
    cwd = ROOT if SANDBOX[name] == "root" else tmp_path / "work"
    cwd.mkdir(exist_ok=True)
    result = run_snippet(name, cwd, snippet_env(), {SHOWN: sandbox.address})
    assert result.returncode == 0, result.stdout
    if (SNIPPETS / name.replace(".sh", ".out")).exists():
        assert_shown(name, result.stdout, {sandbox.address: SHOWN})


def test_sandbox_banner(tmp_path: Path) -> None:
    # The one change to what is shown: --port 0, so the test never needs port 8080.
    command = (SNIPPETS / "sandbox.sh").read_text().strip() + " --port 0"
    log = tmp_path / "banner.log"
    server = Background(shlex.split(command), log, snippet_env(SIGNING_PROXY_LOG_FORMAT="json"))
    try:
        server.wait_for("Ctrl-C to stop.")
        proxy = json.loads(server.wait_for(r'\{[^\n]*"sandbox_started"[^\n]*\}').group(0))
    finally:
        server.stop()
    output = log.read_text().replace(proxy["proxy"], f"http://{SHOWN}")
    assert_shown("sandbox.sh", output)


# --- snippets with your own key, against the sandbox's exchange standing in for Kalshi --


def key_copy(sandbox: Sandbox, folder: Path, name: str = "kalshi-demo.pem") -> Path:
    """A copy of the sandbox's key (which its exchange accepts), as a user would have it."""
    path = folder / name
    shutil.copyfile(sandbox.started["key_file"], path)
    path.chmod(0o600)
    return path


def test_real_key_check(sandbox: Sandbox, tmp_path: Path) -> None:
    key = key_copy(sandbox, tmp_path)
    key.chmod(0o644)  # as downloaded: the snippet's chmod is what makes it acceptable
    key_id = sandbox.started["key_id"]
    replace = {"~/kalshi-demo.pem": str(key), "your-key-id": key_id}
    result = run_snippet("real-key.sh", tmp_path, snippet_env(), replace)
    assert result.returncode == 0, result.stdout
    assert_shown("real-key.sh", result.stdout, {key_id: "your-key-id"})
    assert key.stat().st_mode & 0o777 == 0o600


def test_run_then_a_signed_call(sandbox: Sandbox, tmp_path: Path) -> None:
    proxy = StandIn("run.sh", tmp_path, stand_in_env(sandbox))
    try:
        result = run_snippet("balance.sh", tmp_path, snippet_env(), {SHOWN: proxy.address})
    finally:
        proxy.server.stop()
    assert result.returncode == 0, result.stdout
    assert_shown("balance.sh", result.stdout)
    # run.out is the call's log event (as JSON): the real one has its fields and values
    # (times, ids and sizes differ from run to run).
    shown = json.loads(shown_output("run.sh"))
    events = [json.loads(line) for line in proxy.server.log.read_text().splitlines()]
    logged = next(e for e in events if e.get("event") == "request")
    assert shown.keys() <= logged.keys(), shown.keys() - logged.keys()
    for field in ("client", "method", "path", "query", "status", "event", "level"):
        assert logged[field] == shown[field], field


def test_pem_in_an_environment_variable(sandbox: Sandbox, tmp_path: Path) -> None:
    key = key_copy(sandbox, tmp_path)
    env = snippet_env(KALSHI_API_KEY_ID=sandbox.started["key_id"], KALSHI_PRIVATE_KEY_FILE=str(key))
    result = run_snippet("pem-env.sh", tmp_path, env, {"~/kalshi-demo.pem": str(key)})
    assert result.returncode == 0, result.stdout
    assert_shown("pem-env.sh", result.stdout)


def test_a_refused_key_diagnosed(sandbox: Sandbox, tmp_path: Path) -> None:
    unknown = "00000000-0000-4000-8000-000000000401"  # a key id the exchange never issued
    proxy = StandIn("run.sh", tmp_path, stand_in_env(sandbox, KALSHI_API_KEY_ID=unknown))
    try:
        result = run_snippet("diagnose-401.sh", tmp_path, snippet_env(), {SHOWN: proxy.address})
    finally:
        proxy.server.stop()
    assert result.returncode == 0, result.stdout
    assert_shown("diagnose-401.sh", result.stdout)


def test_demo_and_production_side_by_side(sandbox: Sandbox, tmp_path: Path) -> None:
    replace = {
        "~/kalshi-demo.pem": str(key_copy(sandbox, tmp_path)),
        "~/kalshi-production.pem": str(key_copy(sandbox, tmp_path, "kalshi-production.pem")),
        "your-demo-key-id": "11111111-1111-4111-8111-111111111111",
        "your-production-key-id": "22222222-2222-4222-8222-222222222222",
    }
    for name in ("demo.yaml", "production.yaml"):
        text = (SNIPPETS / name).read_text()
        for shown, real in replace.items():
            text = text.replace(shown, real)
        (tmp_path / name).write_text(text)
    result = run_snippet("side-by-side.sh", tmp_path, snippet_env(), {})
    assert result.returncode == 0, result.stdout
    assert_shown("side-by-side.sh", result.stdout)


# The tokens tokens.yaml and gateway.yaml name, as their users would set them.
TOKEN_VARIABLES = ("DASHBOARD_TOKEN", "BOT_TOKEN", "PRICES_TOKEN", "OPS_TOKEN", "MAKER_TOKEN")
TOKENS = {
    name: f"{name.lower()}-0123456789abcdef"
    for name in (*TOKEN_VARIABLES, "TAKER_TOKEN", "DASH_TOKEN")
}


def test_tokens_and_rules(sandbox: Sandbox, tmp_path: Path) -> None:
    config = tmp_path / "tokens.yaml"
    shutil.copyfile(SNIPPETS / "tokens.yaml", config)
    env = stand_in_env(sandbox, **TOKENS)
    server = Background([CLI, "run", "--config", str(config)], tmp_path / "run.log", env)
    try:
        address = server.wait_for(r'"listen": "http://([^"]+)"').group(1)
        result = run_snippet("token-call.sh", tmp_path, snippet_env(**TOKENS), {SHOWN: address})
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout
    assert_shown("token-call.sh", result.stdout)


def test_the_gateway_worked_example(sandbox: Sandbox, tmp_path: Path) -> None:
    shutil.copyfile(SNIPPETS / "gateway.yaml", tmp_path / "gateway.yaml")
    command = (SNIPPETS / "gateway-run.sh").read_text().strip()
    command = command.replace("gateway.yaml", str(tmp_path / "gateway.yaml"))
    env = stand_in_env(sandbox, **TOKENS)
    server = Background(["bash", "-c", f"exec {command}"], tmp_path / "run.log", env)
    try:
        address = server.wait_for(r'"listen": "http://([^"]+)"').group(1)
        refusal = run_snippet(
            "gateway-refusal.sh", tmp_path, snippet_env(**TOKENS), {SHOWN: address}
        )
        port = address.rpartition(":")[2]
        ops_env = snippet_env(SIGNING_PROXY_PORT=port, **TOKENS)
        ops = run_snippet("gateway-ops.sh", tmp_path, ops_env, {})
    finally:
        server.stop()
    assert refusal.returncode == 0, refusal.stdout
    assert_shown("gateway-refusal.sh", refusal.stdout)
    assert ops.returncode == 0, ops.stdout
    assert_shown("gateway-ops.sh", ops.stdout)
