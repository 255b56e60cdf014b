"""The pipeline as Prefect 3 flows: intake -> normalize -> analyze -> plan -> compose -> credits.

Tasks are thin wrappers around ``render`` functions. Caching is ours, by content hash (see
``render.cache``), not Prefect's: Prefect's input-based keys cannot see a file's bytes change,
so every task here uses ``NO_CACHE`` and stays cheap to re-run. Independent work (probing
records, measuring loudness, rendering pieces) runs in parallel on a thread pool: the work is
in ffmpeg subprocesses, so threads are enough and keep results in memory.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from render import __version__, compose, normalize
from render import credits as credits_mod
from render import ledger as ledger_mod
from render.analysis import loudness
from render.cache import Cache, write_text_atomic
from render.callout import CallOut, Record, load_callout
from render.errors import FfmpegError
from render.house import HouseFormat
from render.house import profile as house_profile
from render.intake import Quarantined, Source, intake_record
from render.plan import Analysis, plan, source_shot
from render.spec import check_against, load_spec
from render.timebase import timecode, to_seconds
from render.timeline import Timeline

from . import progress

WORKERS = max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class IntakeReport:
    callout: CallOut
    sources: dict[str, Source]
    quarantined: tuple[Quarantined, ...]

    def to_json(self, house: HouseFormat, fit_mode: str) -> dict:
        return {
            "schema": "remixtv.intake/1", "callout": self.callout.id, "root": str(self.callout.root),
            "accepted": [{"record": s.record.record_id, "kind": s.record.kind, "file": s.record.file,
                          "as": s.visual, "sha256": s.content_hash,
                          "duration_s": float(s.duration_s) if s.duration_s else None,
                          "conform": normalize.describe(s.media, house, fit_mode) if s.media else {"text": True}}
                         for s in self.sources.values()],
            "quarantined": [{"record": q.record.record_id, "file": q.record.file, "line": q.record.line,
                             "reason": q.reason, "evidence": q.evidence[-2000:]} for q in self.quarantined],
            "warnings": list(self.callout.warnings),
        }


def _chunks(items: list, per_worker: int = 4) -> list[list]:
    """Split work into a few chunks per worker: each Prefect task run costs tens of milliseconds
    of bookkeeping, which a per-record task would pay hundreds of times on every build."""
    size = max(1, -(-len(items) // (WORKERS * per_worker)))
    return [items[i:i + size] for i in range(0, len(items), size)]


@task(name="intake-records", cache_policy=NO_CACHE)
def intake_records_task(callout: CallOut, records: list[Record], cache_root: str) -> list[Source | Quarantined]:
    cache, results = Cache(Path(cache_root)), []
    for record in records:
        results.append(intake_record(callout, record, cache))
        progress.update("intake", record.record_id, 1)
    return results


@flow(name="intake", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS * 2))
def intake_flow(callout_dir: str, cache_root: str) -> IntakeReport:
    """Read a call-out folder; accept or quarantine (with a reason) every record."""
    callout = load_callout(callout_dir)
    progress.start("intake", len(callout.records), "intake")
    futures = intake_records_task.map(unmapped(callout), _chunks(list(callout.records)), unmapped(cache_root))
    results = [r for f in futures for r in f.result()]
    progress.finish("intake")
    sources = {r.record.record_id: r for r in results if isinstance(r, Source)}
    return IntakeReport(callout, sources, tuple(r for r in results if isinstance(r, Quarantined)))


@task(name="loudness", cache_policy=NO_CACHE)
def loudness_task(sources: list[Source], cache_root: str) -> list[loudness.Loudness | Quarantined]:
    return [_loudness(source, cache_root) for source in sources]


def _loudness(source: Source, cache_root: str) -> loudness.Loudness | Quarantined:
    """Loudness of a record's sound, cached by content; sound that cannot be decoded quarantines
    the record (it could not be rendered either)."""
    try:
        return loudness.measure_source(source, Cache(Path(cache_root)),
                                       timeout_s=120 + 2 * float(source.media.duration_s or 1))
    except FfmpegError as exc:
        return Quarantined(source.record, f"sound could not be decoded ({exc.reason})", str(exc))
    finally:
        progress.update("analyze", source.record.record_id, 1)


@flow(name="analyze", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def analyze_flow(report: IntakeReport, cache_root: str) -> tuple[Analysis, IntakeReport]:
    """Measure what the planner needs: duration (from intake) and loudness of every sound.

    Returns the analysis and the intake report less any record whose analysis failed.
    """
    audible = [s for s in report.sources.values() if s.media and s.media.audio]
    progress.start("analyze", len(audible), "analyze")
    futures = loudness_task.map(_chunks(audible), unmapped(cache_root))
    measured_or_not = [r for f in futures for r in f.result()]
    results = {s.record.record_id: r for s, r in zip(audible, measured_or_not)}
    progress.finish("analyze")
    failed = tuple(r for r in results.values() if isinstance(r, Quarantined))
    if failed:
        bad = {q.record.record_id for q in failed}
        report = IntakeReport(report.callout, {k: v for k, v in report.sources.items() if k not in bad},
                              report.quarantined + failed)
    measured = {k: v for k, v in results.items() if isinstance(v, loudness.Loudness)}
    return Analysis(loudness=measured), report


@task(name="render-piece", cache_policy=NO_CACHE)
def render_piece_task(piece: compose.Piece, sources: dict[str, Source], profile: str, fit_mode: str,
                      cache_root: str) -> compose.RenderedPiece:
    key = f"{piece.segment_id}/{piece.index}"
    result = compose.render_piece(piece, sources, house_profile(profile), fit_mode, Cache(Path(cache_root)),
                                  progress=progress.callback("render", key, piece.frames))
    progress.update("render", key, piece.frames)
    return result


@flow(name="compose", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def compose_flow(timeline: Timeline, sources: dict[str, Source], profile: str, fit_mode: str, cache_root: str,
                 out_file: str) -> tuple[list[compose.RenderedPiece], bool]:
    """Render every piece in parallel (cached ones are free), then join by stream copy.

    Returns the pieces and whether the episode file was (re)written.
    """
    house = house_profile(profile)
    parts = compose.pieces(timeline)
    progress.start("render", timeline.frames, "render")
    futures = render_piece_task.map(parts, unmapped(sources), unmapped(profile), unmapped(fit_mode),
                                    unmapped(cache_root))
    rendered = [f.result() for f in futures]
    progress.finish("render")
    progress.start("join", float(to_seconds(timeline.frames, house.rate)), "join")
    joined = compose.join(rendered, house, Path(out_file), title=timeline.title,
                          progress=progress.callback("join", "join", float(to_seconds(timeline.frames, house.rate))))
    progress.finish("join")
    return rendered, joined


@task(name="write-clip", cache_policy=NO_CACHE)
def write_clip_task(source: Source, callout: CallOut, loud: loudness.Loudness | None, profile: str, fit_mode: str,
                    cache_root: str, clips_dir: str) -> str | Quarantined:
    """One accepted record, conformed to the house format, as ``<clips_dir>/<record_id>.mp4``."""
    shot = source_shot(source, callout, loud)
    if shot is None:
        return Quarantined(source.record, "too short to show (under half a second)")
    out = Path(clips_dir) / f"{source.record.record_id}.mp4"
    try:
        compose.write_clip(source, shot, house_profile(profile), fit_mode, Cache(Path(cache_root)), out)
    except FfmpegError as exc:
        said = [line for line in exc.stderr_tail.splitlines() if line.strip()]
        why = said[-1].split("] ", 1)[-1].strip() if said else exc.reason
        return Quarantined(source.record, f"could not be conformed: {why}", str(exc))
    finally:
        progress.update("clips", source.record.record_id, 1)
    return str(out)


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def ingest_flow(callout_dir: str, profile: str = "preview", cache_root: str | None = None,
                clips_dir: str | None = None, fit_mode: str = "blur") -> tuple[IntakeReport, dict[str, str]]:
    """Intake alone: accept or quarantine every record; optionally write each accepted one conformed."""
    root = str(Cache(Path(cache_root) if cache_root else None).root)
    report = intake_flow(callout_dir, root)
    analysis, report = analyze_flow(report, root)
    clips: dict[str, str] = {}
    if clips_dir:
        Path(clips_dir).mkdir(parents=True, exist_ok=True)
        sources = list(report.sources.values())
        progress.start("clips", len(sources), "clips")
        futures = write_clip_task.map(sources, unmapped(report.callout),
                                      [analysis.loudness.get(s.record.record_id) for s in sources],
                                      unmapped(profile), unmapped(fit_mode), unmapped(root), unmapped(clips_dir))
        results = [f.result() for f in futures]
        progress.finish("clips")
        failed = tuple(r for r in results if isinstance(r, Quarantined))
        clips = {s.record.record_id: r for s, r in zip(sources, results) if isinstance(r, str)}
        if failed:
            bad = {q.record.record_id for q in failed}
            report = IntakeReport(report.callout, {k: v for k, v in report.sources.items() if k not in bad},
                                  report.quarantined + failed)
    return report, clips


def with_roll(timeline: Timeline, roll_ass: str) -> Timeline:
    """The timeline with its credits shot carrying the typeset roll."""
    segments = tuple(
        replace(seg, shots=tuple(replace(s, text=roll_ass) if s.kind == "credits" else s for s in seg.shots))
        for seg in timeline.segments)
    return replace(timeline, segments=segments)


@flow(name="build-episode", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def build_flow(spec_path: str, profile: str = "preview", out_dir: str = "out", cache_root: str | None = None) -> dict:
    """Build one episode: the cut, its credits and a build report, under ``out/<spec>/<profile>/``."""
    started = time.monotonic()
    spec = load_spec(spec_path)
    house = house_profile(profile)
    cache = Cache(Path(cache_root) if cache_root else None)
    root = str(cache.root)
    report = intake_flow(str(spec.callout), root)
    check_against(spec, report.callout)
    analysis, report = analyze_flow(report, root)
    timeline = plan(spec, report.callout, report.sources, analysis)
    credits = credits_mod.compute(timeline, report.callout)
    seg = next((s for s in spec.segments if s.type == "credits"), None)
    if seg is not None:
        frames = next(s.frames for s in timeline.segments if s.id == seg.id)
        roll = credits_mod.roll(credits, to_seconds(frames, house.rate), seg.min_name_seconds)
        timeline = with_roll(timeline, roll)
    folder = Path(out_dir) / Path(spec_path).stem / profile
    folder.mkdir(parents=True, exist_ok=True)
    episode = folder / "episode.mp4"
    rendered, joined = compose_flow(timeline, report.sources, profile, spec.fit, root, str(episode))
    credits_mod.write(credits, folder)
    ledger = None
    if spec.pool_cents is not None:
        ledger = ledger_mod.compute(timeline, report.callout, spec.pool_cents, spec.upstream_share)
        ledger_mod.write(ledger, folder)
    write_text_atomic(folder / "intake.json", json.dumps(report.to_json(house, spec.fit), ensure_ascii=False, indent=2))
    build = build_report(spec_path, profile, timeline, report, credits, rendered, joined, time.monotonic() - started,
                         ledger.warnings if ledger else ())
    write_text_atomic(folder / "build.json", json.dumps(build, ensure_ascii=False, indent=2))
    return build


def build_report(spec_path: str, profile: str, timeline: Timeline, report: IntakeReport,
                 credits: credits_mod.Credits, rendered: list[compose.RenderedPiece], joined: bool,
                 seconds: float, ledger_warnings: tuple[str, ...] = ()) -> dict:
    """build.json: each segment's exact frames and records, and every warning."""
    tl = timeline.to_json()
    warnings = list(report.callout.warnings) + list(timeline.warnings)
    warnings += list(dict.fromkeys(list(credits.warnings) + list(ledger_warnings)))  # both report the same cycles
    warnings += [f"quarantined {q.record.record_id} ({q.record.file or 'text'}): {q.reason}" for q in report.quarantined]
    return {
        "schema": "remixtv.build/1", "engine": __version__, "spec": str(Path(spec_path).resolve()),
        "profile": profile, "title": timeline.title, "rate": str(timeline.rate), "frames": timeline.frames,
        "duration": timecode(timeline.frames, timeline.rate),
        "duration_s": float(Fraction(timeline.frames) / timeline.rate),
        "segments": tl["segments"], "records_used": list(timeline.records_used()),
        "credited": len(credits.people),
        "pieces": {"total": len(rendered), "rendered": sum(not p.cached for p in rendered),
                   "cached": sum(p.cached for p in rendered)},
        "episode_rewritten": joined,
        "build_seconds": round(seconds, 1), "warnings": warnings,
    }
