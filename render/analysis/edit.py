"""Pure helpers the planner uses to turn analysis into edit decisions (no media, no heavy imports).

All arguments and results are project frames (30000/1001) counted from the record's first frame,
the same frames ``Shot.source_in_s = frame / RATE`` selects on the render path.
"""

from __future__ import annotations

from render.analysis.audio import AudioAnalysis
from render.analysis.pictures import PictureAnalysis


def usable_range(frames: int, audio: AudioAnalysis | None = None, pictures: PictureAnalysis | None = None,
                 *, trim_silence: bool | None = None) -> tuple[int, int]:
    """``[first, end)`` frames left after trimming dead heads and tails.

    Pictures: black or frozen frames at the head and the tail go. Sound: dead air at the head and
    tail goes when ``trim_silence`` (default: only when there are no pictures, i.e. an audio
    record shown over a visual). Never trims everything: returns ``(0, frames)`` if nothing is left.
    """
    head, tail = 0, frames
    if pictures is not None:
        for ranges in (pictures.black, pictures.frozen):
            for r in ranges:
                if r.start <= head < r.end:
                    head = r.end
            for r in reversed(ranges):
                if r.start < tail <= r.end:
                    tail = r.start
    if audio is not None and (trim_silence if trim_silence is not None else pictures is None):
        if audio.dead_air and audio.dead_air[0].start == 0:
            head = max(head, audio.dead_air[0].frames(inside=True)[1])
        if audio.dead_air and audio.dead_air[-1].end >= audio.samples:
            tail = min(tail, audio.dead_air[-1].frames(inside=True)[0])
    if tail - head <= 0:
        return 0, frames
    return head, tail


def flash_free(pictures: PictureAnalysis | None, start: int, end: int) -> bool:
    """True when no flash-risk range overlaps frames ``[start, end)``."""
    return pictures is None or not any(f.start < end and start < f.end for f in pictures.flashes)


def best_excerpt(pictures: PictureAnalysis, length: int, usable: tuple[int, int] | None = None) -> int | None:
    """The first frame of the best ``length``-frame excerpt, starting on a shot boundary when one fits.

    Candidates start at each shot start inside ``usable`` (plus ``usable[0]`` itself); an excerpt
    must be flash-free; it scores the overlap-weighted quality of the shots it covers, minus a
    penalty for ending mid-shot less than 15 frames before a cut. None when no flash-free excerpt fits.
    """
    lo, hi = usable or (0, pictures.frames)
    length = min(length, hi - lo)
    if length <= 0:
        return None
    starts = sorted({lo, *(s.start for s in pictures.shots if lo <= s.start <= hi - length)})
    best, best_score = None, -1.0
    for a in starts:
        b = a + length
        if not flash_free(pictures, a, b):
            continue
        score = 0.0
        for s in pictures.shots:
            overlap = min(b, s.end) - max(a, s.start)
            if overlap > 0:
                score += s.quality * overlap / length
        cut_after = [s.start for s in pictures.shots if a < s.start]
        if cut_after and 0 < cut_after[0] - b < 15:
            score -= 0.05  # would leave a sliver of the shot: prefer ending on the cut
        if a == lo and lo not in {s.start for s in pictures.shots}:
            score -= 0.02  # prefer starting on a real cut
        if score > best_score:
            best, best_score = a, score
    if best is None:  # try every frame boundary of flash-free gaps
        for a in range(lo, hi - length + 1, 15):
            if flash_free(pictures, a, a + length):
                return a
    return best


def beat_cuts(audio: AudioAnalysis, start: int, end: int, min_gap: int = 15) -> list[int]:
    """Beat frames in ``[start, end)``, at least ``min_gap`` frames apart: where a montage cuts."""
    out: list[int] = []
    for f in audio.beat_frames:
        if start <= f < end and (not out or f - out[-1] >= min_gap):
            out.append(f)
    return out
