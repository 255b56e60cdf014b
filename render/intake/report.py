"""What intake made of a call-out: every record accepted as a ``Source`` or quarantined with a reason."""

from __future__ import annotations

from dataclasses import dataclass

from render.callout.folder import CallOut
from render.core.house import HouseFormat
from render.intake import conform
from render.intake.records import Quarantined, Source


@dataclass(frozen=True, slots=True)
class IntakeReport:
    """A call-out's accepted sources (by record id) and its quarantined records."""

    callout: CallOut
    sources: dict[str, Source]
    quarantined: tuple[Quarantined, ...]

    def quarantine(self, more: tuple[Quarantined, ...] | list[Quarantined]) -> IntakeReport:
        """This report with ``more`` records quarantined: a record that intake accepted but a later
        step could not use (its media failed to decode, or to conform) leaves the sources."""
        if not more:
            return self
        bad = {q.record.record_id for q in more}
        return IntakeReport(self.callout, {k: v for k, v in self.sources.items() if k not in bad},
                            self.quarantined + tuple(more))

    def to_json(self, house: HouseFormat, fit_mode: str) -> dict:
        """intake.json: what was accepted (and how it is conformed to ``house``), what was quarantined and why."""
        return {
            "schema": "remixtv.intake/1", "callout": self.callout.id, "root": str(self.callout.root),
            "accepted": [{"record": s.record.record_id, "kind": s.record.kind, "file": s.record.file,
                          "as": s.visual, "sha256": s.content_hash,
                          "duration_s": float(s.duration_s) if s.duration_s else None,
                          "conform": conform.describe(s.media, house, fit_mode) if s.media else {"text": True}}
                         for s in self.sources.values()],
            "quarantined": [{"record": q.record.record_id, "file": q.record.file, "line": q.record.line,
                             "reason": q.reason, "evidence": q.evidence[-2000:]} for q in self.quarantined],
            "warnings": list(self.callout.warnings),
        }
