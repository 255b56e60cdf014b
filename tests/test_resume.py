"""A build killed with SIGKILL (the build, its ffmpeg children and its Prefect server: a power cut)
finishes when run again, reusing every piece completed before the kill, and gives the same episode
as a build that was never interrupted. A kill during the join leaves no half-written episode.mp4.

Each build is a real ``python -m flows.cli build`` subprocess on real corpus media.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, corpus, interruptible, write_callout

CONTRIBUTORS = [("ana", "Ana", "MX"), ("bo", "Bo", "CN"), ("cy", "Cy", "IR"), ("dee", "Dee", "EG"),
                ("eli", "Eli", "IL"), ("fox", "Fox", "FR")]
ROWS = [
    {"record_id": "V1", "file": "media/frog.mp4", "kind": "video", "title": "Frog", "contributors": "ana",
     "tags": "one"},
    {"record_id": "V2", "file": "media/bunny.webm", "kind": "animation", "title": "Bunny", "contributors": "bo",
     "tags": "one"},
    {"record_id": "V3", "file": "media/cc.mp4", "kind": "video", "title": "CC", "contributors": "eli", "tags": "one"},
    {"record_id": "V4", "file": "media/theora.ogv", "kind": "video", "title": "Theora", "contributors": "bo",
     "tags": "one"},
    {"record_id": "V5", "file": "media/chaplin.mp4", "kind": "video", "title": "Chaplin", "contributors": "cy"},
    {"record_id": "V6", "file": "media/carphone.mp4", "kind": "video", "title": "Carphone", "contributors": "dee"},
    {"record_id": "M1", "file": "media/crunch.mp3", "kind": "music", "title": "Crunch", "contributors": "fox"},
]
# small, short media: a fresh cache analyses every record (loudness, speech/music, shots) before rendering
FILES = {
    "media/frog.mp4": "frog_toy_h264_aac_720x480_30fps.mp4",
    "media/bunny.webm": "bunny_vp8_vorbis_320x240_30fps.webm",
    "media/cc.mp4": "cc_logo_h264_aac_640x480_29.97fps.mp4",
    "media/theora.ogv": "theora_vorbis_160x120_15fps.ogv",
    "media/chaplin.mp4": "chaplin_bw_film_h264_mp3_640x360_25fps.mp4",
    "media/carphone.mp4": "carphone_h264_176x144_29.97fps_lowquality.mp4",
    "media/crunch.mp3": "crunching_sfx_mp3_48k_stereo.mp3",
}
# six segments, so six pieces (a piece never spans segments), rendered two at a time
SPEC = """\
title: "RE: Resume"
callout: callout
runtime: "0:38"
segments:
  - {id: open, type: montage, select: {kinds: [video, animation], tags: [one], limit: 4}, shot_seconds: 3}
  - {id: title, type: card, text: "RE: Resume", seconds: 3}
  - {id: chaplin, type: feature, record: V5, max_seconds: 8}
  - {id: song, type: feature, record: M1, max_seconds: 8}
  - {id: fill, type: fill}
  - {id: credits, type: credits, seconds: 5}
"""


def make_project(root: Path) -> Path:
    """The call-out and spec above under ``root``; returns the spec."""
    write_callout(root / "callout", ROWS, CONTRIBUTORS, {k: corpus(v) for k, v in FILES.items()})
    (root / "spec.yaml").write_text(SPEC)
    return root / "spec.yaml"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout, no telemetry, and the machine's numba JIT
    cache where a default build keeps it (librosa compiles for ~30 s in a fresh one; it is machine
    code, not media, so the media caches of these builds stay empty)."""
    numba = os.environ.get("NUMBA_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "remixtv" / "numba")
    env = dict(os.environ, PYTHONPATH=str(REPO), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               NUMBA_CACHE_DIR=numba, **extra)
    env.pop("REMIXTV_CACHE", None)  # every build here names its cache
    return env


def start_build(spec: Path, cache: Path, out: Path, env: dict, log: Path, *extra: str) -> subprocess.Popen:
    """``remixtv build`` in its own session (process group), so it can be killed whole."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "build", str(spec), "--cache", str(cache),
                             "--out", str(out), *extra], cwd=spec.parent, env=env, stdin=subprocess.DEVNULL,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    assert proc.wait(timeout=timeout) == 0, f"build failed:\n{log.read_text()[-4000:]}"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (ffmpeg runs in sessions of its own, so a group kill misses it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


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


def done_pieces(cache: Path) -> set[Path]:
    """Pieces in the cache: folders with done.json, not the hidden temporaries they are rendered in."""
    return {p.parent for p in (cache / "pieces" / "preview").glob("*/*/done.json")
            if not p.parent.name.startswith(".")}


def piece_temporaries(cache: Path) -> list[Path]:
    """What ``atomic_dir`` renders into before the rename: ``.<key>.*.part`` folders."""
    return list((cache / "pieces" / "preview").glob("*/.*.part"))


def counts(build: dict) -> dict[str, int]:
    """build.json's piece counts."""
    return {k: build["pieces"][k] for k in ("total", "rendered", "cached")}


def framemd5(path: Path) -> list[str]:
    """Every decoded video frame's and audio packet's MD5 (the lines after the header)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def project(tmp_path_factory, numba_warm):
    root = tmp_path_factory.mktemp("resume")
    return root, make_project(root), cli_env()


def test_a_build_killed_mid_render_and_mid_join_finishes_identically_on_rerun(project):
    root, spec, env = project
    logs = root / "logs"
    # the reference: never interrupted, fresh cache; runs alongside the build we kill
    reference = start_build(spec, root / "cache-ref", root / "out-ref", env, logs / "ref.log")

    # 1. kill mid-render: at least one piece done and another being rendered (so the join has not begun)
    cache, out = root / "cache", root / "out"
    folder = out / "spec" / "preview"
    first = start_build(spec, cache, out, env, logs / "1.log")
    wait_for(first, logs / "1.log", lambda: done_pieces(cache) and piece_temporaries(cache),
             "a piece was done while another was rendering")
    kill_everything(first)
    finish(reference, logs / "ref.log")
    ref_file = root / "out-ref" / "spec" / "preview" / "episode.mp4"
    ref_build = json.loads((ref_file.parent / "build.json").read_text())
    total = ref_build["pieces"]["total"]
    assert total >= 3 and ref_build["pieces"]["rendered"] == total

    survived = done_pieces(cache)
    leftovers = piece_temporaries(cache)
    assert 1 <= len(survived) < total
    assert leftovers, "the kill should have caught a piece mid-render"
    assert not (folder / "episode.mp4").exists()
    assert not folder.exists() or all(p.name.startswith(".") for p in folder.iterdir()), list(folder.iterdir())
    inodes = {p: (p / "done.json").stat().st_ino for p in survived}

    # 2. rerun: renders only what is missing, next to the dead run's half-rendered folders
    second = start_build(spec, cache, out, env, logs / "2.log")
    finish(second, logs / "2.log")
    build = json.loads((folder / "build.json").read_text())
    assert counts(build) == {"total": total, "rendered": total - len(survived), "cached": len(survived)}
    assert {p: (p / "done.json").stat().st_ino for p in survived} == inodes  # reused, not re-rendered
    assert all(p.exists() for p in leftovers)  # young leftovers stay: they could be a live build's
    episode = folder / "episode.mp4"
    assert framemd5(episode) == framemd5(ref_file)
    assert episode.read_bytes() == ref_file.read_bytes()  # x264 here is deterministic: byte for byte
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]

    # 3. kill during the join: a second output of the same cut, every piece already cached
    out2 = root / "out2"
    folder2 = out2 / "spec" / "preview"
    third = start_build(spec, cache, out2, env, logs / "3.log")
    wait_for(third, logs / "3.log", lambda: folder2.exists() and list(folder2.glob(".episode.*.mp4.part")),
             "the join began writing")
    kill_everything(third)
    assert not (folder2 / "episode.mp4").exists()
    half = list(folder2.glob(".episode.*.mp4.part"))
    assert half, "the join's temporary should be left by the kill"

    # 4. rerun: the dead join's temporary is cleared, the episode appears whole
    fourth = start_build(spec, cache, out2, env, logs / "4.log")
    finish(fourth, logs / "4.log")
    assert not any(p.exists() for p in half)
    assert not [p for p in folder2.iterdir() if p.name.endswith(".part")]
    build2 = json.loads((folder2 / "build.json").read_text())
    assert counts(build2) == {"total": total, "rendered": 0, "cached": total}
    assert (folder2 / "episode.mp4").read_bytes() == ref_file.read_bytes()


def test_ctrl_c_or_kill_stops_a_build_at_once_and_leaves_nothing_running(project):
    """Ctrl-C (sent to the whole foreground process group) or ``kill`` (the build alone) stops a
    build within seconds: the pieces being rendered are ended, not waited for, and nothing it
    started is left running, even after ``kill -9``. Ctrl-C used to reach Prefect's temporary
    server too, and the build then hung for minutes retrying to report its crash to it."""
    root, spec, env = project
    cache, logs = root / "cache-stop", root / "logs-stop"
    for name in ("ctrl-c", "kill", "kill -9"):
        log = logs / f"{name}.log"
        with interruptible():
            proc = start_build(spec, cache, root / "out-stop", env, log)
        wait_for(proc, log, lambda: piece_temporaries(cache), "a piece was rendering")
        below = descendants(proc.pid)
        assert any(b"uvicorn" in cmdline(pid) for pid in below), "no Prefect server?"
        done = done_pieces(cache)
        if name == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # a terminal sends it to the whole foreground group
        else:  # the build alone: what it started must stop with it
            os.kill(proc.pid, signal.SIGTERM if name == "kill" else signal.SIGKILL)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_everything(proc)
            pytest.fail(f"{name}: the build was still running 30 s later:\n{log.read_text()[-3000:]}")
        deadline = time.monotonic() + 10  # the kernel's parent-death signals, then their own exits
        while (alive := [pid for pid in below if Path(f"/proc/{pid}").exists()]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, f"{name}: left running: {[cmdline(p)[:80] for p in alive]}"
        said = log.read_text()
        if name == "kill -9":
            assert code == -signal.SIGKILL
        else:
            last = "interrupted" if name == "ctrl-c" else "stopped (SIGTERM)"
            assert code == (130 if name == "ctrl-c" else 143), said[-3000:]
            assert said.rstrip().endswith(last) and "Traceback" not in said, said[-3000:]
            # the pieces being rendered were stopped and cleared away, not finished first
            assert done_pieces(cache) == done and not piece_temporaries(cache)
    assert not (root / "out-stop" / "spec" / "preview" / "episode.mp4").exists()


def test_a_stop_ends_running_ffmpegs_at_once_and_starts_no_more(monkeypatch):
    """What a Ctrl-C does to the media engine: the render running (here one that would take 10 min)
    ends at once, as ``Interrupted``, never as an FfmpegError a caller could take for bad media."""
    from render.core import ffmpeg

    monkeypatch.setattr(ffmpeg, "_stopping", threading.Event())  # this process goes on after the test
    failed: list[BaseException] = []

    def render() -> None:
        try:
            ffmpeg.run(["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                        "-t", "600", "-f", "null", "-"], timeout_s=900)
        except BaseException as exc:  # noqa: BLE001 - what the thread ended with is the assertion
            failed.append(exc)

    worker = threading.Thread(target=render)
    worker.start()
    deadline = time.monotonic() + 10
    while not ffmpeg._running and time.monotonic() < deadline:
        time.sleep(0.01)
    [proc] = ffmpeg._running
    started = time.monotonic()
    ffmpeg.stop_all()
    worker.join(10)
    assert not worker.is_alive() and time.monotonic() - started < 3
    assert isinstance(failed[0], ffmpeg.Interrupted) and proc.returncode == -9
    with pytest.raises(ffmpeg.Interrupted):  # nothing new starts
        ffmpeg.run(["ffmpeg", "-version"], timeout_s=10)
    assert not ffmpeg._running


def test_stale_leftovers_are_swept_and_fresh_ones_kept(tmp_path):
    """What a dead build leaves in the cache goes once untouched for an hour; a live one's stays."""
    from render.core.outputs import STALE_AFTER_S, sweep_stale

    cache = tmp_path / "cache"
    done = cache / "pieces" / "preview" / "ab" / "abcd"
    done.mkdir(parents=True)
    (done / "video.mp4").write_bytes(b"x")
    dead = cache / "pieces" / "preview" / "ab" / ".abcd.k2j3.part"
    live = cache / "pieces" / "preview" / "ab" / ".abcd.z9y8.part"
    dead_json = cache / "probe" / "cd" / ".cdef.q1w2.json.part"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "video.mp4").write_bytes(b"half")
    dead_json.parent.mkdir(parents=True)
    dead_json.write_text("{")
    old = time.time() - STALE_AFTER_S - 60
    for p in (dead, dead / "video.mp4", dead_json, done, done / "video.mp4"):
        os.utime(p, (old, old))
    os.utime(live, (old, old))  # a live render's folder is old, but ffmpeg is writing inside it right now

    removed = sweep_stale(cache)
    assert sorted(removed) == sorted([dead, dead_json])
    assert live.exists() and (done / "video.mp4").exists()


def test_one_build_per_output_and_a_dead_builds_temporaries_go(tmp_path):
    """The lock around compose: a second build of the same output is a one-line error; under the lock a
    dead build's half-written episode goes at once, other temporaries once they are a minute old."""
    from render.core.errors import UserError
    from render.core.outputs import STALE_SMALL_AFTER_S, output_lock

    folder = tmp_path / "out" / "spec" / "preview"
    folder.mkdir(parents=True)
    episode = folder / "episode.mp4"
    half = folder / ".episode.k2j3x9.mp4.part"
    half.write_bytes(b"\0" * 1000)
    old_report, young_report = folder / ".credits.a1b2.txt.part", folder / ".build.c3d4.json.part"
    old_report.write_text("Dir")
    young_report.write_text("{")  # could be another build writing its report right now
    old = time.time() - STALE_SMALL_AFTER_S - 5
    os.utime(old_report, (old, old))
    (folder / "build.json").write_text("{}")

    with output_lock(episode):
        assert not half.exists() and not old_report.exists()
        assert young_report.exists() and (folder / "build.json").exists()
        with pytest.raises(UserError, match="another build is writing it"), output_lock(episode):
            pass
    with output_lock(episode):  # released when the build is done
        pass
