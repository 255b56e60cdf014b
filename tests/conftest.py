"""Fixtures shared by the whole suite (helpers they and the tests use live in tests/support/)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import NUMBA_CACHE

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# One numba JIT cache for this process and every build it starts (librosa compiles ~30 s into it
# once per machine); see ``numba_warm`` for why it is filled before builds run side by side.
os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE))


@pytest.fixture(scope="session")
def prefect_harness():
    """One real (temporary, local) Prefect server for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def numba_warm() -> str:
    """Compile librosa's numba code into NUMBA_CACHE_DIR here, once, before any test starts builds
    side by side: processes compiling into one numba cache at the same time can load each other's
    half-written entries and crash (SIGSEGV), which is what a cold CI machine would otherwise see."""
    import numpy as np

    from render.analysis.audio import analyze_pcm
    from render.analysis.loudness import Loudness

    t = np.arange(48000 * 6) / 48000
    clicks = (np.sin(2 * np.pi * 880 * t) * (np.mod(t, 0.5) < 0.03)).astype(np.float32)
    analyze_pcm(np.stack([clicks, clicks], axis=1), Loudness(-20.0, 5.0, -3.0), music_hint=True)
    return os.environ["NUMBA_CACHE_DIR"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["REMIXTV_CACHE"] = str(path)
    return path


@dataclass
class Demo:
    root: Path
    seconds: float
    progress: list[tuple[int, int]]


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Demo:
    """The demo call-out, generated once per test session (about 70 s on 2 cores)."""
    from render.callout.demo import generate_demo_callout

    dest = tmp_path_factory.mktemp("demo") / "callout"
    calls: list[tuple[int, int]] = []
    started = time.monotonic()
    generate_demo_callout(dest, progress=lambda done, total: calls.append((done, total)))
    seconds = time.monotonic() - started
    print(f"\ndemo call-out generated in {seconds:.1f} s")
    return Demo(dest, seconds, calls)
