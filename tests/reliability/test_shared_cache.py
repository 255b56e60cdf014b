"""Two renders of one piece on one cache at once (two builds side by side): one renders, the other waits
for it and takes it from the cache; the piece locks do not pile up in the cache."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from fractions import Fraction

import pytest

from render.compose import store
from render.compose.pieces import Piece
from render.core.cache import Cache, held, sweep_locks
from render.core.house import PROFILES
from render.core.outputs import sweep_stale
from render.edit import plan
from tests.support import REPO
from tests.support.media import corpus, ffprobe, source_of


def test_a_piece_wanted_twice_at_once_is_rendered_once(tmp_path):
    cache = Cache(tmp_path / "cache")
    src = source_of(corpus("carphone_h264_176x144_29.97fps_lowquality.mp4"), cache, kind="video")
    shot = plan.source_shot(src, None, None, max_frames=30, start=Fraction(0), exact=True)
    piece = Piece(src.record.record_id, 0, (shot,))
    got, go = [], threading.Barrier(2)

    def render() -> None:
        go.wait()
        got.append(store.render_piece(piece, {src.record.record_id: src}, PROFILES["preview"], "blur", cache))

    threads = [threading.Thread(target=render) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(r.cached for r in got) == [False, True]
    assert got[0].video == got[1].video and int(ffprobe(got[0].video)["streams"][0]["nb_frames"]) == 30
    assert list((cache.root / "locks").iterdir()) == []  # each lock file went with its lock


HOLD = """
import sys, time
from pathlib import Path
from render.core.cache import held
with held(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(path) -> subprocess.Popen:
    """Another process holding ``path``'s lock until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_killed_renders_lock_is_swept_and_a_held_one_never(tmp_path):
    locks = tmp_path / "cache" / "locks"
    live, dead = _holder(locks / ("a" * 32)), _holder(locks / ("b" * 32))
    waited: list[float] = []

    def wait_for_live() -> None:
        with held(locks / ("a" * 32)):
            waited.append(time.monotonic())

    waiter = threading.Thread(target=wait_for_live)
    try:
        dead.kill()  # a power cut: the kernel lets go of its lock, its file stays
        dead.wait(10)
        assert sorted(p.name for p in locks.iterdir()) == [f".{'a' * 32}.lock", f".{'b' * 32}.lock"]
        assert sweep_stale(tmp_path / "cache") == [locks / f".{'b' * 32}.lock"]
        assert [p.name for p in locks.iterdir()] == [f".{'a' * 32}.lock"]
        fd = os.open(locks / f".{'a' * 32}.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # the sweep left the live holder its lock
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        waiter.start()
        time.sleep(0.3)
        assert waited == []  # a render wanting that piece waits its turn
    finally:
        gone = time.monotonic()
        live.kill()
        live.wait(10)
    waiter.join(10)
    assert len(waited) == 1 and waited[0] >= gone
    assert list(locks.iterdir()) == []


def test_a_lock_removed_on_release_or_by_a_sweep_still_admits_one_holder_at_a_time(tmp_path):
    # a waiter can wake up holding a file that has just lost its name; it must not count as the lock
    lock, inside, overlaps, stop = tmp_path / "locks" / "piece", [0], [], threading.Event()

    def render() -> None:
        for _ in range(300):
            with held(lock):
                inside[0] += 1
                if inside[0] != 1:
                    overlaps.append(inside[0])
                time.sleep(0)
                inside[0] -= 1

    def sweep() -> None:
        while not stop.is_set():
            sweep_locks(lock.parent)

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    renders = [threading.Thread(target=render) for _ in range(4)]
    for t in renders:
        t.start()
    for t in renders:
        t.join(120)
    stop.set()
    sweeper.join(10)
    assert overlaps == [] and list(lock.parent.iterdir()) == []
