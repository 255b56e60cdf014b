"""`remixtv build --watch`: an editor saves the spec (or a transcript beside it), the cut rebuilds and
says what changed; a mistake is reported and the watch goes on."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support import REPO
from tests.support.callouts import submission, write_project
from tests.support.processes import cmdline, descendants

SPEC = """\
title: "RE: Watching"
callout: callout
runtime: "0:14"
segments:
  - {{id: title, type: card, text: "{text}", seconds: 3}}
  - {{id: frog, type: feature, record: V1, max_seconds: 5}}
  - {{id: rest, type: fill}}
"""


class _Lines:
    def __init__(self, stream):
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.q.put(line) for line in stream], daemon=True).start()

    def until(self, needle: str, timeout: float = 240) -> list[str]:
        """Lines read up to and including the first one containing ``needle``."""
        got, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=1)
            except queue.Empty:
                continue
            got.append(line.rstrip("\n"))
            self.seen.append(got[-1])
            if needle in line:
                return got
        raise AssertionError(f"no {needle!r} within {timeout} s; output so far:\n" + "\n".join(self.seen[-60:]))


def test_watch_rebuilds_on_save_and_says_what_changed(tmp_path, cache_dir):
    spec = write_project(tmp_path, [
        submission("V1", "video", "Frog", "ana", "frog_toy_h264_aac_720x480_30fps.mp4"),
        submission("V2", "video", "Green", "bo", "greenscreen_man_h264_aac_1280x720_30fps.mp4"),
    ], [("ana", "Ana", "MX"), ("bo", "Bo", "CN")], SPEC.format(text="One"), name="ep.yaml")
    env = dict(os.environ, REMIXTV_CACHE=str(cache_dir), COLUMNS="200", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "build", str(spec), "--watch",
                             "--out", str(tmp_path / "out")], cwd=REPO, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    lines = _Lines(proc.stderr)
    try:
        lines.until("watching")
        build = tmp_path / "out" / "ep" / "preview" / "build.json"
        first = json.loads(build.read_text())
        time.sleep(1.1)  # a different mtime second, as a person saving would make

        spec.write_text(SPEC.format(text="Two"))  # one segment changes
        said = lines.until("rebuilt")
        assert any("~ title: re-rendered" in line for line in said), said
        assert not any(line.startswith(("~ frog", "~ rest")) for line in said), said
        done = next(line for line in said if "rebuilt" in line)
        assert f"1 of {first['pieces']['total']} pieces rendered" in done and "rewritten" in done, done

        spec.write_text(SPEC.format(text="Three").replace("max_seconds", "max_secs"))  # a typo
        said = lines.until("fix the spec and save again")
        assert any(f"{spec}:6: segments[1].max_secs" in line for line in said), said
        assert proc.poll() is None  # a mistake never ends the watch

        spec.write_text(SPEC.format(text="Two"))  # back to a cut already rendered: nothing to render
        said = lines.until("rebuilt")
        done = next(line for line in said if "rebuilt" in line)
        assert "0 of" in done and "episode unchanged" in done, done  # no media work at all

        # `kill PID`, as a service manager or `timeout` sends: the watch stops as it does on Ctrl-C,
        # and takes Prefect's temporary server (a child in a session of its own) with it
        server = [pid for pid in descendants(proc.pid) if b"uvicorn" in cmdline(pid)]
        assert server, "the watch should run Prefect's temporary server"
        proc.send_signal(signal.SIGTERM)
        lines.until("stopped watching", timeout=30)
        assert proc.wait(30) == 0, lines.seen[-20:]
        assert not [pid for pid in server if Path(f"/proc/{pid}").exists()], "the Prefect server outlived the watch"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def test_a_saved_transcript_rebuilds_from_when_the_folder_appears(tmp_path):
    """transcripts/ beside the spec is read by every build (an editor's corrections of the captions), so
    saving, changing or removing a transcript rebuilds; other files beside the spec do not."""
    from flows.watch import watch

    spec = tmp_path / "ep.yaml"
    spec.write_text("title: T\n")
    (tmp_path / "notes.txt").write_text("read by no build")
    said: list[str] = []
    builds: list[float] = []
    done = threading.Event()

    def build() -> dict:
        builds.append(time.monotonic())
        return {"segments": [], "duration": "00:00:01;00", "warnings": [], "episode_rewritten": True,
                "pieces": {"rendered": 0, "total": 1},
                "captions": {"captions": len(builds), "speech_seconds": {"transcript": 1.5}, "unreviewed": []}}

    def until(count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(builds) < count:
            assert time.monotonic() < deadline, f"{count - 1} rebuilds expected; said: {said}"
            time.sleep(0.05)

    watching = threading.Thread(target=watch, args=(spec, build, said.append),
                                kwargs={"stop": done.is_set, "debounce_ms": 50}, daemon=True)
    watching.start()
    try:
        until(1)
        folder = tmp_path / "transcripts"
        folder.mkdir()  # a new folder, written into at once: saved before a watcher may be looking at it
        (folder / "V1.txt").write_text("The quick brown fox\n")
        until(2)
        assert "transcripts/V1.txt saved" in said and "~ captions: 2 captions (1.5 s transcript)" in said, said
        (folder / "V1.txt").write_text("The quick brown fox jumps\n")
        until(3)
        (folder / ".V1.txt.swp").write_text("an editor's working file")
        (tmp_path / "notes.txt").write_text("still read by no build")
        time.sleep(1.5)  # three quiet wake-ups
        assert len(builds) == 3, said
        shutil.rmtree(folder)
        until(4)
        assert "transcripts/V1.txt removed" in said, said
    finally:
        done.set()
        watching.join(10)
    assert not watching.is_alive()
