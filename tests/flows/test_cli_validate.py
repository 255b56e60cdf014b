"""Spec validation as an editor meets it: `remixtv validate` and its file:line messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO
from tests.support.callouts import write_callout

GOOD = """\
title: "RE: Testing"
callout: callout
runtime: "1:00"
segments:
  - {id: open, type: montage, select: {kinds: [video], limit: 3}, shot_seconds: 2}
  - {id: title, type: card, text: "Hello", seconds: 3}
  - {id: goggles, type: feature, record: R0042}
  - {id: fill, type: fill}
  - {id: credits, type: credits, seconds: 10}
"""

BROKEN = """\
title: "RE: Testing"
callout: callout
runtime: "1:75"
segmnts: []
segments:
  - {id: open, type: montage, select: {kinds: [vidoe], tags: [gogles], limit: 0}, shot_seconds: 2}
  - {id: title, type: card, seconds: 3}
  - id: goggles
    type: feature
    record: R0043
  - {id: title, type: fill}
  - {id: x, type: credit}
"""


def remixtv(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def _callout(tmp_path: Path) -> None:
    write_callout(tmp_path / "callout", [
        {"record_id": "R0042", "file": "media/a.mp4", "kind": "video", "title": "A", "contributors": "ana",
         "tags": "goggles"},
        {"record_id": "R0099", "file": "media/b.mp4", "kind": "video", "title": "B", "contributors": "bo",
         "released": "no"},
    ], [("ana", "Ana", "MX"), ("bo", "Bo", "CN")])


def test_validate_accepts_a_good_spec(tmp_path):
    _callout(tmp_path)
    (tmp_path / "ep.yaml").write_text(GOOD)
    result = remixtv("validate", "ep.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok: 5 segments" in result.stdout


def test_validate_lists_every_error_with_file_and_line(tmp_path):
    _callout(tmp_path)
    (tmp_path / "ep.yaml").write_text(BROKEN)
    result = remixtv("validate", "ep.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "ep.yaml:3: runtime: seconds must be under 60 in '1:75'",
        "ep.yaml:4: segmnts: unknown field (did you mean 'segments'?); allowed: allow_flashes, callout, defaults, deliver, "
        "description, fit, pool_cents, runtime, seed, segments, title, upstream_share, vars",
        "ep.yaml:6: segments[0].select.kinds[0]: unknown kind 'vidoe' (did you mean 'video'?); one of video, "
        "animation, music, voice, photo, illustration, text",
        "ep.yaml:6: segments[0].select.limit: must be a whole number of at least 1",
        "ep.yaml:6: segments[0].select.tags: no record in call-out 'test' is tagged 'gogles' (did you mean 'goggles'?)",
        "ep.yaml:7: segments[1].text: required: the words on the card",
        # the call-out's problems come in the same pass, numbered as written (segments[1] has a problem)
        "ep.yaml:8: segments[2].record: no record R0043 in call-out 'test' (did you mean R0042?)",
        "ep.yaml:11: segments[3].id: 'title' is already the id of segments[1]",
        "ep.yaml:12: segments[4].type: unknown type 'credit' (did you mean 'credits'?); one of card, feature, "
        "montage, song, fill, credits, act_break",
    ]


def test_validate_checks_records_against_the_callout(tmp_path):
    _callout(tmp_path)
    (tmp_path / "ep.yaml").write_text(GOOD.replace("R0042", "R0043") + "  - {id: more, type: feature, record: R0099}\n")
    result = remixtv("validate", "ep.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ep.yaml:7: segments[2].record: no record R0043 in call-out 'test' (did you mean R0042?)",
        "ep.yaml:10: segments[5].record: record R0099 has no signed release (submissions.csv line 3); "
        "it can never appear in a cut",
    ]


def test_validate_reports_a_missing_callout_with_the_specs_own_problems(tmp_path):
    (tmp_path / "ep.yaml").write_text(GOOD.replace('"1:00"', '"1:75"'))
    result = remixtv("validate", "ep.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["ep.yaml:3: runtime: seconds must be under 60 in '1:75'",
                                                  f"{tmp_path / 'callout'}: no such call-out folder"]


def test_missing_spec_and_missing_callout_are_one_line_errors(tmp_path):
    result = remixtv("validate", "nope.yaml", cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (1, "nope.yaml:1: no such spec file")
    (tmp_path / "ep.yaml").write_text(GOOD)
    result = remixtv("build", "ep.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"{tmp_path / 'callout'}: no such call-out folder"
