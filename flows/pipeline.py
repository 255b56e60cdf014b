"""The pipeline as Prefect 3 flows. A build reads as its table of contents (``build_flow``):

    stage -> intake (conform) -> analyse -> plan -> credits -> captions -> render -> master
          -> stems and deliverables (masters, when asked) -> exports (when asked) -> deliver -> publish

and each step is a task or a subflow of its own in Prefect's UI.

Tasks are thin wrappers around ``render`` functions. Caching is ours, by content hash (see
``render.core.cache``), not Prefect's: Prefect's input-based keys cannot see a file's bytes change,
so every task here uses ``NO_CACHE`` and stays cheap to re-run. Independent work (probing
records, measuring loudness, rendering pieces) runs in parallel on a thread pool: the work is
in ffmpeg subprocesses, so threads are enough and keep results in memory.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from render.analysis import loudness
from render.analysis.record import RecordAnalysis, analyze_record
from render.callout.folder import CallOut, Record, load_callout
from render.compose import pieces, store
from render.core.cache import Cache, write_text_atomic
from render.core.errors import FfmpegError, MediaRejected
from render.core.house import profile as house_profile
from render.core.outputs import output_lock
from render.core.timebase import to_seconds
from render.deliver import crediting, deliverables, exports
from render.deliver import credits as credits_mod
from render.deliver import ledger as ledger_mod
from render.deliver.captions import episode as captions_mod
from render.deliver.captions import transcripts
from render.deliver.captions.files import PROGRAMME_START
from render.deliver.reports import build_report
from render.deliver.review import write_review
from render.edit.plan import Analysis, plan, source_shot
from render.edit.spec import EpisodeSpec, check_against, load_spec
from render.edit.timeline import Timeline
from render.intake.records import Quarantined, Source, intake_record, resolve_file
from render.intake.report import IntakeReport
from render.master import chapters, level, programme, qc
from render.master.programme import write_clip

from . import progress, runners, storage

WORKERS = max(1, os.cpu_count() or 1)
CAPTIONS_STAGING = ".captions"
_log = logging.getLogger("remixtv.pipeline")


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
    cache = Cache(Path(cache_root))
    return [_intook(callout, record, cache) for record in records]


def _intook(callout: CallOut, record: Record, cache: Cache) -> Source | Quarantined:
    result = intake_record(callout, record, cache)
    progress.update("intake", record.record_id, 1)
    return result


@flow(name="intake", task_runner=runners.ThreadPool(max_workers=WORKERS * 2))
def intake_flow(callout_dir: str, cache_root: str) -> IntakeReport:
    """Read a call-out folder; accept or quarantine (with a reason) every record."""
    callout = load_callout(callout_dir)
    progress.start("intake", len(callout.records), "intake")
    cache = Cache(Path(cache_root))
    results = _inline_then_tasks(
        list(callout.records), lambda r: _intook(callout, r, cache), lambda r: _upload_bytes(callout, r),
        lambda chunks: intake_records_task.map(unmapped(_arg(callout)), chunks, unmapped(cache_root)),
        "intake", lambda r: r.record.record_id)
    progress.finish("intake")
    sources = {r.record.record_id: r for r in results if isinstance(r, Source)}
    return IntakeReport(callout, sources, tuple(r for r in results if isinstance(r, Quarantined)))


@task(name="analyze-records", cache_policy=NO_CACHE, **runners.RETRY)
def analyze_records_task(sources: list[Source], cache_root: str, full: bool = True) -> list[RecordAnalysis]:
    return [_analyzed(source, Cache(Path(cache_root)), full) for source in sources]


def _analyzed(source: Source, cache: Cache, full: bool) -> RecordAnalysis:
    result = analyze_record(source, cache, full)
    progress.update("analyze", result.record_id, 1)
    return result


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
        todo, lambda source: _analyzed(source, cache, full), lambda source: float(source.media.duration_s or 0),
        lambda chunks: analyze_records_task.map(chunks, unmapped(cache_root), unmapped(full)),
        "analyze", lambda r: r.record_id)
    progress.finish("analyze")
    report = report.quarantine(tuple(r.quarantined for r in results if r.quarantined is not None))
    ok = [r for r in results if r.quarantined is None]
    analysis = Analysis(loudness={r.record_id: r.loudness for r in ok if r.loudness is not None},
                        audio={r.record_id: r.audio for r in ok if r.audio is not None},
                        pictures={r.record_id: r.pictures for r in ok if r.pictures is not None},
                        warnings=tuple(w for r in ok for w in r.warnings))
    return analysis, report


# --- plan and credits --------------------------------------------------------------------------

@task(name="plan", cache_policy=NO_CACHE)
def plan_task(spec: EpisodeSpec, report: IntakeReport, analysis: Analysis) -> Timeline:
    """The Timeline the spec describes, from what intake accepted and analysis found."""
    return plan(spec, report.callout, report.sources, analysis)


@task(name="credits", cache_policy=NO_CACHE)
def credits_task(spec: EpisodeSpec, timeline: Timeline, callout: CallOut) -> tuple[credits_mod.Credits, Timeline]:
    """Everyone the cut credits, and the Timeline with the credits roll typeset into it."""
    return crediting.credit(spec, timeline, callout)


def plan_episode(spec: EpisodeSpec, cache_root: str) -> tuple[IntakeReport, Analysis, Timeline, credits_mod.Credits]:
    """Stage, intake, analyse, plan and credit ``spec``: the cut a build renders and an export hands
    to an NLE. Called inside a flow, each step is its own task or subflow."""
    callout_dir = _stage(str(spec.callout), cache_root)
    report = runners.using(intake_flow)(callout_dir, cache_root)
    check_against(spec, report.callout)
    analysis, report = runners.using(analyze_flow)(report, cache_root)
    timeline = plan_task(_arg(spec), _arg(report), _arg(analysis))
    credits, timeline = credits_task(_arg(spec), _arg(timeline), _arg(report.callout))
    return report, analysis, timeline, credits


def _stage(callout: str, cache_root: str) -> str:
    """The call-out as a local folder: an ``s3://`` one is staged into the cache (intake reads the copy)."""
    return str(storage.stage_task(callout, cache_root)) if storage.is_uri(callout) else callout


# --- render: every piece, cached by content ------------------------------------------------------

@task(name="render-piece", cache_policy=NO_CACHE, **runners.RETRY)
def render_piece_task(piece: pieces.Piece, sources: dict[str, Source], profile: str, fit_mode: str,
                      cache_root: str) -> store.RenderedPiece:
    key = f"{piece.segment_id}/{piece.index}"
    house = house_profile(profile)
    result = store.render_piece(piece, sources, house, fit_mode, Cache(Path(cache_root)),
                                progress=progress.callback("render", key, piece.frames))
    # the piece's loudness blocks, cached with it: the master levels the programme from them
    level.piece_meter(result.audio, float(to_seconds(result.frames, house.rate)))
    progress.update("render", key, piece.frames)
    return result


@flow(name="render", task_runner=runners.ThreadPool(max_workers=WORKERS))
def render_flow(timeline: Timeline, sources: dict[str, Source], profile: str, fit_mode: str,
                cache_root: str) -> list[store.RenderedPiece]:
    """Render every piece of the Timeline in parallel; pieces already in the cache cost nothing."""
    house = house_profile(profile)
    parts = pieces.pieces(timeline)
    progress.start("render", timeline.frames, "render")
    # pieces already in the cache are found here, not as tasks: a task run costs tens of
    # milliseconds of bookkeeping, and an edit leaves all but one or two pieces as they were
    cache = Cache(Path(cache_root))
    found: list[store.RenderedPiece | None] = [store.cached_piece(p, sources, house, fit_mode, cache) for p in parts]
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
    progress.finish("render")
    return [r for r in found if r is not None]


@task(name="render-stems", cache_policy=NO_CACHE, **runners.RETRY)
def render_stems_task(piece: pieces.Piece, sources: dict[str, Source], profile: str, fit_mode: str,
                      cache_root: str) -> store.RenderedStems:
    return store.render_stems(piece, sources, house_profile(profile), fit_mode, Cache(Path(cache_root)))


@flow(name="stems", task_runner=runners.ThreadPool(max_workers=WORKERS))
def stems_flow(timeline: Timeline, sources: dict[str, Source], profile: str, fit_mode: str,
               cache_root: str) -> list[store.RenderedStems]:
    """Every piece's dialogue, music and effects stems (a network delivery's), in parallel, in piece
    order; stems already in the cache cost nothing."""
    house = house_profile(profile)
    parts = pieces.pieces(timeline)
    cache = Cache(Path(cache_root))
    found: list[store.RenderedStems | None] = [store.cached_stems(p, sources, house, fit_mode, cache) for p in parts]
    todo = sorted((i for i, r in enumerate(found) if r is None), key=lambda i: -parts[i].frames)
    futures = render_stems_task.map([_arg(parts[i]) for i in todo], unmapped(_arg(sources)), unmapped(profile),
                                    unmapped(fit_mode), unmapped(cache_root))
    for i, r in zip(todo, runners.gather(futures)):
        found[i] = r
    return [r for r in found if r is not None]


# --- master: join, level, chapters, QC -----------------------------------------------------------

@task(name="join", cache_policy=NO_CACHE)
def join_task(timeline: Timeline, rendered: list[store.RenderedPiece], profile: str, out_file: str,
              subtitles: str | None) -> programme.Joined:
    """The pieces joined into ``out_file`` by stream copy, the sound levelled, chapters at act breaks, and
    the captions (``subtitles``, an SRT) as its subtitle track.

    The master's final file is re-measured by an independent meter; a preview keeps the level pass's
    own reading, so an edit does not pay a second decode of the whole programme, and re-encodes only
    the sound the edit changed."""
    house = house_profile(profile)
    seconds = float(to_seconds(timeline.frames, house.rate))
    progress.start("join", seconds, "join")
    joined = programme.join(rendered, house, Path(out_file), title=timeline.title,
                            chapters=chapters.chapters(timeline), level=True, verify=profile == "master",
                            splice=profile != "master", subtitles=Path(subtitles) if subtitles else None,
                            acts=chapters.acts(timeline) if profile == "master" else (),
                            progress=progress.callback("join", "join", seconds))
    progress.finish("join")
    return joined


@task(name="qc", cache_policy=NO_CACHE)
def qc_task(timeline: Timeline, rendered: list[store.RenderedPiece], out_file: str, joined: programme.Joined,
            profile: str, sources: dict[str, Source], captions: dict | None = None) -> dict:
    """QC of the final episode into qc.json beside it (reused as is when the episode did not change), with
    the captions' figures and verdicts (``captions``: the captions task's summary)."""
    episode = Path(out_file)
    return qc.run(timeline, rendered, episode, joined.loudness, house_profile(profile), joined.key,
                  episode.with_name("qc.json"), sources, captions)


@flow(name="master", task_runner=runners.ThreadPool(max_workers=WORKERS))
def master_flow(timeline: Timeline, rendered: list[store.RenderedPiece], sources: dict[str, Source], profile: str,
                out_file: str, captions: dict | None = None) -> tuple[programme.Joined, dict]:
    """The rendered pieces made one programme (join, level, chapters, the captions' subtitle track), then
    QC'd (qc.json beside it, the captions' summary with it). Every piece carries its QC measures, taken
    as it was rendered (``render.compose.measure``)."""
    staged = Path(out_file).parent / CAPTIONS_STAGING
    subtitles = str(staged / captions["subtitles"]) if captions and captions["subtitles"] else None
    joined = join_task(_arg(timeline), _arg(rendered), profile, out_file, subtitles)
    return joined, qc_task(_arg(timeline), _arg(rendered), out_file, joined, profile, _arg(sources), captions)


# --- captions: every spoken word, timed to the programme -----------------------------------------

@task(name="captions", cache_policy=NO_CACHE)
def captions_task(spec_path: str, timeline: Timeline, report: IntakeReport, analysis: Analysis, folder: str,
                  cache_root: str, start_timecode: str = PROGRAMME_START) -> dict:
    """captions.scc/.srt/.vtt/.json, staged in ``folder``/.captions until the deliver step moves them beside
    the episode (a build stopped before then leaves the last build's captions beside the last build's
    episode); the join and the deliverables read the staged files. Transcripts come from the call-out
    or from ``transcripts/`` beside the spec (an editor's corrections), else recognition. The SCC's
    programme starts at ``start_timecode``. Returns the summary build.json and qc.json report."""
    seconds = float(to_seconds(timeline.frames, timeline.rate))
    progress.start("captions", seconds, "captions")
    staged = Path(folder) / CAPTIONS_STAGING
    staged.mkdir(exist_ok=True)
    made = captions_mod.deliver(timeline, report.sources, report.callout, analysis.audio, staged,
                                Cache(Path(cache_root)), transcripts.folder_of(Path(spec_path)), start_timecode)
    progress.finish("captions")
    return made


# --- deliverables: what a network and YouTube accept (masters only, when asked) -------------------

@task(name="deliverables", cache_policy=NO_CACHE)
def deliverables_task(timeline: Timeline, callout: CallOut, rendered: list[store.RenderedPiece], loudness: dict | None,
                      profile: str, folder: str, request: deliverables.Request, captions: dict,
                      piece_stems: list[store.RenderedStems] | None = None) -> dict:
    """deliver/ beside the episode (deliverables.json's content), from the master's pieces, stems and level,
    with the captions the captions task staged (``captions``: its summary)."""
    return deliverables.deliver(timeline, callout, rendered, loudness, house_profile(profile), Path(folder),
                                request, piece_stems or (),
                                captions_mod.written(Path(folder).parent / CAPTIONS_STAGING, captions))


# --- exports: the cut for an NLE, beside the episode (when asked) ----------------------------------

@task(name="exports", cache_policy=NO_CACHE)
def exports_task(spec_path: str, spec: EpisodeSpec, profile: str, folder: str, timeline: Timeline,
                 report: IntakeReport, formats: tuple[str, ...], cache_root: str) -> list[str]:
    """``export/<spec>.<ext>`` for each format and ``export/media/``, beside the episode (``build --export``)."""
    written = exports.export(timeline, report.sources, report.callout, house_profile(profile), spec.fit,
                             Cache(Path(cache_root)), Path(folder) / "export", Path(spec_path).stem, formats)
    return [str(p.relative_to(folder)) for p in written]


# --- deliver: the files beside the episode --------------------------------------------------------

@task(name="deliver", cache_policy=NO_CACHE)
def deliver_task(spec_path: str, spec: EpisodeSpec, profile: str, folder: str, timeline: Timeline,
                 report: IntakeReport, credits: credits_mod.Credits, rendered: list[store.RenderedPiece],
                 joined: programme.Joined, qc_report: dict, captions: dict, delivered: dict | None,
                 exported: list[str] | None, seconds: float, cache_root: str) -> dict:
    """Credits, the ledger (when the spec sets a pool), intake.json, build.json and the review page
    beside the episode; returns build.json's content."""
    out = Path(folder)
    for name in captions["files"]:  # each a whole file already: a rename puts it beside the episode
        os.replace(out / CAPTIONS_STAGING / name, out / name)
    credits_mod.write(credits, out)
    ledger = None
    if spec.pool_cents is not None:
        ledger = ledger_mod.compute(timeline, report.callout, spec.pool_cents, spec.upstream_share)
        ledger_mod.write(ledger, out)
    intake = report.to_json(house_profile(profile), spec.fit)
    write_text_atomic(out / "intake.json", json.dumps(intake, ensure_ascii=False, indent=2))
    build = build_report(spec_path, profile, timeline, report, credits, rendered, joined, seconds,
                         tuple(ledger.warnings) if ledger else (), qc_report)
    build["captions"] = captions
    if exported:
        build["exports"] = exported
    if delivered:
        build["deliver"] = {"index": "deliver/" + deliverables.INDEX, "qc_passed": delivered["qc_passed"],
                            "files": [{k: f[k] for k in ("role", "path", "size", "md5")} for f in delivered["files"]]}
    write_text_atomic(out / "build.json", json.dumps(build, ensure_ascii=False, indent=2))
    try:  # the page is for people; a fault in drawing it must not hold back the episode or its publishing
        write_review(out, Cache(Path(cache_root)), timeline, rendered, report.callout)
    except Exception as exc:  # noqa: BLE001 - reported, and the build goes on
        _log.warning("review page not written: %s: %s", type(exc).__name__, exc)
    return build


# --- intake alone, analysis alone --------------------------------------------------------------

@task(name="write-clip", cache_policy=NO_CACHE, **runners.RETRY)
def write_clip_task(source: Source, callout: CallOut, loud: loudness.Loudness | None, profile: str, fit_mode: str,
                    cache_root: str, clips_dir: str) -> str | Quarantined:
    """One accepted record, conformed to the house format, as ``<clips_dir>/<record_id>.mp4``."""
    shot = source_shot(source, callout, loud)
    if shot is None:
        return Quarantined(source.record, "too short to show (under half a second)")
    out = Path(clips_dir) / f"{source.record.record_id}.mp4"
    try:
        write_clip(source, shot, house_profile(profile), fit_mode, Cache(Path(cache_root)), out)
    except FfmpegError as exc:
        said = [line for line in exc.stderr_tail.splitlines() if line.strip()]
        why = said[-1].split("] ", 1)[-1].strip() if said else exc.reason
        return Quarantined(source.record, f"could not be conformed: {why}", str(exc))
    finally:
        progress.update("clips", source.record.record_id, 1)
    return str(out)


# "ingest": the name Prefect has always shown for this flow (run histories and dashboards find it by it)
@flow(name="ingest", task_runner=runners.ThreadPool(max_workers=WORKERS))
def intake_callout_flow(callout_dir: str, profile: str = "preview", cache_root: str | None = None,
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
        clips = {s.record.record_id: r for s, r in zip(sources, results) if isinstance(r, str)}
        report = report.quarantine(tuple(r for r in results if isinstance(r, Quarantined)))
    return report, clips


@flow(name="analyze-callout", task_runner=runners.ThreadPool(max_workers=WORKERS))
def analyze_callout_flow(callout_dir: str, cache_root: str | None = None) -> tuple[IntakeReport, Analysis]:
    """Intake and full analysis of a call-out, for ``remixtv analyze``."""
    root = str(Cache(Path(cache_root) if cache_root else None).root)
    report = runners.using(intake_flow)(callout_dir, root)
    analysis, report = runners.using(analyze_flow)(report, root)
    return report, analysis


# --- the build ------------------------------------------------------------------------------------

@flow(name="build-episode", task_runner=runners.ThreadPool(max_workers=WORKERS))
def build_flow(spec_path: str, profile: str = "preview", out_dir: str = "out", cache_root: str | None = None,
               variables: dict[str, str] | None = None, deliver: str | None = None,
               export: tuple[str, ...] = ()) -> dict:
    """Build one episode: the cut, its credits, a build report and a review page, under
    ``OUT/<spec>/<profile>/``. ``variables`` set the spec's ``{{NAME}}`` variables (``--var NAME=VALUE``);
    ``deliver`` (``--deliver network,xdcam,web``) overrides the spec's ``deliver:`` targets, written into ``deliver/``;
    ``export`` (``--export otio,fcp7xml``) writes the cut for an NLE into ``export/``.
    """
    started = time.monotonic()
    spec = load_spec(spec_path, variables)
    targets = deliverables.targets(spec, profile, deliver)
    request = deliverables.request(targets, spec.leader)
    root = str(Cache(Path(cache_root) if cache_root else None).root)
    report, analysis, timeline, credits = plan_episode(spec, root)        # stage, intake, analyse, plan, credits
    folder, publish_to = _output_folder(spec_path, profile, out_dir, root)
    episode = str(folder / "episode.mp4")
    with output_lock(Path(episode), root):  # one build per output; clears what a killed one left
        captions = captions_task(spec_path, _arg(timeline), _arg(report), _arg(analysis), str(folder), root,
                                 deliverables.programme_timecode(request))                  # captions
        rendered = runners.using(render_flow)(timeline, report.sources, profile, spec.fit, root)      # render
        joined, qc_report = runners.using(master_flow)(timeline, rendered, report.sources, profile, episode,
                                                       captions)                            # master
        piece_stems = runners.using(stems_flow)(timeline, report.sources, profile, spec.fit, root
                                                ) if deliverables.needs_stems(targets) else None  # stems
        delivered = deliverables_task(_arg(timeline), _arg(report.callout), _arg(rendered), joined.loudness, profile,
                                      str(folder / "deliver"), _arg(request), captions,
                                      _arg(piece_stems)) if targets else None  # deliverables
    exported = exports_task(spec_path, _arg(spec), profile, str(folder), _arg(timeline), _arg(report),
                            tuple(export), root) if export else None                        # exports
    build = deliver_task(spec_path, _arg(spec), profile, str(folder), _arg(timeline), _arg(report), _arg(credits),
                         _arg(rendered), joined, qc_report, captions, delivered, exported,
                         time.monotonic() - started, root)                                  # deliver
    if publish_to:
        storage.publish_task(str(folder), publish_to)                                       # publish
    return build


def _output_folder(spec_path: str, profile: str, out_dir: str, cache_root: str) -> tuple[Path, str | None]:
    """Where the episode is written, and the ``s3://`` location it is then published to (if any).

    An ``s3://`` output is rendered into the cache first (an outbox kept between builds, so an
    unchanged rebuild uploads nothing), then published, build.json last."""
    name = Path(spec_path).stem
    publish_to = storage.join_uri(out_dir, name, profile) if storage.is_uri(out_dir) else None
    folder = storage.outbox(cache_root, publish_to) if publish_to else Path(out_dir) / name / profile
    folder.mkdir(parents=True, exist_ok=True)
    return folder, publish_to
