"""The nightly preview deployment, served against a real Prefect server on loopback.

One module fixture starts ``prefect server start`` and ``remixtv nightly serve`` as subprocesses,
triggers the deployment once and waits for it; the tests then check what the run left behind:
the episode on disk, the artifacts on the server and the deployment's schedule.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo

import pytest

from tests.support import REPO, numba_cache
from tests.support.callouts import expected_credited, submission, write_callout
from tests.support.media import ffprobe

PREFECT = REPO / ".venv" / "bin" / "prefect"
DEPLOYMENT = "nightly-previews/nightly"
ZONE = "Asia/Kolkata"  # UTC+05:30 all year: a schedule that ignored the zone would be off
CONTRIBUTORS = [("ana", "Ana Lucía Pérez", "MX"), ("bo", "Bo Chen 陈波", "CN"), ("kim", "Kim Unused", "KR")]

SMALL = """\
title: "RE: Nightly"
callout: ../callouts/small
runtime: "0:08"
segments:
  - {id: title, type: card, text: "RE: Nightly", seconds: 2}
  - {id: logo, type: feature, record: V1, max_seconds: 2}
  - {id: fill, type: fill}
  - {id: credits, type: credits, seconds: 3}
"""
BROKEN = """\
title: "Broken"
callout: ../callouts/small
runtime: "0:08"
segments:
  - {id: title, type: cardd, text: "typo in the type"}
"""
LOST = SMALL.replace("../callouts/small", "../callouts/nowhere")  # no such call-out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """End a process group we started: SIGTERM (the runner pauses its schedule), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


def _wait(what: str, check, timeout: float, procs: dict[str, tuple[subprocess.Popen, Path]]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited ({proc.returncode}) while waiting for {what}:\n{_tail(log)}")
        got = check()
        if got:
            return got
        time.sleep(0.5)
    logs = "\n".join(f"--- {name}\n{_tail(log)}" for name, (_, log) in procs.items())
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def nightly(tmp_path_factory, cache_dir, numba_warm):
    """A served nightly deployment on a loopback Prefect server, triggered once and finished."""
    root = tmp_path_factory.mktemp("nightly")
    write_callout(root / "callouts" / "small", [
        submission("V1", "video", "Logo", "ana:director", "cc_logo_h264_aac_640x480_29.97fps.mp4"),
        submission("V2", "animation", "Pigs", "bo", "pigs_in_a_polka_animated_314x273_10fps.gif", remix_of="V1"),
    ], CONTRIBUTORS)
    specs = root / "specs"
    specs.mkdir()
    (specs / "small.yaml").write_text(SMALL)
    (specs / "broken.yaml").write_text(BROKEN)
    (specs / "lost.yaml").write_text(LOST)
    # twelve hours from now there, so the schedule never fires during the test
    later = datetime.now(ZoneInfo(ZONE)) + timedelta(hours=12)
    cron = f"{later.minute} {later.hour} * * *"

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect-home"), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    procs: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        with open(root / "server.log", "w") as log:
            procs["prefect server"] = (subprocess.Popen(
                [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), root / "server.log")
        _wait("the Prefect server's /api/health", lambda: _healthy(api), 120, procs)

        # librosa's numba JIT cache where a default build keeps it: a fresh one costs ~30 s of compiling
        # (machine code, not media: the media cache of this test stays its own)
        runner_env = {**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                      "NUMBA_CACHE_DIR": numba_cache()}
        with open(root / "runner.log", "w") as log:
            procs["remixtv nightly serve"] = (subprocess.Popen(
                [sys.executable, "-m", "flows.cli", "nightly", "serve", "--specs", "specs", "--out", "out",
                 "--cache", str(cache_dir), "--cron", cron, "--timezone", ZONE],
                cwd=root, env=runner_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
                root / "runner.log")

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            def deployment():
                try:
                    return client.read_deployment_by_name(DEPLOYMENT)
                except ObjectNotFound:
                    return None

            _wait("the deployment to be registered", deployment, 90, procs)
            started = time.monotonic()
            run = run_deployment(DEPLOYMENT, timeout=0)
            run = _wait("the nightly run to finish",
                        lambda: (r := client.read_flow_run(run.id)).state.is_final() and r, 300, procs)
            seconds = time.monotonic() - started
            print(f"\nnightly run: {run.state.type.value} in {seconds:.1f} s")
            artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            upcoming = _wait("the scheduler to plan the next nightly runs", lambda: [
                r for r in client.read_flow_runs(limit=20) if r.deployment_id == run.deployment_id
                and r.state.is_scheduled()], 60, procs)
            yield {"root": root, "run": run, "artifacts": {a.key: a for a in artifacts if a.key},
                   "deployment": deployment(), "upcoming": upcoming, "cron": cron, "api": api}
    finally:
        for proc, _ in reversed(list(procs.values())):
            _stop(proc)


def test_the_run_builds_the_valid_spec_and_ends_failed_naming_the_broken_ones(nightly):
    run = nightly["run"]
    assert run.state.is_failed(), run.state
    assert "2 of 3 previews failed" in run.state.message
    assert "broken.yaml" in run.state.message and "lost.yaml" in run.state.message


def test_episode_is_the_house_preview_at_the_spec_runtime(nightly):
    folder = nightly["root"] / "out" / "small" / "preview"
    info = ffprobe(folder / "episode.mp4")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["width"], video["height"], video["r_frame_rate"]) == (
        "h264", 960, 540, "30000/1001")
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)
    assert int(video["nb_frames"]) == 240  # 8 s at 30000/1001, to the nearest frame
    assert abs(float(info["format"]["duration"]) - 240 * 1001 / 30000) < 0.05


def test_credits_name_the_contributors_of_the_cut(nightly):
    root = nightly["root"]
    folder = root / "out" / "small" / "preview"
    used = json.loads((folder / "build.json").read_text())["records_used"]
    credited = expected_credited(root / "callouts" / "small", used)
    assert "ana" in credited
    text = (folder / "credits.txt").read_text()
    names = {u: n for u, n, _ in CONTRIBUTORS}
    assert all(names[u] in text for u in credited)
    assert names["kim"] not in text


def test_summary_artifact_shows_the_build_and_each_broken_specs_error(nightly):
    summary = nightly["artifacts"]["nightly-summary"]
    assert summary.type == "markdown"
    md = summary.data
    assert re.search(r"\*\*3 specs: 1 built( \(1 failing QC\))?, 2 failed\*\*", md)
    assert "RE: Nightly (small.yaml)" in md and "(240 frames)" in md
    assert "broken.yaml:5: segments[0].type: unknown type 'cardd'" in md
    assert "callouts/nowhere: no such call-out folder" in md
    assert (nightly["root"] / "out" / "nightly.md").read_text() == md
    build = json.loads((nightly["root"] / "out" / "small" / "preview" / "build.json").read_text())
    if "qc" in build:  # QC and loudness are reported by builds that measure them
        assert re.search(r"\| QC \| (pass|FAIL)", md)
        assert f"| loudness | {build['loudness']['integrated_lufs']:.1f} LUFS" in md


def test_segments_table_artifact_has_every_segment_of_the_built_preview(nightly):
    table = nightly["artifacts"]["nightly-segments"]
    assert table.type == "table"
    rows = json.loads(table.data)
    assert [r["segment"] for r in rows] == ["title", "logo", "fill", "credits"]
    assert {r["spec"] for r in rows} == {"small.yaml"}
    assert sum(r["frames"] for r in rows) == 240
    assert all(a["end"] == b["start"] for a, b in pairwise(rows))
    assert rows[1]["records"] == "V1" and rows[0]["start"] == "00:00:00.000" and rows[-1]["end"] == "00:00:08.008"


def test_link_artifacts_point_at_the_outputs(nightly):
    folder = nightly["root"] / "out" / "small" / "preview"
    for key, name in (("nightly-small-episode", "episode.mp4"), ("nightly-small-credits", "credits.txt"),
                      ("nightly-small-build", "build.json"), ("nightly-small-index", "review/index.html")):
        link = nightly["artifacts"][key]
        assert link.type == "markdown"  # how Prefect 3 stores a link artifact: "[text](uri)"
        assert link.data.startswith(f"[small: {name}](")
        uri = link.data[link.data.index("](") + 2:-1]
        assert uri.startswith("file://") and Path(unquote(urlparse(uri).path)) == folder / name


def test_deployment_schedule_is_the_cron_in_the_configured_time_zone(nightly):
    (schedule,) = [s.schedule for s in nightly["deployment"].schedules]
    assert (schedule.cron, schedule.timezone) == (nightly["cron"], ZONE)
    minute, hour = map(int, nightly["cron"].split()[:2])
    for run in nightly["upcoming"]:  # the server plans them at that wall-clock time there
        local = run.expected_start_time.astimezone(ZoneInfo(ZONE))
        assert (local.hour, local.minute) == (hour, minute)
    params = nightly["deployment"].parameters
    assert params["specs_dir"] == str(nightly["root"] / "specs") and params["out_dir"] == str(nightly["root"] / "out")


def test_nightly_run_once_reuses_the_cache_and_reports_per_spec(nightly, cache_dir, capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import main

    root = nightly["root"]
    with temporary_settings(updates={PREFECT_API_URL: nightly["api"]}):
        code = main(["nightly", "run", "--specs", str(root / "specs"), "--out", str(root / "again"),
                     "--cache", str(cache_dir)])
    out, err = capsys.readouterr()
    assert code == 1  # only spec and call-out problems failed
    assert "ok      small.yaml: RE: Nightly, 00:00:08.008 (240 frames), 2 records, 2 credited" in out
    assert "FAILED  broken.yaml:" in err and "unknown type 'cardd'" in err and "FAILED  lost.yaml:" in err
    again = json.loads((root / "again" / "nightly.json").read_text())
    (small,) = [r for r in again["results"] if r["ok"]]
    assert small["pieces_rendered"] == 0 and small["pieces_cached"] == 4  # the nightly run before rendered them
    assert ffprobe(root / "again" / "small" / "preview" / "episode.mp4")["streams"][0]["nb_frames"] == "240"


def test_schedule_defaults_env_and_flags(monkeypatch):
    from flows.nightly import schedule_from

    monkeypatch.delenv("REMIXTV_NIGHTLY_CRON", raising=False)
    monkeypatch.delenv("REMIXTV_NIGHTLY_TZ", raising=False)
    assert (schedule_from().cron, schedule_from().timezone) == ("0 3 * * *", "UTC")
    monkeypatch.setenv("REMIXTV_NIGHTLY_CRON", "30 2 * * 1-5")
    monkeypatch.setenv("REMIXTV_NIGHTLY_TZ", "America/New_York")
    assert (schedule_from().cron, schedule_from().timezone) == ("30 2 * * 1-5", "America/New_York")
    assert (schedule_from("0 4 * * *", "Asia/Tokyo").cron, schedule_from("0 4 * * *", "Asia/Tokyo").timezone) == (
        "0 4 * * *", "Asia/Tokyo")


def test_bad_schedule_or_folder_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from flows.cli import main

    monkeypatch.delenv("REMIXTV_NIGHTLY_CRON", raising=False)
    (tmp_path / "s.yaml").write_text(SMALL)
    assert main(["nightly", "serve", "--specs", str(tmp_path), "--timezone", "Europe/Londn"]) == 1
    assert "--timezone: 'Europe/Londn' is not an IANA time zone name" in capsys.readouterr().err
    monkeypatch.setenv("REMIXTV_NIGHTLY_TZ", "Mars/Olympus")
    assert main(["nightly", "serve", "--specs", str(tmp_path)]) == 1
    assert "REMIXTV_NIGHTLY_TZ: 'Mars/Olympus'" in capsys.readouterr().err
    assert main(["nightly", "serve", "--specs", str(tmp_path), "--cron", "3am", "--timezone", "UTC"]) == 1
    assert "--cron: '3am' is not a cron expression" in capsys.readouterr().err
    assert main(["nightly", "run", "--specs", str(tmp_path / "nope")]) == 1
    assert f"{tmp_path / 'nope'}: no such specs folder" in capsys.readouterr().err
    (tmp_path / "s.yaml").unlink()
    assert main(["nightly", "run", "--specs", str(tmp_path)]) == 1
    assert "no *.yaml episode specs to build" in capsys.readouterr().err


def test_serve_without_a_prefect_server_says_how_to_start_one(tmp_path, capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import main

    (tmp_path / "s.yaml").write_text(SMALL)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["nightly", "serve", "--specs", str(tmp_path), "--timezone", "UTC"]) == 1
    assert "PREFECT_API_URL is not set" in capsys.readouterr().err
    port = _free_port()  # nothing listens there
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
        assert main(["nightly", "serve", "--specs", str(tmp_path), "--timezone", "UTC"]) == 1
    assert f"PREFECT_API_URL=http://127.0.0.1:{port}/api: no Prefect server answers there" in capsys.readouterr().err


def test_qc_and_loudness_lines_read_what_builds_report():
    from flows.nightly import loudness_line, qc_status

    qc = {"passed": False, "file": "qc.json", "checks": {
        "duration": {"passed": True, "summary": "00:00:08.008 (240 of 240 frames)"},
        "luma": {"passed": False, "summary": "44 frames out of range (18.33%)"},
        "flash": {"passed": True, "summary": "none"}}}
    assert qc_status(qc) == "FAIL: luma (44 frames out of range (18.33%))"
    qc["passed"], qc["checks"]["luma"]["passed"] = True, True
    assert qc_status(qc) == "pass (3 checks)"
    assert qc_status(None) is None and loudness_line(None) is None
    assert loudness_line({"integrated_lufs": -24.06, "lra_lu": 5.0, "true_peak_dbtp": -2.31}) == \
        "-24.1 LUFS, true peak -2.3 dBTP"
