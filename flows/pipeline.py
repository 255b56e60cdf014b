"""The pipeline as Prefect 3 flows: intake -> normalize -> analyze -> plan -> compose -> credits.

Tasks are thin wrappers around ``render`` functions. Caching is ours, by content hash (see
``render.core.cache``), not Prefect's: Prefect's input-based keys cannot see a file's bytes change,
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

from render import __version__
from render.analysis import audio as audio_mod
from render.analysis import loudness
from render.analysis import pictures as pictures_mod
from render.callout.folder import CallOut, Record, load_callout
from render.compose import pieces as compose_pieces
from render.compose import store as compose
from render.core.cache import Cache, write_text_atomic
from render.core.errors import FfmpegError, MediaRejected, UserError
from render.core.house import HouseFormat
from render.core.house import profile as house_profile
from render.core.timebase import timecode, to_seconds
from render.deliver import credits as credits_mod
from render.deliver import deliverables
from render.deliver import ledger as ledger_mod
from render.edit import spec as spec_mod
from render.edit.plan import Analysis, plan, source_shot
from render.edit.spec import check_against, load_spec
from render.edit.timeline import Timeline
from render.intake import conform as normalize
from render.intake.records import Quarantined, Source, intake_record, resolve_file
from render.master import chapters as chapters_mod
from render.master import level as master
from render.master import programme, qc

from . import progress, runners, storage

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


_arg = runners.opaque_arg


def _chunks(items: list, per_worker: int = 4) -> list[list]:
    """Split work into a few chunks per worker: each Prefect task run costs tens of milliseconds
    of bookkeeping, which a per-record task would pay hundreds of times on every build.

    Task arguments that hold our own data (records, sources, pieces) go through ``_arg``
    (``runners.opaque_arg``): Prefect otherwise walks every object in them looking for futures,
    which for 30 pieces each given the call-out's 170 sources cost seconds of every build."""
    size = max(1, -(-len(items) // (WORKERS * per_worker)))
    return [items[i:i + size] for i in range(0, len(items), size)]


#: An item done in under this is a cache hit (measured: ~1-3 ms), so the flow keeps going inline.
CACHE_HIT_S = 0.02


def _inline_then_tasks(items: list, work, cost, submit, stage: str, rid) -> list:
    """``work`` on every item, in order: cache hits inline in this thread, the rest in task runs
    (``submit`` maps chunks of them and returns the futures; ``rid`` names an item's result for the
    ``stage``'s progress).

    After an edit every record is in the cache, and mapping them to task runs anyway made Prefect's
    SQLite contend: a "database is locked" answer costs a fixed 2 s client back-off, a third of a
    warm rebuild. Items are tried cheapest first (``cost``), so a cold build does at most the two
    smallest inline before handing the rest, in their own order, to the tasks; an item that fails
    inline is left to its task, which retries transient failures.
    """
    done: dict[int, object] = {}
    for n, i in enumerate(sorted(range(len(items)), key=lambda i: cost(items[i]))):
        started = time.monotonic()
        try:
            done[i] = work(items[i])
        except Exception:  # noqa: BLE001 - not handled here: its task runs it again, retrying a transient
            break          # failure and raising anything else as the build always has
        if n and time.monotonic() - started > CACHE_HIT_S:  # the first may pay one-time imports (cv2: 0.3 s)
            break
    rest = [i for i in range(len(items)) if i not in done]
    if rest:
        futures = submit([_arg(c) for c in _chunks([items[i] for i in rest])])
        results = [r for rs in runners.gather(futures, stage, lambda _, rs: [(rid(r), 1) for r in rs]) for r in rs]
        done.update(zip(rest, results))
    return [done[i] for i in range(len(items))]


def _upload_bytes(callout: CallOut, record: Record) -> int:
    """Bytes of a record's upload (0 for a text typed into the form; one intake refuses counts as large)."""
    if not record.file:
        return 0
    try:
        return resolve_file(callout, record).stat().st_size
    except (MediaRejected, OSError):
        return 1 << 62


@task(name="intake-records", cache_policy=NO_CACHE, **runners.RETRY)
def intake_records_task(callout: CallOut, records: list[Record], cache_root: str) -> list[Source | Quarantined]:
    cache, results = Cache(Path(cache_root)), []
    for record in records:
        results.append(intake_record(callout, record, cache))
        progress.update("intake", record.record_id, 1)
    return results


@flow(name="intake", task_runner=runners.ThreadPool(max_workers=WORKERS * 2))
def intake_flow(callout_dir: str, cache_root: str) -> IntakeReport:
    """Read a call-out folder; accept or quarantine (with a reason) every record."""
    callout = load_callout(callout_dir)
    progress.start("intake", len(callout.records), "intake")
    cache = Cache(Path(cache_root))

    def one(record: Record) -> Source | Quarantined:
        result = intake_record(callout, record, cache)
        progress.update("intake", record.record_id, 1)
        return result

    results = _inline_then_tasks(
        list(callout.records), one, lambda r: _upload_bytes(callout, r),
        lambda chunks: intake_records_task.map(unmapped(_arg(callout)), chunks, unmapped(cache_root)),
        "intake", lambda r: r.record.record_id)
    progress.finish("intake")
    sources = {r.record.record_id: r for r in results if isinstance(r, Source)}
    return IntakeReport(callout, sources, tuple(r for r in results if isinstance(r, Quarantined)))


@dataclass(frozen=True, slots=True)
class RecordAnalysis:
    """What analysis found in one record, or why the record cannot be used after all."""

    record_id: str
    loudness: loudness.Loudness | None = None
    audio: audio_mod.AudioAnalysis | None = None
    pictures: pictures_mod.PictureAnalysis | None = None
    quarantined: Quarantined | None = None
    warnings: tuple[str, ...] = ()


@task(name="analyze-records", cache_policy=NO_CACHE, **runners.RETRY)
def analyze_records_task(sources: list[Source], cache_root: str, full: bool = True) -> list[RecordAnalysis]:
    return [analyze_record(source, Cache(Path(cache_root)), full) for source in sources]


def analyze_record(source: Source, cache: Cache, full: bool = True) -> RecordAnalysis:
    """Sound and picture analysis of one record, cached by content (``full=False``: loudness only,
    all intake needs to level a clip). Media that cannot be decoded quarantines the record (it could
    not be rendered either); an analysis that fails on decodable media leaves the record usable
    without it, with a warning."""
    # numba (under librosa) compiles on first use; caching that beside our own cache makes it once per machine
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache.root / "numba"))
    rid, found, warnings = source.record.record_id, {}, []
    seconds = float(source.media.duration_s or 1) if source.media else 1.0
    steps = (("audio", audio_mod.analyze_audio), ("pictures", pictures_mod.analyze_pictures)) if full else \
        (("loudness", loudness.measure_source),)
    for name, analyze in steps:
        try:
            found[name] = analyze(source, cache, timeout_s=180 + 8 * seconds)
        except FfmpegError as exc:
            what = "pictures" if name == "pictures" else "sound"
            progress.update("analyze", rid, 1)
            return RecordAnalysis(rid, quarantined=Quarantined(source.record, f"{what} could not be decoded "
                                                                               f"({exc.reason})", str(exc)))
        except (ValueError, RuntimeError, MemoryError) as exc:
            warnings.append(f"{rid}: {name} analysis failed ({type(exc).__name__}: {exc}); used without it")
    progress.update("analyze", rid, 1)
    audio = found.get("audio")
    return RecordAnalysis(rid, audio.loudness if audio else found.get("loudness"), audio, found.get("pictures"),
                          warnings=tuple(warnings))


@flow(name="analyze", task_runner=runners.ThreadPool(max_workers=WORKERS))
def analyze_flow(report: IntakeReport, cache_root: str, full: bool = True) -> tuple[Analysis, IntakeReport]:
    """Analyse every record with sound or moving pictures: loudness, silence, speech/music, beats;
    shots, black, frozen, flashing (see ``render.analysis``); ``full=False`` measures loudness only.

    Returns the analysis and the intake report less any record whose media failed to decode.
    """
    todo = [s for s in report.sources.values()
            if s.media and (s.media.audio or (full and s.media.video and not s.media.is_image))]
    progress.start("analyze", len(todo), "analyze")
    cache = Cache(Path(cache_root))
    results = _inline_then_tasks(
        todo, lambda source: analyze_record(source, cache, full), lambda source: float(source.media.duration_s or 0),
        lambda chunks: analyze_records_task.map(chunks, unmapped(cache_root), unmapped(full)),
        "analyze", lambda r: r.record_id)
    progress.finish("analyze")
    failed = tuple(r.quarantined for r in results if r.quarantined is not None)
    if failed:
        bad = {q.record.record_id for q in failed}
        report = IntakeReport(report.callout, {k: v for k, v in report.sources.items() if k not in bad},
                              report.quarantined + failed)
    ok = [r for r in results if r.quarantined is None]
    analysis = Analysis(loudness={r.record_id: r.loudness for r in ok if r.loudness is not None},
                        audio={r.record_id: r.audio for r in ok if r.audio is not None},
                        pictures={r.record_id: r.pictures for r in ok if r.pictures is not None},
                        warnings=tuple(w for r in ok for w in r.warnings))
    return analysis, report


@task(name="render-piece", cache_policy=NO_CACHE, **runners.RETRY)
def render_piece_task(piece: compose_pieces.Piece, sources: dict[str, Source], profile: str, fit_mode: str,
                      cache_root: str) -> compose.RenderedPiece:
    key = f"{piece.segment_id}/{piece.index}"
    house = house_profile(profile)
    result = compose.render_piece(piece, sources, house, fit_mode, Cache(Path(cache_root)),
                                  progress=progress.callback("render", key, piece.frames))
    # the piece's loudness blocks, cached with it: the join levels the programme from them
    master.piece_meter(result.audio, float(to_seconds(result.frames, house.rate)))
    progress.update("render", key, piece.frames)
    return result


@flow(name="compose", task_runner=runners.ThreadPool(max_workers=WORKERS))
def compose_flow(timeline: Timeline, sources: dict[str, Source], profile: str, fit_mode: str, cache_root: str,
                 out_file: str) -> tuple[list[compose.RenderedPiece], programme.Joined, dict]:
    """Render every piece in parallel (cached ones are free), join by stream copy with the sound
    levelled and chapters at act breaks, then QC the episode into qc.json beside it.

    Returns the pieces, what the join did (and the final loudness) and the QC report.
    """
    house = house_profile(profile)
    parts = compose_pieces.pieces(timeline)
    progress.start("render", timeline.frames, "render")
    # pieces already in the cache are found here, not as tasks: a task run costs tens of
    # milliseconds of bookkeeping, and an edit leaves all but one or two pieces as they were
    cache = Cache(Path(cache_root))
    found: list[compose.RenderedPiece | None] = [compose.cached_piece(p, sources, house, fit_mode, cache)
                                                 for p in parts]
    # longest first (frames are the best cost guess before rendering): with two workers, a long piece
    # started last ran alone at the end while a core idled (the 60 s credits roll: 15 s of a master)
    todo = sorted((i for i, r in enumerate(found) if r is None), key=lambda i: -parts[i].frames)
    for p, r in zip(parts, found):
        if r is not None:
            progress.update("render", f"{p.segment_id}/{p.index}", p.frames)
    futures = render_piece_task.map([_arg(parts[i]) for i in todo], unmapped(_arg(sources)), unmapped(profile),
                                    unmapped(fit_mode), unmapped(cache_root))
    fresh = runners.gather(futures, "render",
                           lambda j, p: [(f"{parts[todo[j]].segment_id}/{parts[todo[j]].index}", p.frames)])
    for i, r in zip(todo, fresh):
        found[i] = r
    rendered: list[compose.RenderedPiece] = [r for r in found if r is not None]
    progress.finish("render")
    # every piece carries its QC measures, taken as it was rendered (compose.render_piece)
    progress.start("join", float(to_seconds(timeline.frames, house.rate)), "join")
    # the master's final file is re-measured by an independent meter; a preview keeps the level
    # pass's own reading, so an edit does not pay a second decode of the whole programme, and
    # re-encodes only the sound the edit changed
    joined = programme.join(rendered, house, Path(out_file), title=timeline.title,
                            chapters=chapters_mod.chapters(timeline), level=True, verify=profile == "master",
                            splice=profile != "master",
                            progress=progress.callback("join", "join", float(to_seconds(timeline.frames, house.rate))))
    progress.finish("join")
    report = qc_task(_arg(timeline), _arg(rendered), out_file, joined, profile, _arg(sources))
    return rendered, joined, report


@task(name="qc", cache_policy=NO_CACHE)
def qc_task(timeline: Timeline, rendered: list[compose.RenderedPiece], out_file: str, joined: programme.Joined,
            profile: str, sources: dict[str, Source]) -> dict:
    """QC of the final episode into qc.json beside it (reused as is when the episode did not change)."""
    episode = Path(out_file)
    return qc.run(timeline, rendered, episode, joined.loudness, house_profile(profile), joined.key,
                  episode.with_name("qc.json"), sources)


@task(name="write-clip", cache_policy=NO_CACHE, **runners.RETRY)
def write_clip_task(source: Source, callout: CallOut, loud: loudness.Loudness | None, profile: str, fit_mode: str,
                    cache_root: str, clips_dir: str) -> str | Quarantined:
    """One accepted record, conformed to the house format, as ``<clips_dir>/<record_id>.mp4``."""
    shot = source_shot(source, callout, loud)
    if shot is None:
        return Quarantined(source.record, "too short to show (under half a second)")
    out = Path(clips_dir) / f"{source.record.record_id}.mp4"
    try:
        programme.write_clip(source, shot, house_profile(profile), fit_mode, Cache(Path(cache_root)), out)
    except FfmpegError as exc:
        said = [line for line in exc.stderr_tail.splitlines() if line.strip()]
        why = said[-1].split("] ", 1)[-1].strip() if said else exc.reason
        return Quarantined(source.record, f"could not be conformed: {why}", str(exc))
    finally:
        progress.update("clips", source.record.record_id, 1)
    return str(out)


@flow(name="ingest", task_runner=runners.ThreadPool(max_workers=WORKERS))
def ingest_flow(callout_dir: str, profile: str = "preview", cache_root: str | None = None,
                clips_dir: str | None = None, fit_mode: str = "blur") -> tuple[IntakeReport, dict[str, str]]:
    """Intake alone: accept or quarantine every record; optionally write each accepted one conformed."""
    root = str(Cache(Path(cache_root) if cache_root else None).root)
    report = runners.using(intake_flow)(callout_dir, root)
    # intake levels clips; no edit decisions here
    analysis, report = runners.using(analyze_flow)(report, root, full=False)
    clips: dict[str, str] = {}
    if clips_dir:
        Path(clips_dir).mkdir(parents=True, exist_ok=True)
        sources = list(report.sources.values())
        progress.start("clips", len(sources), "clips")
        futures = write_clip_task.map([_arg(s) for s in sources], unmapped(_arg(report.callout)),
                                      [analysis.loudness.get(s.record.record_id) for s in sources],
                                      unmapped(profile), unmapped(fit_mode), unmapped(root), unmapped(clips_dir))
        results = runners.gather(futures, "clips", lambda i, _: [(sources[i].record.record_id, 1)])
        progress.finish("clips")
        failed = tuple(r for r in results if isinstance(r, Quarantined))
        clips = {s.record.record_id: r for s, r in zip(sources, results) if isinstance(r, str)}
        if failed:
            bad = {q.record.record_id for q in failed}
            report = IntakeReport(report.callout, {k: v for k, v in report.sources.items() if k not in bad},
                                  report.quarantined + failed)
    return report, clips


@flow(name="analyze-callout", task_runner=runners.ThreadPool(max_workers=WORKERS))
def analyze_callout_flow(callout_dir: str, cache_root: str | None = None) -> tuple[IntakeReport, Analysis]:
    """Intake and full analysis of a call-out, for ``remixtv analyze``."""
    root = str(Cache(Path(cache_root) if cache_root else None).root)
    report = runners.using(intake_flow)(callout_dir, root)
    analysis, report = runners.using(analyze_flow)(report, root)
    return report, analysis


def analysis_report(report: IntakeReport, analysis: Analysis) -> dict:
    """analysis.json: every accepted record's analysis, and what intake quarantined."""
    records = []
    for src in sorted(report.sources.values(), key=lambda s: s.record.line):
        rid = src.record.record_id
        loud, audio, pictures = analysis.of(rid)
        records.append({
            "record": rid, "kind": src.record.kind, "as": src.visual, "title": src.record.title,
            "duration_s": float(src.duration_s) if src.duration_s else None,
            "loudness": loud.to_json() if loud else None,
            "audio": audio.to_json() if audio else None,
            "pictures": pictures.to_json() if pictures else None,
        })
    return {"schema": "remixtv.analysis/1", "engine": __version__, "callout": report.callout.id,
            "records": records, "warnings": list(analysis.warnings),
            "quarantined": [{"record": q.record.record_id, "reason": q.reason} for q in report.quarantined]}


def with_roll(timeline: Timeline, roll_ass: str) -> Timeline:
    """The timeline with its credits shot carrying the typeset roll."""
    segments = tuple(
        replace(seg, shots=tuple(replace(s, text=roll_ass) if s.kind == "credits" else s for s in seg.shots))
        for seg in timeline.segments)
    return replace(timeline, segments=segments)


@flow(name="build-episode", task_runner=runners.ThreadPool(max_workers=WORKERS))
def build_flow(spec_path: str, profile: str = "preview", out_dir: str = "out", cache_root: str | None = None,
               variables: dict[str, str] | None = None, deliver: str | None = None) -> dict:
    """Build one episode: the cut, its credits and a build report, under ``out/<spec>/<profile>/``.

    ``variables`` set the spec's ``{{NAME}}`` variables (``--var NAME=VALUE``); ``deliver``
    (``--deliver network,web``) overrides the spec's ``deliver:`` targets, written into ``deliver/``.
    """
    started = time.monotonic()
    spec = load_spec(spec_path, variables)
    targets = delivery_targets(spec, profile, deliver)
    house = house_profile(profile)
    cache = Cache(Path(cache_root) if cache_root else None)
    root = str(cache.root)
    callout_dir = str(spec.callout)
    if storage.is_uri(callout_dir):  # staged into the cache; intake reads the local copy as usual
        callout_dir = str(storage.stage_task(callout_dir, root))
    report = runners.using(intake_flow)(callout_dir, root)
    check_against(spec, report.callout)
    analysis, report = runners.using(analyze_flow)(report, root)
    timeline = plan(spec, report.callout, report.sources, analysis)
    credits = credits_mod.compute(timeline, report.callout)
    seg = next((s for s in spec.segments if s.type == "credits"), None)
    if seg is not None:
        frames = next(s.frames for s in timeline.segments if s.id == seg.id)
        roll = credits_mod.roll(credits, to_seconds(frames, house.rate), seg.min_name_seconds)
        timeline = with_roll(timeline, roll)
    publish_to = storage.join_uri(out_dir, Path(spec_path).stem, profile) if storage.is_uri(out_dir) else None
    # an s3:// output is rendered into the cache first, then published (build.json last)
    folder = storage.outbox(root, publish_to) if publish_to else Path(out_dir) / Path(spec_path).stem / profile
    folder.mkdir(parents=True, exist_ok=True)
    episode = folder / "episode.mp4"
    with runners.output_lock(episode, root):  # one build per output; clears what a killed one left
        rendered, joined, qc_report = runners.using(compose_flow)(timeline, report.sources, profile, spec.fit, root,
                                                                  str(episode))
    delivered = deliver_task(_arg(timeline), _arg(report.callout), _arg(rendered), joined.loudness, profile, str(folder / "deliver"),
                             targets, spec.leader) if targets else None
    credits_mod.write(credits, folder)
    ledger = None
    if spec.pool_cents is not None:
        ledger = ledger_mod.compute(timeline, report.callout, spec.pool_cents, spec.upstream_share)
        ledger_mod.write(ledger, folder)
    write_text_atomic(folder / "intake.json", json.dumps(report.to_json(house, spec.fit), ensure_ascii=False, indent=2))
    build = build_report(spec_path, profile, timeline, report, credits, rendered, joined, time.monotonic() - started,
                         ledger.warnings if ledger else (), qc_report)
    if delivered:
        build["deliver"] = {"index": "deliver/" + deliverables.INDEX, "qc_passed": delivered["qc_passed"],
                            "files": [{k: f[k] for k in ("role", "path", "size", "md5")} for f in delivered["files"]]}
    write_text_atomic(folder / "build.json", json.dumps(build, ensure_ascii=False, indent=2))
    if publish_to:
        storage.publish_task(str(folder), publish_to)
    return build


def delivery_targets(spec, profile: str, flag: str | None) -> tuple[str, ...]:
    """What to deliver: ``--deliver`` if given, else the spec's ``deliver:``; only a master is delivered."""
    targets = spec.deliver
    if flag is not None:
        targets, problems = spec_mod.delivery_targets(flag, "--deliver")
        if problems:
            raise UserError(problems)
    if targets and profile != "master":
        said = "--deliver" if flag is not None else f"{spec.path}: deliver:"
        raise UserError([(f"{said} {','.join(targets)}: deliverables are made from the master; "
                          f"build with --profile master")])
    return targets


@task(name="deliver", cache_policy=NO_CACHE)
def deliver_task(timeline: Timeline, callout: CallOut, rendered: list[compose.RenderedPiece], loudness: dict | None,
                 profile: str, folder: str, targets: tuple[str, ...], leader: tuple[tuple[str, str], ...]) -> dict:
    """The deliverables (deliverables.json's contents), from the master's pieces and level."""
    return deliverables.deliver(timeline, callout, rendered, loudness, house_profile(profile), Path(folder),
                                deliverables.request(targets, leader))


def build_report(spec_path: str, profile: str, timeline: Timeline, report: IntakeReport,
                 credits: credits_mod.Credits, rendered: list[compose.RenderedPiece], joined: programme.Joined,
                 seconds: float, ledger_warnings: tuple[str, ...] = (), qc_report: dict | None = None) -> dict:
    """build.json: each segment's exact frames and records, act breaks and chapters, the final file's
    loudness, the QC verdicts (details in qc.json), and every warning."""
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
                   "cached": sum(p.cached for p in rendered),
                   "rendered_segments": list(dict.fromkeys(p.segment_id for p in rendered if not p.cached))},
        "episode_rewritten": joined.rewritten,
        "act_breaks": chapters_mod.act_breaks(timeline),
        "chapters": [c.to_json(timeline.rate) for c in chapters_mod.chapters(timeline)],
        "loudness": joined.loudness,
        "sound_encode": joined.sound_encode,
        "qc": qc.summary(qc_report) if qc_report else None,
        "build_seconds": round(seconds, 1), "warnings": warnings,
    }
