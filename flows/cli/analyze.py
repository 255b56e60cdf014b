"""``remixtv analyze CALLOUT``: analyse every record of a call-out (loudness, tempo, shots, flags)."""

from __future__ import annotations

import json
from pathlib import Path

from . import terminal


def run(args) -> int:
    """Print a table of every record's analysis and write analysis.json."""
    from flows.prefect_setup import session
    from render.callout.folder import load_callout
    from render.core.cache import write_text_atomic
    from render.deliver.reports import analysis_report

    callout = load_callout(args.callout)  # fail fast, before Prefect starts
    err = terminal.console()
    with session(args.verbose):
        from flows.pipeline import analyze_callout_flow

        with terminal.bars(err).progress:
            report, analysis = analyze_callout_flow(str(callout.root), args.cache)
    doc = analysis_report(report, analysis)
    terminal.analysis_table(callout.id, doc)
    out = Path(args.out or Path("out") / "analysis" / callout.id)
    write_text_atomic(out / "analysis.json", json.dumps(doc, ensure_ascii=False, indent=2))
    terminal.warnings(err, list(callout.warnings) + doc["warnings"])
    for q in doc["quarantined"]:
        err.print(f"[red]quarantined[/] {q['record']}: {q['reason']}")
    err.print(f"wrote {out / 'analysis.json'}")
    return 0
