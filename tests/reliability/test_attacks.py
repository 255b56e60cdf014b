"""The build attacks' fast subset: power cuts at seeded moments, a full cache and a full output
folder, and builds side by side, each through its ``reliability`` script on real builds of a 14 s spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.media import CORPUS

# Whole builds under attack, several each: kept out of the default run (`./run.sh test -m slow` runs
# them). Faster tests hold the same behaviour: end_to_end/test_resume.py (a build killed mid-render and
# mid-join reruns byte-identical, a second writer of one output is refused), reliability/test_disk_full.py
# (a full disk stops in one line and leaves no broken file), reliability/test_shared_cache.py (one piece
# wanted by two builds is rendered once)
pytestmark = pytest.mark.slow


def attack(module: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", module, "--out", str(out), "--workdir", str(tmp_path / "work"),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=3600, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "REMIXTV_CORPUS": str(CORPUS)})
    assert out.exists(), done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert done.returncode == 0, done.stdout + done.stderr + "\n".join(report["failures"])
    return report


def test_a_build_killed_at_random_moments_finishes_identically_and_never_shows_a_half_written_file(tmp_path):
    report = attack("reliability.kills", tmp_path, "--seed", "4", "--count", "3", "--master", "0", "--publish", "0")
    assert report["tries"] == 3 and report["failures"] == []
    assert report["identical_reruns"] == 3  # every killed chain's rerun gave the reference's bytes
    assert report["files_checked"] >= 7  # the watcher saw the finished folders' files appear


@pytest.mark.skipif(os.geteuid() != 0, reason="a small filesystem is a tmpfs mount, which needs root")
def test_a_full_cache_or_output_stops_in_one_line_and_the_rerun_reuses_what_was_complete(tmp_path):
    report = attack("reliability.disk", tmp_path, "--seed", "5", "--count", "2")
    assert [r["place"] for r in report["results"]] == ["cache", "out"]
    for r in report["results"]:
        assert r["exit"] == 1 and "no space left on device" in r["message"] and r["identical"]
    assert "/pieces/" in report["results"][0]["message"]  # the piece being written is named
    assert "episode.mp4" in report["results"][1]["message"]


def test_builds_side_by_side_share_a_cache_and_refuse_a_second_writer_of_one_output(tmp_path):
    report = attack("reliability.side_by_side", tmp_path, "--seed", "2", "--count", "1")
    by = {r["attack"]: r for r in report["results"]}
    assert set(by) == {"one cache", "one output", "nightly beside an editor"}
    assert "another build is writing it" in by["one output"]["message"]
    pieces = by["one cache"]["pieces"]
    assert pieces["one"]["rendered"] + pieces["two"]["rendered"] == 8  # 10 pieces, 2 of them the same
