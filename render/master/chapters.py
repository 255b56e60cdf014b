"""The programme's chapters: one at 0 and one at the first frame after each act break, titled by the
segment that starts there, written as an ffmetadata file in the programme's own time base
(1001/30000), so chapter times are exact frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from render.core.timebase import timecode
from render.edit.timeline import Timeline


@dataclass(frozen=True, slots=True)
class Chapter:
    """Frames ``[start, end)`` of the programme, titled by the segment that starts there."""

    start: int
    end: int
    title: str

    def to_json(self, rate: Fraction) -> dict:
        return {"start_frame": self.start, "end_frame": self.end, "start": timecode(self.start, rate),
                "end": timecode(self.end, rate), "title": self.title}


def chapters(timeline: Timeline) -> tuple[Chapter, ...]:
    """A chapter at 0 and one at the first frame after each act break (a viewer skipping ahead
    lands on the next act, not on black); the act break closes the chapter before it."""
    total = timeline.frames
    starts: dict[int, str] = {0: timeline.segments[0].id} if timeline.segments else {}
    for i, seg in enumerate(timeline.segments):
        if seg.type == "act_break" and seg.end_frame < total:
            starts[seg.end_frame] = timeline.segments[i + 1].id
    frames = sorted(starts)
    return tuple(Chapter(a, b, starts[a]) for a, b in zip(frames, frames[1:] + [total]) if b > a)


def acts(timeline: Timeline) -> list[tuple[int, int]]:
    """The programme's acts: the runs of segments between act breaks, as ``[start, end)`` frames."""
    out: list[tuple[int, int]] = []
    start = 0
    for seg in timeline.segments:
        if seg.type == "act_break":
            if seg.start_frame > start:
                out.append((start, seg.start_frame))
            start = seg.end_frame
    if timeline.frames > start:
        out.append((start, timeline.frames))
    return out


def act_breaks(timeline: Timeline) -> list[dict]:
    """build.json's ``act_breaks``: each act break's exact frames and timecodes."""
    return [{"id": s.id, "start_frame": s.start_frame, "end_frame": s.end_frame,
             "start": timecode(s.start_frame, timeline.rate), "end": timecode(s.end_frame, timeline.rate)}
            for s in timeline.segments if s.type == "act_break"]


def _meta_escape(text: str) -> str:
    return "".join("\\" + c if c in "=;#\\\n" else c for c in text)


def ffmetadata(chapter_list: Sequence[Chapter], rate: Fraction) -> str:
    """An ffmetadata document carrying ``chapter_list`` in the frame time base (exact frames)."""
    tb = f"{rate.denominator}/{rate.numerator}"
    out = [";FFMETADATA1"]
    for c in chapter_list:
        out += ["", "[CHAPTER]", f"TIMEBASE={tb}", f"START={c.start}", f"END={c.end}", f"title={_meta_escape(c.title)}"]
    return "\n".join(out) + "\n"
