"""Planning: (EpisodeSpec, CallOut, accepted Sources, analysis) -> an exact Timeline.

All arithmetic is in whole frames. Fixed segments are laid out first; ``fill`` segments
then take the remaining frames with the best unused released material, so the cut lands
on the runtime exactly. Shortfalls are errors that say which segment is short and by how
much: we never pad an episode with black.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from .analysis.loudness import Loudness
from .callout import CallOut
from .errors import SpecError, SpecProblem
from .house import RATE
from .intake import Source
from .spec import EpisodeSpec, SegmentSpec, Select
from .timebase import timecode, to_frames, to_seconds
from .timeline import Segment, Shot, Timeline

TARGET_LUFS = -24.0  # records are pre-levelled towards the programme target (ATSC A/85)
MAX_GAIN_DB = 18.0
STILL_SECONDS = Fraction(5)
CARD_SECONDS = Fraction(4)
ACT_BREAK_SECONDS = Fraction(2)
CREDITS_SECONDS = Fraction(60)
MIN_SHOT_FRAMES = 15  # half a second: anything shorter reads as a glitch
#: The fill's rotation of kinds: moving pictures most often, a still, sound or text between them.
FILL_PATTERN = ("video", "animation", "video", "photo", "music", "video", "animation", "illustration", "video",
                "voice", "video", "text")
#: A fill shows sound-only and text records briefly: they are pictures of sound, not pictures.
FILL_CAP_SECONDS = {"audio": Fraction(12), "text": Fraction(8)}


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the planner knows about each record beyond its probe."""

    loudness: Mapping[str, Loudness]


def byline(callout: CallOut, record_id: str) -> str:
    """Credit names of a record's contributors, in row order, once each."""
    rec = callout.record(record_id)
    names = dict.fromkeys(callout.contributor(c.username).credit_name for c in rec.credits) if rec else {}
    return " · ".join(names)


def gain_db(loudness: Loudness | None) -> float:
    """Pre-levelling gain towards the target, kept 1 dB under full scale at the true peak."""
    if loudness is None or loudness.silent:
        return 0.0
    gain = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, TARGET_LUFS - loudness.integrated_lufs))
    return round(min(gain, -1.0 - loudness.true_peak_dbtp), 2)


def reading_seconds(text: str) -> Fraction:
    """How long a text card stays up: 2.5 words a second plus 2 s, between 5 and 20 s."""
    words = len(text.split())
    return max(Fraction(5), min(Fraction(20), Fraction(words, 5) * 2 + 2))


def quality(src: Source, loud: Loudness | None) -> float:
    """A rough usefulness score for ordering selections (moving pictures with sound first)."""
    score = {"video": 4.0, "image": 2.0, "audio": 2.0, "text": 1.0}[src.visual]
    if src.media and src.media.video:
        score += min(1.0, src.media.video.width * src.media.video.height / (1280 * 720))
    if src.media and src.media.audio and loud is not None and not loud.silent:
        score += 1.0
    return score


def source_shot(src: Source, callout: CallOut, loud: Loudness | None, max_frames: int | None = None,
                start: Fraction = Fraction(0), exact: bool = False, rate: Fraction = RATE) -> Shot | None:
    """The longest shot a source gives, up to ``max_frames``, starting ``start`` seconds in.

    Stills and texts have a natural length (5 s; reading time); ``exact`` makes them last
    ``max_frames`` instead. None when the source has too little to show.
    """
    rid = src.record.record_id
    if src.visual in ("text", "image"):
        natural = to_frames(reading_seconds(src.text) if src.visual == "text" else STILL_SECONDS, rate)
        n = natural if max_frames is None else max_frames if exact else min(natural, max_frames)
        if src.visual == "text":
            return Shot("text", n, rid, text=src.text, byline=byline(callout, rid))
        return Shot("image", n, rid)
    available = int((src.duration_s - start) * rate)  # whole frames the source really has
    if available < 1:
        return None
    if available < MIN_SHOT_FRAMES:
        # a blink of a clip (a spoken digit, a 1-frame GIF) is still somebody's work: hold it to half
        # a second; the render holds its last frame and pads its sound with silence
        available = MIN_SHOT_FRAMES
    n = available if max_frames is None else min(available, max_frames)
    if start == 0 and available > n:  # skip the fumbled first moments of a longer take
        start = to_seconds(min((available - n) // 4, to_frames(Fraction(2), rate)), rate)
    kind = "video" if src.visual == "video" else "audio"
    return Shot(kind, n, rid, source_in_s=start, gain_db=gain_db(loud),
                text=src.record.title if kind == "audio" else "",
                byline=byline(callout, rid) if kind == "audio" else "")


class _Planner:
    def __init__(self, spec: EpisodeSpec, callout: CallOut, sources: Mapping[str, Source], analysis: Analysis):
        self.spec, self.callout, self.sources, self.analysis = spec, callout, sources, analysis
        self.rate = RATE
        self.problems: list[SpecProblem] = []
        self.warnings: list[str] = []
        self.used: set[str] = {s.record for s in spec.segments if s.type == "feature"}

    def problem(self, seg: SegmentSpec, field: str, message: str) -> None:
        index = self.spec.segments.index(seg)
        self.problems.append(SpecProblem(self.spec.path, seg.line, f"segments[{index}].{field}".rstrip("."), message))

    def frames(self, seconds: Fraction) -> int:
        return to_frames(seconds, self.rate)

    def shot(self, src: Source, max_frames: int | None = None, start: Fraction = Fraction(0),
             exact: bool = False) -> Shot | None:
        return source_shot(src, self.callout, self.analysis.loudness.get(src.record.record_id), max_frames, start,
                           exact)

    def candidates(self, select: Select, seg: SegmentSpec) -> list[Source]:
        if select.records:
            pool = []
            for rid in select.records:
                if rid in self.sources:
                    pool.append(self.sources[rid])
                else:
                    self.warnings.append(f"segment {seg.id}: record {rid} is not usable (quarantined or unknown)")
        else:
            pool = sorted(self.sources.values(), key=lambda s: s.record.line)
        pool = [s for s in pool
                if (not select.kinds or s.record.kind in select.kinds)
                and (not select.tags or set(select.tags) & set(s.record.tags))
                and not (select.exclude_used and s.record.record_id in self.used)]
        if select.order == "quality":
            pool.sort(key=lambda s: -quality(s, self.analysis.loudness.get(s.record.record_id)))
        elif select.order == "random":
            random.Random(f"{self.spec.seed}:{seg.id}").shuffle(pool)
        return pool

    def fixed(self, seg: SegmentSpec) -> tuple[Shot, ...] | None:
        """Shots of a segment whose length does not depend on the runtime; None for fill."""
        if seg.type == "card":
            return (Shot("card", self.frames(seg.seconds or CARD_SECONDS), text=seg.text, byline=seg.subtitle),)
        if seg.type == "act_break":
            return (Shot("black", self.frames(seg.seconds or ACT_BREAK_SECONDS)),)
        if seg.type == "credits":
            return (Shot("credits", self.frames(seg.seconds or CREDITS_SECONDS)),)
        if seg.type == "feature":
            return self.feature(seg)
        if seg.type == "montage":
            return self.montage(seg)
        return None

    def feature(self, seg: SegmentSpec) -> tuple[Shot, ...]:
        src = self.sources.get(seg.record)
        if src is None:
            rec = self.callout.record(seg.record)
            why = "is not in the call-out" if rec is None else "cannot be used (see intake.json for the reason)"
            self.problem(seg, "record", f"record {seg.record} {why}")
            return ()
        limits = [x for x in (seg.max_seconds, seg.seconds) if x is not None]
        max_frames = self.frames(min(limits)) if limits else None
        if src.duration_s is not None and seg.start >= src.duration_s:
            self.problem(seg, "start", f"starts at {float(seg.start):.1f} s but {seg.record} is only "
                                       f"{float(src.duration_s):.1f} s long")
            return ()
        if src.visual == "image" and max_frames is None:
            max_frames = self.frames(STILL_SECONDS * 2)  # a featured still holds longer than a montage one
        shot = self.shot(src, max_frames, seg.start, exact=seg.seconds is not None or src.visual == "image")
        if shot is None:
            self.problem(seg, "record", f"record {seg.record} is too short to show")
            return ()
        return (shot,)

    def montage(self, seg: SegmentSpec) -> tuple[Shot, ...]:
        shot_frames = self.frames(seg.shot_seconds)
        shots = []
        for src in self.candidates(seg.select, seg):
            if seg.select.limit is not None and len(shots) >= seg.select.limit:
                break
            shot = self.shot(src, shot_frames)
            if shot is not None:
                shots.append(shot)
                self.used.add(src.record.record_id)
        if not shots:
            self.problem(seg, "select", "no usable released record matches this selection")
        elif seg.select.limit and len(shots) < seg.select.limit:
            self.warnings.append(f"segment {seg.id}: only {len(shots)} of {seg.select.limit} requested records match")
        return tuple(shots)

    def fill(self, seg: SegmentSpec, frames: int) -> tuple[Shot, ...]:
        """Exactly ``frames`` frames of the best unused material, varied by kind."""
        pool = self.candidates(seg.select, seg)
        by_kind: dict[str, list[Source]] = {}
        for src in pool:
            by_kind.setdefault(src.record.kind, []).append(src)
        order = [k for k in FILL_PATTERN if k in by_kind] + sorted(set(by_kind) - set(FILL_PATTERN))
        shots: list[Shot] = []
        left = frames
        max_frames = self.frames(seg.max_shot_seconds)
        while left > 0 and any(by_kind.values()):
            for kind in order:
                if left <= 0 or not by_kind[kind]:
                    continue
                src = by_kind[kind].pop(0)
                cap = FILL_CAP_SECONDS.get(src.visual)
                shot = self.shot(src, min(max_frames, left, self.frames(cap) if cap else left))
                if shot is None:
                    continue
                if left - shot.frames < MIN_SHOT_FRAMES and left != shot.frames:
                    shot = self.shot(src, left, exact=True) or shot  # take the remainder now rather than leave a sliver
                shots.append(shot)
                self.used.add(src.record.record_id)
                left -= shot.frames
        if left > 0:
            self.problem(seg, "", f"fill segment {seg.id!r} is short by {timecode(left, self.rate)}: the call-out "
                                  f"has no more unused released material (needs {timecode(frames, self.rate)})")
        return tuple(shots)


def plan(spec: EpisodeSpec, callout: CallOut, sources: Mapping[str, Source], analysis: Analysis) -> Timeline:
    """Lay the spec out on exact frames; raise SpecError naming each segment that cannot be built."""
    p = _Planner(spec, callout, sources, analysis)
    runtime = to_frames(spec.runtime_s, p.rate)
    laid: dict[str, tuple[Shot, ...]] = {}
    for seg in spec.segments:
        shots = p.fixed(seg)
        if shots is not None:
            laid[seg.id] = shots
    fixed_frames = sum(s.frames for shots in laid.values() for s in shots)
    fills = [s for s in spec.segments if s.type == "fill"]
    spare = runtime - fixed_frames
    if not p.problems:
        if fills and spare < MIN_SHOT_FRAMES * len(fills):
            p.problem(fills[0], "", f"no room to fill: the other segments already run {timecode(fixed_frames, p.rate)} "
                                    f"of the {timecode(runtime, p.rate)} runtime; shorten them")
        elif not fills and spare != 0:
            over = "over" if spare < 0 else "short of"
            p.problems.append(SpecProblem(spec.path, 1, "runtime",
                                          f"segments run {timecode(fixed_frames, p.rate)}, {over} the runtime "
                                          f"{timecode(runtime, p.rate)} by {timecode(abs(spare), p.rate)}; "
                                          "add a fill segment or change segment lengths"))
        else:
            for i, seg in enumerate(fills):
                share = spare // len(fills) + (1 if i < spare % len(fills) else 0)
                laid[seg.id] = p.fill(seg, share)
    if p.problems:
        raise SpecError(p.problems)
    segments, start = [], 0
    for seg in spec.segments:
        shots = laid[seg.id]
        n = sum(s.frames for s in shots)
        segments.append(Segment(seg.id, seg.type, start, n, shots, seg.line))
        start += n
    assert start == runtime, (start, runtime)
    return Timeline(spec.title, p.rate, tuple(segments), tuple(p.warnings))
