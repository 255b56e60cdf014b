"""``remixtv``: the command line. The only place errors become exit codes.

Exit codes: 0 ok; 1 a user mistake (bad spec, bad folder, not enough material), printed one
problem per line; 2 a media tool failed (the command and stderr tail are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_SPEC = REPO / "episode_specs" / "demo.yaml"


def _quiet_prefect(verbose: bool) -> None:
    # Prefect logs a failed flow with a traceback; for user mistakes we print our own one-liners.
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO" if verbose else "CRITICAL"
    os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "WARNING" if verbose else "CRITICAL"


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


def _fail(problems: list[str], code: int = 1) -> int:
    for line in problems:
        print(line, file=sys.stderr)
    return code


def cmd_validate(args) -> int:
    from render.callout import load_callout
    from render.house import RATE
    from render.spec import check_against, load_spec
    from render.timebase import timecode, to_frames

    spec = load_spec(args.spec)
    callout = load_callout(spec.callout)
    check_against(spec, callout)
    print(f"{args.spec}: ok: {len(spec.segments)} segments, runtime {timecode(to_frames(spec.runtime_s, RATE), RATE)}, "
          f"call-out {callout.id!r} with {len(callout.records)} records")
    for w in callout.warnings:
        print(f"warning: {w}")
    return 0


def _build(spec: Path, profile: str, out: Path, cache: str | None, verbose: bool) -> dict:
    from rich.console import Console

    from render.callout import load_callout
    from render.spec import check_against, load_spec

    # fail fast on spec mistakes before Prefect starts (that costs seconds)
    loaded = load_spec(spec)
    check_against(loaded, load_callout(loaded.callout))
    from . import progress
    from .pipeline import build_flow

    console = Console(stderr=True)
    bars = _Bars(console)
    progress.install(bars)
    started = time.monotonic()
    with bars.progress:
        result = build_flow(str(spec), profile, str(out), cache)
    folder = out / spec.stem / profile
    console.print(f"[bold]{result['title']}[/]: {result['duration']} ({result['frames']} frames), "
                  f"{len(result['segments'])} segments, {len(result['records_used'])} records, "
                  f"{result['credited']} people credited; pieces rendered {result['pieces']['rendered']}, "
                  f"cached {result['pieces']['cached']}; {time.monotonic() - started:.0f} s")
    for w in result["warnings"][:12]:
        console.print(f"[yellow]warning[/]: {w}")
    if len(result["warnings"]) > 12:
        console.print(f"... and {len(result['warnings']) - 12} more warnings in build.json")
    print(folder / "episode.mp4")
    return result


def cmd_build(args) -> int:
    _build(Path(args.spec), args.profile, Path(args.out), args.cache, args.verbose)
    return 0


def cmd_ingest(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from render.cache import write_text_atomic
    from render.callout import load_callout
    from render.house import profile as house_profile

    from . import progress
    from .pipeline import ingest_flow

    callout = load_callout(args.callout)  # fail fast, before Prefect starts
    console = Console(stderr=True)
    bars = _Bars(console)
    progress.install(bars)
    with bars.progress:
        report, clips = ingest_flow(str(callout.root), args.profile, args.cache, args.write_clips)
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


def cmd_demo(args) -> int:
    from rich.console import Console

    from render.demo import generate_demo_callout
    from render.spec import load_spec

    console = Console(stderr=True)
    spec = load_spec(DEMO_SPEC)
    started = time.monotonic()
    with console.status("generating the demo call-out") as status:
        generate_demo_callout(spec.callout, progress=lambda d, t: status.update(f"generating the demo call-out {d}/{t}"))
    console.print(f"demo call-out ready at {spec.callout} ({time.monotonic() - started:.0f} s)")
    _build(DEMO_SPEC, args.profile, Path(args.out), args.cache, args.verbose)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="remixtv", description="Build TV episodes from crowd-sourced call-outs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build an episode from a spec")
    p.add_argument("spec")
    p.add_argument("--profile", choices=("preview", "master"), default="preview")
    p.add_argument("--out", default="out")
    p.add_argument("--cache", default=None, help="cache folder (default $REMIXTV_CACHE or ~/.cache/remixtv)")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("validate", help="check a spec and its call-out without rendering")
    p.add_argument("spec")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("ingest", help="run intake alone: accept or quarantine every record of a call-out")
    p.add_argument("callout")
    p.add_argument("--profile", choices=("preview", "master"), default="preview")
    p.add_argument("--write-clips", metavar="DIR", default=None, help="write each accepted record conformed")
    p.add_argument("--out", default=None, help="where intake.json goes (default out/ingest/<call-out id>)")
    p.add_argument("--cache", default=None)
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("demo", help="generate the demo call-out and build its preview")
    p.add_argument("--out", default="out")
    p.add_argument("--profile", choices=("preview", "master"), default="preview")
    p.add_argument("--cache", default=None)
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    _quiet_prefect(args.verbose)

    from render.errors import FfmpegError, UserError

    try:
        return args.func(args)
    except UserError as exc:
        return _fail(exc.problems)
    except FfmpegError as exc:
        return _fail([str(exc)], 2)
    except KeyboardInterrupt:
        return _fail(["interrupted"], 130)


if __name__ == "__main__":
    sys.exit(main())
