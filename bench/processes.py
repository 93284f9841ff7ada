"""Child processes of the harness (started, tracked, stopped with it), and what /proc says."""

# ruff: noqa: S603 - starting the proxy and the upstreams is the whole point

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# --- tools from Debian's packages -----------------------------------------------------------


def debian_tool(name: str, package: str, sbin: Path | None = None) -> str | None:
    """The path of tool `name`, installed from Debian's `package` when missing and apt-get
    is here (as root); None when it cannot be had."""

    def found() -> str | None:
        return shutil.which(name) or (str(sbin) if sbin is not None and sbin.exists() else None)

    apt = shutil.which("apt-get")
    if found() or apt is None or os.geteuid() != 0:
        return found()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update", "-qq"], ["install", "-y", "-qq", package]):
        subprocess.run([apt, *args], env=env, capture_output=True, timeout=600, check=False)
    return found()


# --- child processes -------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen[Any]] = []


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the harness dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    cmd: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `cmd` with its output to `log`; it stops with the harness."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    _CHILDREN.append(proc)
    return proc


def track(proc: subprocess.Popen[Any]) -> None:
    """Stop `proc`, started elsewhere, with the harness as well."""
    _CHILDREN.append(proc)


def stop(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Terminate `proc` (kill it after `grace` seconds) and stop tracking it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
    if proc in _CHILDREN:
        _CHILDREN.remove(proc)


def stop_all() -> None:
    """Stop every child process still running."""
    for proc in list(_CHILDREN):
        with contextlib.suppress(Exception):
            stop(proc)


atexit.register(stop_all)


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def handle_signals() -> None:
    """SIGTERM exits through the cleanup; Ctrl-C interrupts even if SIGINT was ignored."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C stops the run even when the harness was started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def raise_nofile_limit(want: int) -> None:
    """Raise the soft limit of open files to `want` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


# --- /proc -----------------------------------------------------------------------------------


def proc_status_kib(pid: int, field_name: str) -> int | None:
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, echo 5 > clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Watch:
    """Peak RSS (VmHWM after a reset, and VmRSS sampled every 20 ms) and CPU of one process."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.rss_before_kib: int | None = None
        self.hwm_before_kib: int | None = None
        self.hwm_after_kib: int | None = None
        self.sampled_peak_kib = 0
        self.hwm_reset = False
        self.cpu_s: float | None = None
        self.wall_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        if self.pid is None:
            return self
        self.hwm_reset = reset_hwm(self.pid)
        self.rss_before_kib = proc_status_kib(self.pid, "VmRSS")
        self.hwm_before_kib = proc_status_kib(self.pid, "VmHWM")
        self._cpu0 = proc_cpu_s(self.pid)
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        assert self.pid is not None
        for _ in range(100_000):  # 20 ms * 100k = 33 min at most
            rss = proc_status_kib(self.pid, "VmRSS")
            if rss is not None:
                self.sampled_peak_kib = max(self.sampled_peak_kib, rss)
            if self._stop.wait(0.02):
                return

    def __exit__(self, *exc: object) -> None:
        if self.pid is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.wall_s = time.perf_counter() - self._t0
        self.hwm_after_kib = proc_status_kib(self.pid, "VmHWM")
        cpu1 = proc_cpu_s(self.pid)
        if cpu1 is not None and self._cpu0 is not None:
            self.cpu_s = cpu1 - self._cpu0

    @property
    def peak_mib(self) -> float | None:
        """The peak RSS during the watch in MiB, or None."""
        if self.pid is None:
            return None
        values = [self.sampled_peak_kib]
        if self.hwm_reset and self.hwm_after_kib is not None:
            values.append(self.hwm_after_kib)
        return max(values) / 1024 if max(values) else None

    @property
    def cpu_pct(self) -> float | None:
        """CPU time over wall time during the watch, in % of one core."""
        if self.cpu_s is None or not self.wall_s:
            return None
        return 100 * self.cpu_s / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        """The figures in MiB, for the JSON report."""

        def kib(v: int | None) -> float | None:
            return None if v is None else round(v / 1024, 2)

        return {
            "peak_rss_mib": None if self.peak_mib is None else round(self.peak_mib, 2),
            "rss_before_mib": kib(self.rss_before_kib),
            "hwm_before_mib": kib(self.hwm_before_kib),
            "hwm_after_mib": kib(self.hwm_after_kib),
            "sampled_peak_rss_mib": kib(self.sampled_peak_kib),
            "hwm_reset": self.hwm_reset,
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 3),
            "cpu_pct": None if self.cpu_pct is None else round(self.cpu_pct, 1),
        }


def merge_watches(watches: list[Watch]) -> Watch:
    """Watches of one process over several runs, as one: CPU and wall time summed, peaks
    the largest, the figures before as before the first."""
    merged = Watch(watches[0].pid)
    first = watches[0]
    merged.rss_before_kib, merged.hwm_before_kib = first.rss_before_kib, first.hwm_before_kib
    merged.hwm_reset = all(w.hwm_reset for w in watches)
    after = [w.hwm_after_kib for w in watches if w.hwm_after_kib is not None]
    merged.hwm_after_kib = max(after) if after else None
    merged.sampled_peak_kib = max(w.sampled_peak_kib for w in watches)
    cpu = [w.cpu_s for w in watches]
    merged.cpu_s = None if any(c is None for c in cpu) else sum(c or 0.0 for c in cpu)
    merged.wall_s = sum(w.wall_s for w in watches)
    return merged


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of `proc`'s stdout, waiting at most `timeout` seconds."""
    stdout = proc.stdout
    assert stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        raise RuntimeError(f"no READY line from the load generator within {timeout:g} s")
    return box[0].strip()
