"""The README's main job: the 22-minute demo preview from the generated call-out.

The demo's cut (intake, analysis, the plan, its credits, ledger and intake report, written by the
build's own writers) is checked on every run; rendering all 22 minutes (the encode of pieces every
shorter build also renders, tests/end_to_end/test_build.py) is the ``slow`` test below and the
benchmark (bench/bench_demo.py)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.callouts import expected_credited, submissions
from tests.support.media import ffprobe


def _demo_spec(demo, work: Path) -> Path:
    spec = (REPO / "episode_specs" / "demo.yaml").read_text()
    assert "callout: ../callouts/demo" in spec
    (work / "demo.yaml").write_text(spec.replace("callout: ../callouts/demo", f"callout: {demo.root}"))
    return work / "demo.yaml"


@pytest.fixture(scope="module")
def demo_cut(demo, tmp_path_factory, prefect_harness, cache_dir):
    """The demo spec planned as a build plans it, with the files a build writes about the cut
    (build.json's segments and records, credits, the ledger, intake.json), without the render."""
    from prefect import flow

    from flows import runners
    from flows.pipeline import WORKERS, plan_episode
    from render.core.house import profile
    from render.deliver import credits as credits_mod
    from render.deliver import ledger as ledger_mod
    from render.edit.spec import load_spec

    work = tmp_path_factory.mktemp("demo-cut")
    spec = load_spec(str(_demo_spec(demo, work)))

    @flow(name="plan-demo", task_runner=runners.ThreadPool(max_workers=WORKERS))
    def plan():
        return plan_episode(spec, str(cache_dir))

    report, _, timeline, credits = plan()
    folder = work / "out"
    folder.mkdir()
    credits_mod.write(credits, folder)
    ledger_mod.write(ledger_mod.compute(timeline, report.callout, spec.pool_cents, spec.upstream_share), folder)
    (folder / "intake.json").write_text(json.dumps(report.to_json(profile("preview"), spec.fit)))
    build = {"records_used": list(timeline.records_used()), "segments": timeline.to_json()["segments"]}
    (folder / "build.json").write_text(json.dumps(build))
    return demo.root, folder, timeline


@pytest.fixture(scope="module")
def demo_build(demo, tmp_path_factory, prefect_harness, cache_dir):
    work = tmp_path_factory.mktemp("demo-episode")
    from flows.pipeline import build_flow

    report = build_flow(str(_demo_spec(demo, work)), "preview", str(work / "out"), str(cache_dir))
    return demo.root, work / "out" / "demo" / "preview", report


def test_demo_cut_lands_on_22_minutes_to_the_frame(demo_cut):
    _, _, timeline = demo_cut
    assert timeline.frames == round(22 * 60 * Fraction(30000, 1001))
    assert timeline.segments[0].start_frame == 0
    assert all(a.end_frame == b.start_frame for a, b in zip(timeline.segments, timeline.segments[1:]))


@pytest.mark.slow
def test_demo_preview_is_22_minutes_of_house_format(demo_build):
    _, folder, _ = demo_build
    info = ffprobe(folder / "episode.mp4")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert abs(float(info["format"]["duration"]) - 22 * 60) <= 0.5
    assert int(video["nb_frames"]) == round(22 * 60 * Fraction(30000, 1001))
    assert (video["width"], video["height"], video["r_frame_rate"]) == (960, 540, "30000/1001")
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)


def test_demo_uses_only_released_records_and_features_r0042(demo_cut):
    callout, folder, _ = demo_cut
    build = json.loads((folder / "build.json").read_text())
    table = submissions(callout)
    used = build["records_used"]
    assert len(used) > 40
    assert all(table[r]["released"] == "yes" for r in used)
    goggles = next(s for s in build["segments"] if s["id"] == "goggles")
    assert goggles["records"] == ["R0042"]
    assert [s["id"] for s in build["segments"]] == ["cold-open", "title", "goggles", "act-one", "voices", "fill",
                                                    "credits"]


def test_demo_credits_are_exactly_the_lineage_of_the_cut(demo_cut):
    callout, folder, _ = demo_cut
    used = json.loads((folder / "build.json").read_text())["records_used"]
    credits = json.loads((folder / "credits.json").read_text())
    assert {p["username"].lower() for p in credits["people"]} == expected_credited(callout, used)
    upstream = [p for p in credits["people"] if "Remixed from the work of" in p["roles"]]
    assert upstream and all(len(path) >= 2 for p in upstream for path in p["remixed_via"])


def test_demo_broken_uploads_are_quarantined_with_reasons(demo_cut):
    _, folder, _ = demo_cut
    reasons = {q["record"]: q["reason"] for q in json.loads((folder / "intake.json").read_text())["quarantined"]}
    assert reasons["R0102"] == "empty file (0 bytes)"
    for rid in ("R0073", "R0098", "R0039"):
        assert rid in reasons and reasons[rid]
    assert all("release" in reasons[r] for r in ("R0016", "R0062", "R0166"))


def test_demo_ledger_pays_exactly_the_credited_and_sums_to_the_pool(demo_cut):
    import csv

    _, folder, _ = demo_cut
    with open(folder / "ledger.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sum(int(r["cents"]) for r in rows) == 2_500_000
    credited = {p["username"].lower() for p in json.loads((folder / "credits.json").read_text())["people"]}
    assert {r["username"].lower() for r in rows} == credited
    assert all(int(r["cents"]) > 0 for r in rows)


@pytest.mark.slow
def test_demo_preview_passes_qc_and_lists_what_the_timeline_made_still_or_silent(demo_build):
    _, folder, _ = demo_build
    qc = json.loads((folder / "qc.json").read_text())
    failed = {name: c for name, c in qc["checks"].items() if not c["passed"]}
    assert not failed, json.dumps(failed, indent=1)[:3000]
    assert qc["checks"]["freeze"]["expected"] and qc["checks"]["silence"]["expected"]  # cards, credits, stills
    assert json.loads((folder / "build.json").read_text())["qc"]["passed"] is True
