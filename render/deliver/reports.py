"""The reports a build writes beside its outputs: build.json, and analysis.json for ``remixtv analyze``."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from render import __version__
from render.core.timebase import timecode
from render.deliver.credits import Credits
from render.edit.plan import Analysis
from render.edit.timeline import Timeline
from render.intake.report import IntakeReport
from render.master import chapters, qc

if TYPE_CHECKING:  # only read here (attributes), so the reports do not pin where the renderer keeps them
    from render.compose.pieces import Joined, RenderedPiece


def build_report(spec_path: str, profile: str, timeline: Timeline, report: IntakeReport, credits: Credits,
                 rendered: list[RenderedPiece], joined: Joined, seconds: float,
                 ledger_warnings: tuple[str, ...] = (), qc_report: dict | None = None) -> dict:
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
        "act_breaks": chapters.act_breaks(timeline),
        "chapters": [c.to_json(timeline.rate) for c in chapters.chapters(timeline)],
        "loudness": joined.loudness,
        "sound_encode": joined.sound_encode,
        "qc": qc.summary(qc_report) if qc_report else None,
        "build_seconds": round(seconds, 1), "warnings": warnings,
    }


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
