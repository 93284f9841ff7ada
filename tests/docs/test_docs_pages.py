"""The docs' claims that are not shell examples: configuration blocks load, the files of
examples/ that pages show are valid and match the proxy (flags, drain time, metric
names), the error table lists every code the proxy can produce, the README's commands
are CI's, and the site builds with --strict."""

from __future__ import annotations

import configparser
import importlib.util
import json
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from signing_proxy import cli
from signing_proxy.config import Config, load_config
from signing_proxy.config.fields import all_keys, keys_of
from signing_proxy.config.risk import RiskConfig
from tests.docs.conftest import Sandbox
from tests.docs.test_docs_examples import (
    DOCS,
    INCLUDE,
    ROOT,
    SHOWN,
    SNIPPETS,
    STATIC,
    fenced_blocks,
    snippet_env,
)
from tests.support.processes import CLI

EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"
DRAIN = Config().shutdown_timeout
OPERATORS = {"&&", "||", ";", "|"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def cli_arguments(script: str) -> Iterator[list[str]]:
    """The arguments of each `signing-proxy` command in a shell script."""
    # A ';' at each line's start ends the command before it (a comment eats its newline).
    lexer = shlex.shlex(
        script.replace("\\\n", " ").replace("\n", "\n; "), posix=True, punctuation_chars=";&|"
    )
    lexer.whitespace = " \t\r\n"
    command: list[str] = []
    for word in [*lexer, ";"]:
        if word not in OPERATORS:
            command.append(word)
            continue
        while command and (command[0] == "sudo" or ASSIGNMENT.match(command[0])):
            command.pop(0)
        if command and command[0].endswith("signing-proxy"):
            yield command[1:]
        command = []


def assert_cli_accepts(arguments: list[str]) -> None:
    """`signing-proxy arguments` is a command line the CLI accepts."""
    try:
        cli._parser().parse_args(arguments)
    except SystemExit as exc:  # --help and --version exit 0; a wrong flag exits 2
        assert exc.code == 0, f"signing-proxy does not accept: {shlex.join(arguments)}"


@pytest.mark.parametrize("name", sorted(p.name for p in SNIPPETS.glob("*.sh")))
def test_snippet_is_valid_bash_and_its_commands_exist(name: str) -> None:
    text = (SNIPPETS / name).read_text()
    result = subprocess.run(["bash", "-n", "-c", text], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for arguments in cli_arguments(text):
        assert_cli_accepts(arguments)


def test_static_snippets_say_why() -> None:
    assert all(len(reason.split()) >= 3 for reason in STATIC.values())


# --- configuration shown on pages ---------------------------------------------------------


def config_blocks() -> Iterator[tuple[str, str]]:
    """(where, YAML) of each proxy configuration a page shows, inline or from snippets/."""
    for page in sorted(DOCS.glob("*.md")):
        for lang, body in fenced_blocks(page.read_text()):
            if lang != "yaml":
                continue
            match = INCLUDE.match(body.strip())
            if match is None:
                yield page.name, body
            elif match.group(1).startswith("snippets/"):
                yield match.group(1), (DOCS / match.group(1)).read_text()
            # examples/ files are checked by the tests of each below


@pytest.mark.parametrize(("where", "text"), list(config_blocks()), ids=lambda v: str(v)[:30])
def test_configuration_block_loads(where: str, text: str, tmp_path: Path) -> None:
    env = {
        name: "a-token-of-32-characters-or-more!" for name in re.findall(r"token_env: (\w+)", text)
    }
    path = tmp_path / "shown.yaml"
    path.write_text(text)
    load_config(str(path), env)


# --- files of examples/ -------------------------------------------------------------------


def test_systemd_unit(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    text = (EXAMPLES / "signing-proxy.service").read_text()
    unit.read_string(text)
    service = unit["Service"]
    binary, *arguments = shlex.split(service["ExecStart"])
    assert binary.endswith("/signing-proxy")
    assert_cli_accepts(arguments)
    assert float(service["TimeoutStopSec"]) > DRAIN
    assert "HUP" in service["ExecReload"]
    if shutil.which("systemd-analyze") is None:
        return  # the checks above hold; systemd's own reading of the unit needs systemd
    copy = tmp_path / "signing-proxy.service"
    copy.write_text(text.replace(binary, CLI))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_launchd_plist() -> None:
    with (EXAMPLES / "local.signing-proxy.plist").open("rb") as handle:
        agent = plistlib.load(handle)
    binary, *arguments = agent["ProgramArguments"]
    assert binary.endswith("/signing-proxy")
    assert_cli_accepts(arguments)
    assert agent["ExitTimeOut"] > DRAIN
    assert agent["Label"] == "local.signing-proxy"


def test_kubernetes_sidecar() -> None:
    deployment = yaml.safe_load((EXAMPLES / "kubernetes-sidecar.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > DRAIN
    proxy = next(c for c in pod["containers"] if c["name"] == "signing-proxy")
    assert_cli_accepts(proxy["args"])
    known = {key.setting.env for key in all_keys(Config) if key.setting.env}
    names = {item["name"] for item in proxy["env"]}
    assert names <= known, names - known
    env = {item["name"]: item.get("value", "from-a-secret") for item in proxy["env"]}
    config = load_config(None, env)
    assert config.listen.host == "127.0.0.1"  # a sidecar stays on the pod's loopback


def exported_metric_names(sandbox: Sandbox) -> set[str]:
    """Every metric name a running proxy's /metrics has, after one call."""
    urllib.request.urlopen(f"{sandbox.proxy}/trade-api/v2/portfolio/balance", timeout=10).read()
    text = urllib.request.urlopen(f"{sandbox.proxy}/metrics", timeout=10).read().decode()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
            names.update(f"{name}{suffix}" for suffix in suffixes)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_grafana_dashboard_queries_only_exported_metrics(sandbox: Sandbox) -> None:
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for q in queries for name in re.findall(r"signing_proxy_[a-z0-9_]+", q)}
    assert len(used) >= 10
    missing = used - exported_metric_names(sandbox)
    assert not missing, f"the dashboard queries metrics the proxy does not export: {missing}"


# --- the error table ----------------------------------------------------------------------


def codes_in_the_source() -> set[str]:
    """Every proxy_ error code the package can produce (the sandbox is not the proxy)."""
    codes: set[str] = set()
    for path in (ROOT / "signing_proxy").rglob("*.py"):
        if "sandbox" in path.parts:
            continue
        text = path.read_text()
        codes.update(c for c in re.findall(r"[\"'](proxy_[a-z0-9_]+)", text) if not c.endswith("_"))
    # Risk refusals are built from the rule's name: proxy_risk_<rule>.
    risk = (ROOT / "signing_proxy" / "gateway" / "risk.py").read_text()
    rules = set(re.findall(r"_refused\(\s*\"(\w+)\"", risk))
    assert rules <= {key.name for key in keys_of(RiskConfig)}
    return codes | {f"proxy_risk_{rule}" for rule in rules}


def test_error_table_lists_every_code_the_proxy_produces() -> None:
    rows = [line for line in (DOCS / "proxy.md").read_text().splitlines() if line.startswith("|")]
    documented = {code for row in rows for code in re.findall(r"`(proxy_[a-z0-9_]+)`", row)}
    source = codes_in_the_source()
    assert len(source) > 30
    assert source - documented == set(), "codes missing from docs/proxy.md's tables"
    assert documented - source == set(), "codes in docs/proxy.md the proxy never produces"


# --- the README ---------------------------------------------------------------------------


def readme_blocks(lang: str) -> list[str]:
    return [body for block_lang, body in fenced_blocks(README.read_text()) if block_lang == lang]


def test_readme_test_command_is_what_ci_runs_last() -> None:
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    commands = [line for body in readme_blocks("sh") for line in body.splitlines()]
    test = next(c for c in commands if c.rstrip().endswith("pytest"))
    assert test.split("&&")[-1].strip() == ci[-1].strip() == ".venv/bin/pytest"
    assert test.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'")


def test_readme_sandbox_command_installs_and_starts_the_sandbox() -> None:
    commands = [line for body in readme_blocks("sh") for line in body.splitlines()]
    sandbox = next(c for c in commands if c.rstrip().endswith("signing-proxy sandbox"))
    assert sandbox.startswith("python3 -m venv .venv && .venv/bin/pip install -e ")
    assert "python3 -m venv .venv" in (ROOT / ".ci" / "run").read_text()


def test_readme_curl_works_against_the_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    curl = next(body for body in readme_blocks("sh") if body.startswith("curl"))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", curl.replace(SHOWN, sandbox.address)],
        capture_output=True,
        text=True,
        timeout=30,
        env=snippet_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    shown = readme_blocks("text")[0]
    pattern = ".*?".join(re.escape(part) for part in shown.strip().split("..."))
    assert re.fullmatch(pattern, result.stdout.strip(), re.DOTALL), result.stdout


def test_readme_links_into_the_docs_exist() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)", README.read_text())
    assert len(links) >= 5
    for link in links:
        assert (ROOT / link).is_file(), link


# --- the site -----------------------------------------------------------------------------


def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]'); CI builds the site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**snippet_env(), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    reference = (tmp_path / "configuration" / "index.html").read_text()
    for key in all_keys(Config):
        shown = key.dotted if key.setting.in_file else str(key.setting.env)
        assert shown in reference, f"the configuration reference lacks {shown}"
