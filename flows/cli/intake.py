"""``remixtv intake CALLOUT`` (also ``ingest``): accept or quarantine every record of a call-out,
optionally writing each accepted one conformed to the house format."""

from __future__ import annotations

import json
from pathlib import Path

from . import terminal


def run(args) -> int:
    """Print a table of every record and write intake.json."""
    from flows.prefect_setup import session
    from render.callout.folder import load_callout
    from render.core.cache import write_text_atomic
    from render.core.house import profile as house_profile

    callout = load_callout(args.callout)  # fail fast, before Prefect starts
    err = terminal.console()
    # workers elsewhere do not share our current directory
    cache = str(Path(args.cache).resolve()) if args.dask and args.cache else args.cache
    clips_dir = str(Path(args.write_clips).resolve()) if args.dask and args.write_clips else args.write_clips
    with session(args.verbose, dask=args.dask, cache_root=cache):
        from flows import runners
        from flows.pipeline import intake_callout_flow

        with terminal.bars(err).progress:
            report, clips = runners.using(intake_callout_flow)(str(callout.root), args.profile, cache, clips_dir)
    terminal.intake_table(callout, report, clips)
    out = Path(args.out or Path("out") / "intake" / callout.id)
    write_text_atomic(out / "intake.json", json.dumps(report.to_json(house_profile(args.profile), "blur"),
                                                      ensure_ascii=False, indent=2))
    terminal.warnings(err, callout.warnings)
    err.print(f"wrote {out / 'intake.json'}")
    return 0
