"""The distributions as users get them: what the sdist and the wheel hold, and the wheel
installed the way the docs say (pipx, uv tool), then run from where it was installed.

One session build (python -m build: the sdist, then the wheel from it) and one wheelhouse
of the dependencies (pip download, once); pipx and uv install from that wheelhouse only
(--no-index), each into its own temporary home, so nothing of the developer's changes.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

import signing_proxy
from tests.support.keys import KEY_ID
from tests.support.processes import base_env

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
# What a clone has that no distribution is built from.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "__pycache__", "*.pyc", ".*_cache", ".hypothesis", "build",
    "dist", "*.egg-info", "results",
)  # fmt: skip


@dataclass(frozen=True)
class Dist:
    """The built sdist and wheel, and a directory with the wheel and all it depends on."""

    sdist: Path
    wheel: Path
    wheelhouse: Path


def _run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a command to completion (2 minutes at most); its output, or a failure showing it."""
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """python -m build on a copy of the source tree (the build writes into its source)."""
    work = tmp_path_factory.mktemp("dist")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    out = work / "dist"
    _run(sys.executable, "-m", "build", "--outdir", out, source)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    wheelhouse = work / "wheelhouse"
    _run(sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--dest", wheelhouse, wheel)  # fmt: skip
    return Dist(sdist, wheel, wheelhouse)


def _wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_the_wheel_carries_the_license_and_the_metadata(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as archive:
        names = archive.namelist()
        (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(license_file) == (ROOT / "LICENSE").read_bytes()
    assert not [n for n in names if n.startswith("tests/")]
    metadata = _wheel_metadata(dist.wheel)
    assert metadata["License-Expression"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = metadata.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "kalshi" in (metadata["Keywords"] or "").split(",")


def test_the_version_is_defined_once(dist: Dist) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert _wheel_metadata(dist.wheel)["Version"] == signing_proxy.__version__
    assert dist.wheel.name.startswith(f"signing_proxy-{signing_proxy.__version__}-")


def test_the_sdist_has_the_license_and_no_tests(dist: Dist) -> None:
    # No tests rather than some: they need the whole repository (examples, bench, curl).
    with tarfile.open(dist.sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
        top = archive.getnames()[0].split("/")[0]
        assert archive.extractfile(f"{top}/LICENSE").read() == (ROOT / "LICENSE").read_bytes()  # type: ignore[union-attr]
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"} <= set(names)
    assert "signing_proxy/cli.py" in names
    assert not [n for n in names if n.startswith(("tests", "bench/", "examples/", "scripts/"))]


@pytest.fixture
def sandbox_like_config(tmp_path: Path, key_file: Path) -> tuple[Path, dict[str, str]]:
    """A config as the sandbox runs the proxy (a loopback upstream, no journal) and its env."""
    config = tmp_path / "signing-proxy.yaml"
    config.write_text(
        "upstream:\n  rest_url: http://127.0.0.1:8081\nlisten:\n  port: 8080\n"
        "journal:\n  path: null\n"
    )
    env = base_env(KALSHI_API_KEY_ID=KEY_ID, KALSHI_PRIVATE_KEY_FILE=str(key_file))
    env.pop("PYTHONPATH", None)  # the installed copy must run, not this checkout
    return config, env


def _tool_runs(program: Path, config: Path, env: dict[str, str]) -> None:
    """The installed command: its version, and `check` of the config."""
    assert (
        _run(program, "--version", env=env).strip() == f"signing-proxy {signing_proxy.__version__}"
    )
    out = _run(program, "check", "--config", config, env=env)
    assert "rest url:    http://127.0.0.1:8081" in out
    assert out.rstrip().endswith("configuration OK")


def test_pipx_install_of_the_wheel(
    dist: Dist, tmp_path: Path, sandbox_like_config: tuple[Path, dict[str, str]]
) -> None:
    config, env = sandbox_like_config
    home = {"PIPX_HOME": tmp_path / "pipx", "PIPX_BIN_DIR": tmp_path / "bin",
            "PIPX_MAN_DIR": tmp_path / "man"}  # fmt: skip
    pipx_env = {**env, **{k: str(v) for k, v in home.items()}}
    pip_args = f"--no-index --find-links {dist.wheelhouse}"
    _run(sys.executable, "-m", "pipx", "install", "--pip-args", pip_args, dist.wheel, env=pipx_env)
    _tool_runs(tmp_path / "bin" / "signing-proxy", config, env)


def test_uv_tool_install_of_the_wheel(
    dist: Dist, tmp_path: Path, sandbox_like_config: tuple[Path, dict[str, str]]
) -> None:
    config, env = sandbox_like_config
    home = {"UV_TOOL_DIR": tmp_path / "tools", "UV_TOOL_BIN_DIR": tmp_path / "bin",
            "UV_CACHE_DIR": tmp_path / "cache"}  # fmt: skip
    # This interpreter, never one uv would download; no uv.toml of the developer's.
    uv_env = {**env, **{k: str(v) for k, v in home.items()}, "UV_PYTHON_DOWNLOADS": "never",
              "UV_NO_CONFIG": "1"}  # fmt: skip
    _run(sys.executable, "-m", "uv", "tool", "install", "--python", sys.executable,
         "--no-index", "--find-links", dist.wheelhouse, dist.wheel, env=uv_env)  # fmt: skip
    _tool_runs(tmp_path / "bin" / "signing-proxy", config, env)
