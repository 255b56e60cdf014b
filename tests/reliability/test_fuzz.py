"""The fuzzers' fast subset: a few seeded tries of every spec attack and of two upload attacks, and
the spec attacks that once gave a traceback or ran away, as ``remixtv validate`` meets them."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.media import CORPUS

PROBLEM = re.compile(r"^.+\.yaml:\d+: \S")


def fuzz(module: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", module, "--seed", "11", "--out", str(out), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=1500, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "REMIXTV_CORPUS": str(CORPUS)})
    report = json.loads(out.read_text())
    failures = [f for a in report["attacks"] for f in a["failures"]]
    assert done.returncode == 0, done.stdout + done.stderr + "\n".join(failures)
    return report


def test_every_spec_attack_gives_file_line_problems_or_validates(tmp_path):
    report = fuzz("reliability.fuzz_specs", tmp_path, "--count", "24")
    assert len(report["attacks"]) == 8
    for a in report["attacks"]:
        assert a["crashes"] == a["hangs"] == 0 and a["tries"] == 3
        assert a["peak_memory"]["self_mb"] < 200 and a["slowest_call_cpu_s"] < 2


def test_mutated_uploads_are_accepted_or_quarantined_and_the_rest_survive(tmp_path):
    report = fuzz("reliability.fuzz_uploads", tmp_path, "--count", "4", "--attack", "truncation",
                  "--attack", "absurd_fields")
    for a in report["attacks"]:
        assert (a["crashes"], a["hangs"], a["lost"]) == (0, 0, 0)
        assert a["outcomes"]["accepted"] + a["outcomes"]["quarantined"] == a["tries"] + 3  # three controls
        assert a["outcomes"]["built"] == a["outcomes"]["accepted"]
        assert 0 < a["peak_memory"]["largest_child_mb"] < 2048


BOMB = "\n".join(["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                 + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)])


@pytest.mark.parametrize("text,says", [
    (BOMB + "\ntitle: x\n", "expands to over"),                          # a billion laughs
    ("title: x\nloop: &loop [1, *loop]\n", "expands to over"),           # an anchor inside itself
    ("title: x\ndeep: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deep"),
    ("title: x\nruntime: \"1:00\x1b[31m\"\n", "not valid YAML"),          # a control character
])
def test_validate_refuses_runaway_specs_in_one_line(tmp_path, text, says):
    (tmp_path / "ep.yaml").write_text(text, encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "flows.cli", "validate", "ep.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and PROBLEM.match(lines[0]) and says in lines[0], lines
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 2, "over 2 s of CPU"
