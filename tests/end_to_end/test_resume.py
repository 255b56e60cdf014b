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
import threading
import time
from pathlib import Path

import pytest

from tests.support.callouts import six_pieces
from tests.support.media import framemd5
from tests.support.processes import (
    cli_env,
    cmdline,
    descendants,
    finish,
    interruptible,
    kill_everything,
    start_build,
    wait_for,
)


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


@pytest.fixture(scope="module")
def project(tmp_path_factory, numba_warm):
    root = tmp_path_factory.mktemp("resume")
    return root, six_pieces(root), cli_env()


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
