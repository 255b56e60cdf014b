"""Builds run the way a user runs them (``python -m flows.cli`` subprocesses), and the processes under them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.builds import descendants  # the one walk of /proc, shared with the attacks
from tests.support import REPO, numba_cache


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Children started inside hear Ctrl-C (SIGINT), even when this suite runs with it ignored.

    A shell ignores SIGINT in what it starts in the background (``cmd &`` in a script, ``nohup``),
    and the ignoring is inherited by every child: a Ctrl-C test would then wait in vain. A handled
    signal is reset to its default in a child, so handling it here for the moment of the start is
    enough.
    """
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout, no telemetry, and the machine's numba JIT
    cache where a default build keeps it (librosa compiles for ~30 s in a fresh one; it is machine
    code, not media, so the media caches of these builds stay empty)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               NUMBA_CACHE_DIR=numba_cache(), **extra)
    env.pop("REMIXTV_CACHE", None)  # every build here names its cache
    return env


def start_build(spec: Path, cache: Path, out: Path, env: dict, log: Path, *extra: str) -> subprocess.Popen:
    """``remixtv build`` in its own session (process group), so it can be killed whole."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "build", str(spec), "--cache", str(cache),
                             "--out", str(out), *extra], cwd=spec.parent, env=env, stdin=subprocess.DEVNULL,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """Wait for a build started by ``start_build``; fail with its log's tail unless it exits 0."""
    assert proc.wait(timeout=timeout) == 0, f"build failed:\n{log.read_text()[-4000:]}"


def cmdline(pid: int) -> bytes:
    """A process's command line; empty once it has gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def kill_everything(proc: subprocess.Popen) -> None:
    """SIGKILL the build's process group and every process it started, as a power cut would."""
    os.killpg(proc.pid, signal.SIGSTOP)  # frozen first, so nothing new starts while we list what runs
    below = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def wait_for(proc: subprocess.Popen, log: Path, condition, what: str, timeout: float = 600) -> None:
    """Poll ``condition`` every 10 ms while the build runs; fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the build ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            kill_everything(proc)
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)
