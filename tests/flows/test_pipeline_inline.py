"""Warm intake and analysis run inline in their flows: a rebuild whose records are all in the cache
maps no task runs (their bookkeeping made Prefect's SQLite answer "database is locked", and its
client waits a fixed 2 s); records that need work still go to tasks. Real Prefect, real media."""

from __future__ import annotations

import time

from tests.support.callouts import submission, write_callout

MEDIA = [("frog_toy_h264_aac_720x480_30fps.mp4", "video"), ("outfoxing_the_fox_music_mp3_44k_stereo.mp3", "music"),
         ("librispeech_reading_vorbis_22k_mono.ogg", "voice"), ("bunny_vp8_vorbis_320x240_30fps.webm", "animation")]


def _task_runs(state) -> set[str]:
    """Names of the task runs Prefect recorded under a flow run and its subflows (a subflow shows
    in its parent as a task run named after it)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        top = state.state_details.flow_run_id
        runs = [top] + [r.id for r in client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[top])))]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)))
    return {t.name.rsplit("-", 1)[0] for t in tasks}


def test_a_warm_intake_and_analysis_map_no_task_runs_and_find_the_same(tmp_path, prefect_harness):
    from prefect import flow

    from flows.pipeline import analyze_flow, intake_flow
    from flows.runners import using

    rows = [submission(f"R{i}", kind, name, "ana", name) for i, (name, kind) in enumerate(MEDIA)]
    folder = write_callout(tmp_path / "callout", rows, [("ana", "Ana", "MX")])

    @flow(name="intake-and-analysis")
    def both(cache_root: str):
        report = using(intake_flow)(str(folder), cache_root)
        return report, using(analyze_flow)(report, cache_root)[0]

    cold = both(str(tmp_path / "cache"), return_state=True)
    warm = both(str(tmp_path / "cache"), return_state=True)
    (r1, a1), (r2, a2) = cold.result(), warm.result()
    assert sorted(r1.sources) == sorted(r2.sources) == ["R0", "R1", "R2", "R3"]
    assert a1 == a2 and set(a1.loudness) == {"R0", "R1", "R2", "R3"} and "R1" in a1.audio
    assert {"intake-records", "analyze-records"} <= _task_runs(cold)  # the work went to tasks
    assert _task_runs(warm) == {"intake", "analyze"}  # only the two subflows: every record read inline


def test_the_first_real_work_and_a_failure_go_to_tasks_in_their_own_order(prefect_harness):
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from flows.pipeline import CACHE_HIT_S, _inline_then_tasks

    inline: list[str] = []

    @task(cache_policy=NO_CACHE)
    def in_task(chunk: list[str]) -> list[str]:
        return [f"task {x}" for x in chunk]

    def work(x: str) -> str:
        inline.append(x)
        if x in ("a", "d"):  # a is tried first and pays one-time imports; d is a cache miss
            time.sleep(CACHE_HIT_S * 3)
        if x == "f":
            raise OSError(5, "Input/output error")  # transient: its task retries it
        return f"inline {x}"

    @flow
    def run(items: list[str]) -> list[str]:
        return _inline_then_tasks(items, work, lambda x: x, in_task.map, "test", lambda r: r)

    assert run(["e", "d", "c", "b", "a", "f"]) == ["task e", "inline d", "inline c", "inline b", "inline a",
                                                     "task f"]
    assert inline == ["a", "b", "c", "d"]  # nothing past the miss is touched inline
    inline.clear()
    assert run(["g", "f", "b"]) == ["task g", "task f", "inline b"]  # b inline, then f fails: f and g to tasks
    assert inline == ["b", "f"]

