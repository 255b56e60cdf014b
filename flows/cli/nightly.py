"""``remixtv nightly serve|run``: the nightly preview of every spec, on a schedule or once now."""

from __future__ import annotations

from pathlib import Path

from . import terminal


def run(args) -> int:
    """``serve``: register the scheduled deployment and run it when due; ``run``: once, now
    (exit 1 when only specs or call-outs failed, 2 when a media tool or a bug did)."""
    from flows.prefect_setup import session
    from flows.storage import is_uri

    specs = Path(args.specs).expanduser().resolve()
    out = args.out if is_uri(args.out) else str(Path(args.out).expanduser().resolve())
    if args.action == "serve":
        with session(args.verbose, service=True):
            from flows import nightly

            return _serve(nightly, specs, out, args)
    from flows import nightly

    nightly.find_specs(specs)  # fail fast, before Prefect's server starts (that costs seconds)
    with session(args.verbose):
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
            terminal.fail([f"FAILED  {r.name}.yaml:", *(f"  {line}" for line in r.errors)])
    if not is_uri(out):
        print(Path(out) / "nightly.md")
    if not report.failed:
        return 0
    return 1 if all(r.failure == "spec" for r in report.failed) else 2


def _serve(nightly, specs: Path, out: str, args) -> int:
    schedule = nightly.schedule_from(args.cron, args.timezone)
    nightly.find_specs(specs)
    print(f"serving {nightly.FLOW_NAME}/{nightly.DEPLOYMENT_NAME}: cron {schedule.cron!r} ({schedule.timezone}), "
          f"specs {specs} -> {out}", flush=True)
    nightly.serve(specs, out, args.cache, schedule)
    return 0
