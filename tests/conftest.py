"""Shared fixtures: real media from ../shared/corpus, call-outs written the way the site writes them."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("REMIXTV_CORPUS", REPO.parent / "shared" / "corpus"))

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# One numba JIT cache for this process and every build it starts (librosa compiles ~30 s into it
# once per machine); see ``numba_warm`` for why it is filled before builds run side by side.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                             / "remixtv" / "numba"))


def corpus(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.fail(f"test media {path} is missing: ../shared/corpus must sit beside the repo")
    return path


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


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def write_callout(folder: Path, rows: list[dict], contributors: list[tuple[str, str, str]],
                  files: dict[str, Path] | None = None, callout_id: str = "test") -> Path:
    """Write a call-out folder: callout.yaml, the two CSVs, and media copied from ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "callout.yaml").write_text(
        f"id: {callout_id}\ntitle: \"RE: Testing\"\nbrief: test call-out\nopened: 2026-01-01\nclosed: 2026-02-01\n")
    columns = ["record_id", "file", "kind", "title", "contributors", "remix_of", "tags", "text", "released"]
    columns += [c for c in ("transcript",) if any(c in row for row in rows)]  # optional columns, when given
    with open(folder / "submissions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "yes" if c == "released" else "") for c in columns})
    with open(folder / "contributors.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["username", "credit_name", "country"])
        w.writerows(contributors)
    for rel, src in (files or {}).items():
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return folder


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


def submissions(callout_dir: Path) -> dict[str, dict[str, str]]:
    with open(callout_dir / "submissions.csv", newline="", encoding="utf-8-sig") as f:
        return {row["record_id"]: row for row in csv.DictReader(f)}


def expected_credited(callout_dir: Path, used: list[str]) -> set[str]:
    """An independent oracle: usernames (lower-cased) of used records and, transitively, their sources."""
    table = submissions(callout_dir)
    expected, stack, seen = set(), list(used), set()
    while stack:
        rid = stack.pop()
        if rid in seen or rid not in table:
            continue
        seen.add(rid)
        expected |= {c.split(":")[0].strip().lower() for c in table[rid]["contributors"].split(";") if c.strip()}
        stack += [p.strip() for p in table[rid]["remix_of"].split(";") if p.strip()]
    return expected


def source_of(path: Path, cache, kind: str = "music"):
    """A Source the way intake makes one (content hash, neutral link, probed media)."""
    from render.callout.folder import Record
    from render.intake.probe import read_media
    from render.intake.records import Source, safe_link

    digest = cache.content_hash(path)
    link = safe_link(cache, path, digest)
    media, _ = read_media(link)
    record = Record(path.stem[:20], path.name, kind, path.stem, (), (), (), "", True, 2)
    return Source(record, digest, media=media, link=link)


def lavfi(dest: Path, graph: str, *args: str) -> Path:
    """Make test media from one of ffmpeg's lavfi sources."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, *args, str(dest)], check=True)
    return dest
