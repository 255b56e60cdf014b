"""``remixtv``: the command line. The only place errors become exit codes.

Exit codes: 0 ok; 1 a user mistake (bad spec, bad folder, not enough material), printed one
problem per line; 2 a media tool failed (the command and stderr tail are printed); 3 ``build
--strict`` built the episode but a QC limit failed (qc.json beside it says which and where); 4 a
transient failure (storage, network, lost Dask workers) outlasted the retries: run it again, it resumes;
130 stopped by Ctrl-C, 143 by ``kill`` (SIGTERM). Stopped either way, finished work is kept and
nothing half-written is left where a result belongs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_SPEC = REPO / "episode_specs" / "demo.yaml"


def _quiet_prefect(verbose: bool) -> None:
    # Prefect logs a failed flow with a traceback; for user mistakes we print our own one-liners.
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO" if verbose else "CRITICAL"
    os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "WARNING" if verbose else "CRITICAL"
    if not verbose:
        import logging

        # Prefect's event and log senders log under their class names, outside the "prefect" tree:
        # a stopped build otherwise ends on "Still processing items: 6 items remaining..."
        for name in ("EventsWorker", "APILogWorker"):
            logging.getLogger(name).setLevel(logging.ERROR)


class _Bars:
    """A progress sink drawing one rich bar per stage."""

    def __init__(self, console):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:>8}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.tasks: dict[str, int] = {}
        self.done: dict[str, dict[str, float]] = {}

    def start(self, stage, total, label):
        self.tasks[stage] = self.progress.add_task(label, total=max(total, 1e-9))
        self.done[stage] = {}

    def update(self, stage, key, done):
        if stage in self.tasks:
            self.done[stage][key] = done
            self.progress.update(self.tasks[stage], completed=sum(self.done[stage].values()))

    def finish(self, stage):
        if stage in self.tasks:
            t = self.progress.tasks[self.tasks[stage]]
            self.progress.update(self.tasks[stage], completed=t.total)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so both stop a command the same way."""


def _stop_on_sigterm() -> None:
    """``kill`` (SIGTERM: service managers, ``timeout``) stops a command as Ctrl-C does.

    Python's own SIGTERM ends the process on the spot: no ``finally``, no ``atexit``. Prefect's
    temporary API server (a uvicorn child) was then left running for good, holding its port.
    An ignored SIGTERM stays ignored. Prefect's flow engine installs its own handler while a flow
    runs and, on SIGTERM, reports the crash, puts this one back and signals again; the runner of
    ``nightly serve`` replaces it for good (it pauses its schedule and exits 0).
    """
    def terminated(signum, frame):
        raise _Terminated

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, terminated)


def _fail(problems: list[str], code: int = 1) -> int:
    for line in problems:
        print(line, file=sys.stderr)
    return code


def cmd_validate(args) -> int:
    from render.callout.folder import load_callout
    from render.core.house import RATE
    from render.core.timebase import timecode, to_frames
    from render.edit.spec import check_against, load_spec

    from .storage import local_callout

    spec = load_spec(args.spec, _variables(args.var))
    callout = load_callout(local_callout(spec.callout))  # an s3:// call-out is staged into the cache first
    check_against(spec, callout)
    print(f"{args.spec}: ok: {len(spec.segments)} segments, runtime {timecode(to_frames(spec.runtime_s, RATE), RATE)}, "
          f"call-out {callout.id!r} with {len(callout.records)} records")
    for w in callout.warnings:
        print(f"warning: {w}")
    return 0


def _variables(pairs: list[str] | None) -> dict[str, str]:
    """``--var NAME=VALUE`` options as a mapping (a malformed one is a user error, not a traceback)."""
    from render.core.errors import UserError

    out = {}
    for pair in pairs or []:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise UserError([f"--var {pair!r}: write it as NAME=VALUE, e.g. --var episode=3"])
        out[name.strip()] = value
    return out


def _build(spec: Path, profile: str, out: str | Path, cache: str | None, verbose: bool,
           dask: str | None = None, variables: dict[str, str] | None = None, deliver: str | None = None) -> dict:
    from rich.console import Console

    from render.callout.folder import load_callout
    from render.edit.spec import check_against, load_spec

    from . import storage

    # fail fast on spec mistakes (and a missing bucket) before Prefect starts (that costs seconds)
    loaded = load_spec(spec, variables)
    from .pipeline import delivery_targets

    delivery_targets(loaded, profile, deliver)
    out = str(out)
    if storage.is_uri(out):
        storage.check_destination(out)
    if storage.is_uri(loaded.callout):
        with Console(stderr=True).status(f"staging {loaded.callout}") as status:
            callout_dir = storage.local_callout(loaded.callout, cache, progress=lambda done, total: status.update(
                f"staging {loaded.callout}: {done}/{total} objects"))
    else:
        callout_dir = loaded.callout
    check_against(loaded, load_callout(callout_dir))
    from . import progress, runners
    from .pipeline import build_flow

    console = Console(stderr=True)
    bars = _Bars(console)
    progress.install(bars)
    started = time.monotonic()
    if dask and cache:
        cache = str(Path(cache).resolve())  # workers elsewhere do not share our current directory
    with runners.dask(dask, cache, quiet=not verbose), bars.progress, \
            runners.heartbeats_off(when=not os.environ.get("PREFECT_API_URL")):
        # no server configured: a temporary one lives and dies with this process (after --dask is
        # checked, which fails faster than the server starts)
        runners.local_api()
        result = build_flow(str(spec), profile, out, cache, variables=variables, deliver=deliver)
    folder = storage.join_uri(out, spec.stem, profile) if storage.is_uri(out) else Path(out) / spec.stem / profile
    console.print(f"[bold]{result['title']}[/]: {result['duration']} ({result['frames']} frames), "
                  f"{len(result['segments'])} segments, {len(result['records_used'])} records, "
                  f"{result['credited']} people credited; pieces rendered {result['pieces']['rendered']}, "
                  f"cached {result['pieces']['cached']}; {time.monotonic() - started:.0f} s")
    for w in result["warnings"][:12]:
        console.print(f"[yellow]warning[/]: {w}")
    if len(result["warnings"]) > 12:
        console.print(f"... and {len(result['warnings']) - 12} more warnings in build.json")
    _print_qc(console, result.get("qc"), result.get("loudness"))
    print(f"{folder}/episode.mp4" if storage.is_uri(out) else folder / "episode.mp4")
    return result


def _print_qc(console, qc: dict | None, loudness: dict | None) -> None:
    """The QC verdicts, one line per check (the ranges and figures are in qc.json)."""
    if not qc:
        return
    verdict = "[green]pass[/]" if qc["passed"] else "[red]FAIL[/]"
    how = f" (levelled {loudness['mode']}, {loudness['gain_db']:+.1f} dB)" if loudness else ""
    console.print(f"[bold]QC[/] {verdict}{how}")
    for name, check in qc["checks"].items():
        mark = "[green]ok[/]  " if check["passed"] else "[red]FAIL[/]"
        console.print(f"  {mark} {name:<9} {check['summary']}")


def cmd_build(args) -> int:
    variables = _variables(args.var)
    if args.watch:
        return _watch(args, variables)
    result = _build(Path(args.spec), args.profile, args.out, args.cache, args.verbose, args.dask, variables,
                    args.deliver)
    if args.strict and not (result.get("qc") or {}).get("passed", False):
        return 3
    return 0


def _watch(args, variables: dict[str, str]) -> int:
    from rich.console import Console

    from .watch import watch

    console = Console(stderr=True)
    try:
        watch(Path(args.spec), lambda: _build(Path(args.spec), args.profile, args.out, args.cache, args.verbose,
                                              args.dask, variables), console.print)
    except KeyboardInterrupt:
        console.print("stopped watching")
    return 0


def cmd_schema(args) -> int:
    from render.edit.spec import fields_markdown, json_schema

    print(fields_markdown() if args.markdown else json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_ingest(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from render.callout.folder import load_callout
    from render.core.cache import write_text_atomic
    from render.core.house import profile as house_profile

    from . import progress, runners
    from .pipeline import ingest_flow

    callout = load_callout(args.callout)  # fail fast, before Prefect starts
    console = Console(stderr=True)
    bars = _Bars(console)
    progress.install(bars)
    # workers elsewhere do not share our current directory
    cache = str(Path(args.cache).resolve()) if args.dask and args.cache else args.cache
    clips_dir = str(Path(args.write_clips).resolve()) if args.dask and args.write_clips else args.write_clips
    with runners.dask(args.dask, cache, quiet=not args.verbose), bars.progress:
        report, clips = runners.using(ingest_flow)(str(callout.root), args.profile, cache, clips_dir)
    table = Table(title=f"{callout.id}: {len(report.sources)} accepted, {len(report.quarantined)} quarantined")
    for column in ("record", "kind", "file", "result"):
        table.add_column(column, overflow="fold")
    for rec in callout.records:
        src = report.sources.get(rec.record_id)
        if src is not None:
            took = f"[green]accepted[/] as {src.visual}" + (f" -> {clips[rec.record_id]}" if rec.record_id in clips else "")
        else:
            q = next((q for q in report.quarantined if q.record.record_id == rec.record_id), None)
            took = f"[red]quarantined[/]: {q.reason}" if q else "?"
        table.add_row(rec.record_id, rec.kind, rec.file or "(text)", took)
    Console().print(table)
    out = Path(args.out or Path("out") / "ingest" / callout.id)
    write_text_atomic(out / "intake.json", json.dumps(report.to_json(house_profile(args.profile), "blur"),
                                                      ensure_ascii=False, indent=2))
    for w in callout.warnings:
        console.print(f"[yellow]warning[/]: {w}")
    console.print(f"wrote {out / 'intake.json'}")
    return 0


def _flags(rec: dict) -> str:
    """The one-line warnings an editor wants about a record."""
    out = []
    audio, pictures = rec.get("audio") or {}, rec.get("pictures") or {}
    if pictures.get("flashes"):
        out.append(f"[red]flashing[/] at {pictures['flashes'][0]['start_tc']}")
    if audio.get("clipped_samples"):
        out.append(f"clipping ({len(audio['clipping'])}x)")
    if pictures.get("black"):
        out.append(f"black {len(pictures['black'])}x")
    if pictures.get("frozen"):
        out.append(f"frozen {len(pictures['frozen'])}x")
    if audio.get("dead_air"):
        out.append(f"dead air {sum(d['end_s'] - d['start_s'] for d in audio['dead_air']):.1f} s")
    if audio.get("content") and audio["content"] != "silence":
        out.append(audio["content"])
    elif audio.get("content") == "silence":
        out.append("silent")
    return ", ".join(out)


def cmd_analyze(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from render.callout.folder import load_callout
    from render.core.cache import write_text_atomic

    from . import progress, runners
    from .pipeline import analysis_report, analyze_callout_flow

    callout = load_callout(args.callout)  # fail fast, before Prefect starts
    console = Console(stderr=True)
    bars = _Bars(console)
    progress.install(bars)
    runners.local_api()
    with bars.progress:
        report, analysis = analyze_callout_flow(str(callout.root), args.cache)
    doc = analysis_report(report, analysis)
    table = Table(title=f"{callout.id}: {len(doc['records'])} records analysed, {len(report.quarantined)} quarantined")
    for column, justify in (("record", "left"), ("kind", "left"), ("duration", "right"), ("LUFS", "right"),
                            ("peak dBTP", "right"), ("tempo", "right"), ("shots", "right"), ("flags", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for rec in doc["records"]:
        loud, audio, pictures = rec["loudness"] or {}, rec["audio"] or {}, rec["pictures"] or {}
        lufs = loud.get("integrated_lufs")
        table.add_row(rec["record"], rec["kind"], f"{rec['duration_s']:.1f} s" if rec["duration_s"] else "",
                      "silent" if lufs is not None and lufs <= -70 else (f"{lufs:.1f}" if lufs is not None else ""),
                      f"{loud['true_peak_dbtp']:.1f}" if loud.get("true_peak_dbtp") is not None else "",
                      f"{audio['tempo_bpm']:.0f} BPM" if audio.get("tempo_bpm") else "",
                      str(len(pictures["shots"])) if pictures.get("shots") else "", _flags(rec))
    Console().print(table)
    out = Path(args.out or Path("out") / "analysis" / callout.id)
    write_text_atomic(out / "analysis.json", json.dumps(doc, ensure_ascii=False, indent=2))
    for w in list(callout.warnings) + doc["warnings"]:
        console.print(f"[yellow]warning[/]: {w}")
    for q in doc["quarantined"]:
        console.print(f"[red]quarantined[/] {q['record']}: {q['reason']}")
    console.print(f"wrote {out / 'analysis.json'}")
    return 0


def cmd_demo(args) -> int:
    from rich.console import Console

    from render.callout.demo import generate_demo_callout
    from render.edit.spec import load_spec

    console = Console(stderr=True)
    spec = load_spec(DEMO_SPEC)
    started = time.monotonic()
    with console.status("generating the demo call-out") as status:
        generate_demo_callout(spec.callout, progress=lambda d, t: status.update(f"generating the demo call-out {d}/{t}"))
    console.print(f"demo call-out ready at {spec.callout} ({time.monotonic() - started:.0f} s)")
    _build(DEMO_SPEC, args.profile, args.out, args.cache, args.verbose, args.dask)
    return 0


def cmd_nightly(args) -> int:
    """``nightly serve``: register the scheduled deployment and run it when due; ``nightly run``: once, now."""
    if args.action == "serve":
        # a long-running service: its log (the journal) should say what every run did
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
    from . import nightly, runners

    specs = Path(args.specs).expanduser().resolve()
    out = args.out if nightly.is_uri(args.out) else str(Path(args.out).expanduser().resolve())
    if args.action == "serve":
        schedule = nightly.schedule_from(args.cron, args.timezone)
        nightly.find_specs(specs)
        print(f"serving {nightly.FLOW_NAME}/{nightly.DEPLOYMENT_NAME}: cron {schedule.cron!r} ({schedule.timezone}), "
              f"specs {specs} -> {out}", flush=True)
        nightly.serve(specs, out, args.cache, schedule)
        return 0
    nightly.find_specs(specs)  # fail fast, before Prefect starts
    runners.local_api()
    state = nightly.nightly_previews(str(specs), out, args.cache, return_state=True)
    report = state.result(raise_on_failure=False)
    if isinstance(report, BaseException):
        raise report
    for r in report.results:
        if r.ok:
            print(f"ok      {r.name}.yaml: {r.title}, {r.duration} ({r.frames} frames), {r.records_used} records, "
                  f"{r.credited} credited, {len(r.warnings)} warnings" + (f", QC {r.qc}" if r.qc else "") +
                  f"; {r.seconds:.0f} s")
        else:
            _fail([f"FAILED  {r.name}.yaml:", *(f"  {line}" for line in r.errors)])
    if not nightly.is_uri(out):
        print(Path(out) / "nightly.md")
    if not report.failed:
        return 0
    return 1 if all(r.failure == "spec" for r in report.failed) else 2


_S3_ENDPOINT_HELP = ("S3-compatible endpoint for s3:// URIs (default $REMIXTV_S3_ENDPOINT, else boto3's "
                     "$AWS_ENDPOINT_URL / ~/.aws/config, else AWS); credentials come from the standard AWS chain")


_DASK_DEFAULT = os.environ.get("REMIXTV_DASK_ADDRESS") or None
_DASK_HELP = ("run tasks on Dask: local:N (a cluster of N worker processes here) or a scheduler address like "
              "tcp://host:8786 (default $REMIXTV_DASK_ADDRESS; without it, a thread pool here)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="remixtv", description="Build TV episodes from crowd-sourced call-outs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build an episode from a spec")
    p.add_argument("spec", help="episode spec YAML; its callout: is a folder or an s3://bucket/prefix URI")
    p.add_argument("--profile", choices=("preview", "master"), default="preview")
    p.add_argument("--out", default="out", help="a folder or an s3://bucket/prefix URI; the episode goes to "
                   "OUT/<spec name>/<profile>/ (default out)")
    p.add_argument("--cache", default=None, help="cache folder (default $REMIXTV_CACHE or ~/.cache/remixtv)")
    p.add_argument("--s3-endpoint", metavar="URL", default=None, help=_S3_ENDPOINT_HELP)
    p.add_argument("--dask", metavar="ADDRESS", default=_DASK_DEFAULT, help=_DASK_HELP)
    p.add_argument("--strict", action="store_true", help="exit 3 when a QC limit fails (see qc.json)")
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help="set a spec variable ({{NAME}}); repeatable")
    p.add_argument("--watch", action="store_true", help="rebuild on every save of the spec and say what changed")
    p.add_argument("--deliver", metavar="TARGETS", default=None,
                   help="with --profile master, also write deliver/: network (ProRes mezzanine), web (YouTube MP4), "
                        "comma-separated; overrides the spec's deliver:")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("validate", help="check a spec and its call-out without rendering")
    p.add_argument("spec", help="episode spec YAML; an s3:// call-out is staged into the cache to be checked")
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help="set a spec variable ({{NAME}}); repeatable")
    p.add_argument("--s3-endpoint", metavar="URL", default=None, help=_S3_ENDPOINT_HELP)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("ingest", help="run intake alone: accept or quarantine every record of a call-out")
    p.add_argument("callout")
    p.add_argument("--profile", choices=("preview", "master"), default="preview")
    p.add_argument("--write-clips", metavar="DIR", default=None, help="write each accepted record conformed")
    p.add_argument("--out", default=None, help="where intake.json goes (default out/ingest/<call-out id>)")
    p.add_argument("--cache", default=None)
    p.add_argument("--dask", metavar="ADDRESS", default=_DASK_DEFAULT, help=_DASK_HELP)
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("schema", help="print the spec's JSON Schema (or, with --markdown, the field reference)")
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(func=cmd_schema)
    p = sub.add_parser("analyze", help="analyse every record of a call-out: loudness, tempo, shots, flags")
    p.add_argument("callout")
    p.add_argument("--out", default=None, help="where analysis.json goes (default out/analysis/<call-out id>)")
    p.add_argument("--cache", default=None)
    p.set_defaults(func=cmd_analyze)
    p = sub.add_parser("demo", help="generate the demo call-out and build its preview")
    p.add_argument("--out", default="out")
    p.add_argument("--profile", choices=("preview", "master"), default="preview")
    p.add_argument("--cache", default=None)
    p.add_argument("--dask", metavar="ADDRESS", default=_DASK_DEFAULT, help=_DASK_HELP)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("nightly", help="the nightly preview of every spec: serve it on a schedule, or run it once now")
    p.add_argument("action", choices=("serve", "run"),
                   help="serve: register the deployment with $PREFECT_API_URL and build when due; run: build once now")
    p.add_argument("--specs", default=str(REPO / "episode_specs"), help="folder of *.yaml specs (default: the repo's)")
    p.add_argument("--out", default="out/nightly", help="where previews go: DIR/<spec>/preview/ (default out/nightly)")
    p.add_argument("--cache", default=None)
    p.add_argument("--cron", default=None, help="serve: when to run (default $REMIXTV_NIGHTLY_CRON or '0 3 * * *')")
    p.add_argument("--timezone", default=None, help="serve: IANA zone of the cron (default $REMIXTV_NIGHTLY_TZ or UTC)")
    p.set_defaults(func=cmd_nightly)
    args = parser.parse_args(argv)
    _quiet_prefect(args.verbose)
    if getattr(args, "s3_endpoint", None):
        os.environ["REMIXTV_S3_ENDPOINT"] = args.s3_endpoint  # read by flows.storage.client, here and in the flows

    from render.core.errors import FfmpegError, UserError

    _stop_on_sigterm()
    try:
        return args.func(args)
    except UserError as exc:
        return _fail(exc.problems)
    except FfmpegError as exc:
        return _fail([str(exc)], 2)
    except _Terminated:
        return _fail(["stopped (SIGTERM)"], 143)
    except KeyboardInterrupt:
        return _fail(["interrupted"], 130)
    except Exception as exc:
        from .runners import is_transient

        if not is_transient(exc):
            raise
        said = (f"stopped by a transient failure that outlasted the retries ({type(exc).__name__}: {exc}); "
                f"run the same command again: everything finished so far is kept")
        return _fail([said], 4)


if __name__ == "__main__":
    sys.exit(main())
