"""The music cue sheet: every use of music in the cut, read from the Timeline, with who made the music
(the call-out's credits and their roles) and what it remixes (its lineage, as the credits have it).

A use is a stretch of the programme where a music record is heard: a bed under a segment (``under``:
under voices and the clips' own sound, a *background* use; ``replace``: the music the pictures are
cut to, *visual vocal* in a song segment, *background* in a montage), or a music record shown as
itself (an audio shot: *visual vocal*). The same record heard continuously across segments or shots
is one use. In and out are drop-frame timecode on the programme's clock (01:00:00;00 at its first
frame when it is delivered with a leader), the out point exclusive.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

from render.callout import remix
from render.callout.folder import DEFAULT_ROLE, CallOut
from render.core.cache import write_text_atomic
from render.core.timebase import dropframe_timecode
from render.edit.timeline import Timeline

COLUMNS = ("cue", "record", "title", "contributors", "use", "in", "out", "duration", "remixes")


@dataclass(frozen=True, slots=True)
class Cue:
    """One continuous use of one music record: programme frames ``[start, end)``."""

    record_id: str
    use: str
    start: int
    end: int


def _uses(timeline: Timeline, callout: CallOut) -> list[Cue]:
    """Every stretch where a music record is heard, in programme order, before merging."""
    def is_music(rid: str) -> bool:
        rec = callout.record(rid)
        return rec is not None and rec.kind == "music"

    out = []
    for seg in timeline.segments:
        if seg.bed is not None and is_music(seg.bed.record_id):
            use = "background" if seg.bed.mix == "under" or seg.type != "song" else "visual vocal"
            out.append(Cue(seg.bed.record_id, use, seg.start_frame, seg.end_frame))
        if seg.bed is not None and seg.bed.mix == "replace":
            continue  # the bed replaces the shots' own sound
        for shot, at in zip(seg.shots, seg.shot_starts()):
            if shot.kind in ("audio", "video") and is_music(shot.record_id):
                out.append(Cue(shot.record_id, "visual vocal", at, at + shot.frames))
    return out


def cues(timeline: Timeline, callout: CallOut) -> tuple[Cue, ...]:
    """The cut's music uses, one per continuous use of a record (adjacent stretches of the same
    record and use are joined, so a use that crosses a piece, shot or segment boundary is one line)."""
    merged: list[Cue] = []
    for cue in sorted(_uses(timeline, callout), key=lambda c: (c.start, c.record_id)):
        last = next((m for m in reversed(merged) if m.record_id == cue.record_id), None)
        if last is not None and last.use == cue.use and last.end == cue.start:
            merged[merged.index(last)] = Cue(last.record_id, last.use, last.start, cue.end)
        else:
            merged.append(cue)
    return tuple(merged)


def _people(rid: str, callout: CallOut) -> str:
    rec = callout.record(rid)
    return "; ".join(f"{callout.contributor(c.username).credit_name} ({c.role or DEFAULT_ROLE[rec.kind]})"
                     for c in rec.credits) if rec else ""


def rows(timeline: Timeline, callout: CallOut, first_frame: int = 0) -> list[dict]:
    """The cue sheet's rows; ``first_frame`` is the drop-frame frame number of the programme's first frame."""
    out = []
    for n, cue in enumerate(cues(timeline, callout), 1):
        rec = callout.record(cue.record_id)
        upstream = remix.lineage([cue.record_id], callout)
        out.append({
            "cue": n, "record": cue.record_id, "title": rec.title if rec else "",
            "contributors": _people(cue.record_id, callout), "use": cue.use,
            "in": dropframe_timecode(first_frame + cue.start), "out": dropframe_timecode(first_frame + cue.end),
            "duration": dropframe_timecode(cue.end - cue.start),
            "remixes": " | ".join(f"{callout.record(r).title} ({r}) by {_people(r, callout)}, via "
                                  f"{' > '.join(path)}" for r, path in upstream.items()),
        })
    return out


def write(timeline: Timeline, callout: CallOut, folder: Path, first_frame: int = 0) -> list[dict]:
    """``cue_sheet.csv`` and a readable ``cue_sheet.html`` into ``folder``, atomically; returns the rows."""
    table = rows(timeline, callout, first_frame)
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    write_text_atomic(folder / "cue_sheet.csv", buf.getvalue())
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in COLUMNS) + "</tr>\n"
                    for r in table)
    title = html.escape(timeline.title)
    write_text_atomic(folder / "cue_sheet.html", (
        f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Music cue sheet: {title}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;"
        "padding:4px 8px;text-align:left}</style></head>\n"
        f"<body><h1>Music cue sheet: {title}</h1>\n<table><tr>"
        + "".join(f"<th>{c}</th>" for c in COLUMNS) + f"</tr>\n{cells}</table></body></html>\n"))
    return table
