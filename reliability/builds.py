"""What the build attacks share: a small call-out and spec from the corpus, ``remixtv build`` as a
subprocess in a session of its own, a power-cut kill of it and everything it started, and a watcher
that checks every file that appears under a final name in an output folder is complete.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

from reliability import harness

CORPUS = Path(os.environ.get("REMIXTV_CORPUS", harness.REPO.parent / "shared" / "corpus"))
MEDIA = {  # small, short media: a fresh cache intakes and analyses all of them in seconds of CPU
    "V1": ("frog.mp4", "frog_toy_h264_aac_720x480_30fps.mp4", "video", "Frog", "ana", "one"),
    "V2": ("cc.mp4", "cc_logo_h264_aac_640x480_29.97fps.mp4", "video", "CC", "bo", "one"),
    "V3": ("carphone.mp4", "carphone_h264_176x144_29.97fps_lowquality.mp4", "video", "Carphone", "cy", ""),
    "V4": ("bunny.webm", "bunny_vp8_vorbis_320x240_30fps.webm", "video", "Bunny", "bo", "two"),
    "M1": ("crunch.mp3", "crunching_sfx_mp3_48k_stereo.mp3", "music", "Crunch", "bo", ""),
}
# two specs of 12-14 s over the same call-out, five segments (so five pieces) each; two pieces are the
# same in both (the title card and the carphone feature: a piece's key does not hold its position)
SHARED = ("title", "carphone")
SPECS = {
    "one": """\
title: "RE: Kills"
callout: callout
runtime: "0:14"
segments:
  - {id: open, type: montage, select: {kinds: [video], tags: [one], limit: 2}, shot_seconds: 2}
  - {id: title, type: card, text: "RE: Kills", seconds: 2}
  - {id: carphone, type: feature, record: V3, max_seconds: 3}
  - {id: song, type: feature, record: M1, max_seconds: 2}
  - {id: credits, type: credits, seconds: 3}
""",
    "two": """\
title: "RE: Beside"
callout: callout
runtime: "0:12"
segments:
  - {id: title, type: card, text: "RE: Kills", seconds: 2}
  - {id: carphone, type: feature, record: V3, max_seconds: 3}
  - {id: frog, type: feature, record: V1, max_seconds: 2}
  - {id: thanks, type: card, text: "Thanks", seconds: 2}
  - {id: credits, type: credits, seconds: 3}
""",
}


def make_project(root: Path) -> dict[str, Path]:
    """The call-out and both specs under ``root``; returns the specs by name."""
    media = root / "callout" / "media"
    media.mkdir(parents=True, exist_ok=True)
    (root / "callout" / "callout.yaml").write_text(
        "id: kills\ntitle: \"RE: Kills\"\nbrief: short builds to attack\nopened: 2026-01-01\nclosed: 2026-02-01\n")
    with open(root / "callout" / "submissions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["record_id", "file", "kind", "title", "contributors", "remix_of", "tags", "text", "released"])
        for rid, (name, source, kind, title, who, tags) in MEDIA.items():
            (media / name).write_bytes((CORPUS / source).read_bytes())
            w.writerow([rid, f"media/{name}", kind, title, who, "", tags, "", "yes"])
    (root / "callout" / "contributors.csv").write_text("username,credit_name,country\nana,Ana,MX\nbo,Bo,CN\ncy,Cy,IR\n")
    specs = {}
    for name, text in SPECS.items():
        specs[name] = root / f"{name}.yaml"
        specs[name].write_text(text)
    return specs


def env() -> dict[str, str]:
    """A build's environment: this checkout, no telemetry, the machine's numba JIT cache (machine code,
    not media: a fresh one costs ~30 s of librosa compiling)."""
    numba = os.environ.get("NUMBA_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "remixtv" / "numba")
    out = dict(os.environ, PYTHONPATH=str(harness.REPO), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               NUMBA_CACHE_DIR=numba)
    out.pop("REMIXTV_CACHE", None)
    return out


def start(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """``python -m flows.cli ARGV`` in a session of its own (so it can be killed whole)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], cwd=cwd, env=env(),
                            stdin=subprocess.DEVNULL, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def build(spec: Path, cache: Path, out: Path | str, log: Path, *extra: str) -> subprocess.Popen:
    """``remixtv build SPEC --cache CACHE --out OUT`` (a folder or an s3:// URI), started."""
    return start(["build", str(spec), "--cache", str(cache), "--out", str(out), *extra], spec.parent, log)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (ffmpeg runs in sessions of its own, so a group kill misses it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cmdline(pid: int) -> str:
    """A process's command line (spaces between arguments); empty once it has gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def kill_all(proc: subprocess.Popen) -> list[str]:
    """SIGKILL the build's process group and every process it started, as a power cut would; returns
    the command lines that were running (frozen first, so nothing new starts while they are listed)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGSTOP)
    below = descendants(proc.pid)
    running = [cmdline(p) for p in below]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return running


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def complete(path: Path) -> str | None:
    """Why ``path`` is not a complete file of its kind, or None when it is: JSON parses, CSV and text
    decode, an MP4 is read whole by ffprobe (every packet) without a complaint."""
    try:
        data = path.read_bytes()
        if path.suffix == ".json":
            json.loads(data)
        elif path.suffix in (".csv", ".txt", ".srt", ".vtt", ".ass", ".xml", ".otio", ".edl"):
            data.decode("utf-8")
            if not data:
                return "empty"
        elif path.suffix in (".mp4", ".mov", ".m4a", ".wav", ".mxf"):
            done = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                                   "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                                  capture_output=True, text=True, timeout=120, check=False)
            counts = [int(x) for x in done.stdout.split() if x.strip().isdigit()]
            if done.returncode or done.stderr.strip() or not counts or min(counts) == 0:
                return f"ffprobe: exit {done.returncode}, packets {counts}, {done.stderr.strip()[-300:]}"
    except FileNotFoundError:
        return None  # replaced or removed meanwhile: the name was never half-written while we looked
    except (ValueError, UnicodeDecodeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class Watcher:
    """Polls folders every few milliseconds while builds run: each file that appears (or changes)
    under a final name (not a dot-file) is checked complete once; also samples the peak resident
    memory (``VmHWM``) of every process below ``pids``."""

    def __init__(self, folders: list[Path], every_s: float = 0.005):
        self.folders, self.every_s = folders, every_s
        self.pids: list[int] = []
        self.seen: dict[Path, tuple] = {}
        self.checked = 0
        self.half_written: list[str] = []
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._last_mem = 0.0

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for folder in self.folders:
                for path in (folder.rglob("*") if folder.exists() else ()):
                    if any(part.startswith(".") for part in path.relative_to(folder).parts):
                        continue
                    with contextlib.suppress(OSError):
                        st = path.stat()
                        if not path.is_file():
                            continue
                        ident = (st.st_ino, st.st_size, st.st_mtime_ns)
                        if self.seen.get(path) == ident:
                            continue
                        self.seen[path] = ident
                        self.checked += 1
                        why = complete(path)
                        if why is not None:
                            self.half_written.append(f"{path}: {why}")
            if time.monotonic() - self._last_mem > 0.05:
                self._last_mem = time.monotonic()
                self._sample_memory()

    def _sample_memory(self) -> None:
        for top in list(self.pids):
            for pid in [top, *descendants(top)]:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))


class Poller:
    """Calls ``look()`` every few milliseconds in a thread while builds run, gathering the problems it
    returns (what a reader would take for finished but is not); a look that raises (a server that is
    down) counts as nothing seen."""

    def __init__(self, look, every_s: float = 0.002):
        self.look, self.every_s = look, every_s
        self.problems: list[str] = []
        self.looks = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            with contextlib.suppress(Exception):
                found = self.look()
                self.looks += 1
                self.problems += [p for p in found if p not in self.problems]
