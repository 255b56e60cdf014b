"""Planning: (EpisodeSpec, CallOut, accepted Sources, analysis) -> an exact Timeline.

All arithmetic is in whole frames. Fixed segments are laid out first; ``fill`` segments
then take the remaining frames with the best unused released material, so the cut lands
on the runtime exactly. Shortfalls are errors that say which segment is short and by how
much: we never pad an episode with black.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction

from render.analysis import edit
from render.analysis.audio import AudioAnalysis
from render.analysis.loudness import Loudness
from render.analysis.pictures import PictureAnalysis
from render.callout.folder import CallOut
from render.core.errors import SpecError, SpecProblem
from render.core.house import RATE, TARGET_LUFS
from render.core.timebase import timecode, to_frames, to_seconds
from render.edit.spec import EpisodeSpec, SegmentSpec, Select
from render.edit.timeline import CUT, Bed, Segment, Shot, Timeline, Transition
from render.intake.records import Source

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
    """What the planner knows about each record beyond its probe (keyed by record id)."""

    loudness: Mapping[str, Loudness]
    audio: Mapping[str, AudioAnalysis] = field(default_factory=dict)
    pictures: Mapping[str, PictureAnalysis] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # analyses that failed (their records are used without them)

    def of(self, record_id: str) -> tuple[Loudness | None, AudioAnalysis | None, PictureAnalysis | None]:
        return self.loudness.get(record_id), self.audio.get(record_id), self.pictures.get(record_id)


def byline(callout: CallOut, record_id: str) -> str:
    """Credit names of a record's contributors, in row order, once each."""
    rec = callout.record(record_id)
    names = dict.fromkeys(callout.contributor(c.username).credit_name for c in rec.credits) if rec else {}
    return " · ".join(names)


def gain_db(loudness: Loudness | None) -> float:
    """Pre-levelling gain towards the programme target, kept 1 dB under full scale at the true peak."""
    if loudness is None or loudness.silent:
        return 0.0
    gain = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, TARGET_LUFS - loudness.integrated_lufs))
    return round(min(gain, -1.0 - loudness.true_peak_dbtp), 2)


def reading_seconds(text: str) -> Fraction:
    """How long a text card stays up: 2.5 words a second plus 2 s, between 5 and 20 s."""
    words = len(text.split())
    return max(Fraction(5), min(Fraction(20), Fraction(words, 5) * 2 + 2))


def quality(src: Source, loud: Loudness | None, audio: AudioAnalysis | None = None,
            pictures: PictureAnalysis | None = None) -> float:
    """A usefulness score for ordering selections: moving pictures with sound first, then the
    analysed picture quality (sharp, well exposed, steady) and clean sound (no clipping)."""
    score = {"video": 4.0, "image": 2.0, "audio": 2.0, "text": 1.0}[src.visual]
    if pictures is not None and pictures.shots:
        score += sum(s.quality * (s.end - s.start) for s in pictures.shots) / max(1, pictures.frames)
    if audio is not None and audio.clipped:
        score -= 0.5
    if src.media and src.media.video:
        score += min(1.0, src.media.video.width * src.media.video.height / (1280 * 720))
    if src.media and src.media.audio and loud is not None and not loud.silent:
        score += 1.0
    return score


def source_shot(src: Source, callout: CallOut, loud: Loudness | None, max_frames: int | None = None,
                start: Fraction | None = None, exact: bool = False, rate: Fraction = RATE, *,
                audio: AudioAnalysis | None = None, pictures: PictureAnalysis | None = None,
                avoid_flashes: bool = False, after: int = 0) -> Shot | None:
    """The best shot a source gives, up to ``max_frames``.

    With ``start`` (seconds) the shot starts there, as the editor said. Otherwise dead heads and
    tails (black, frozen, and for sound records dead air) are trimmed and, when the pictures were
    analysed, the best excerpt is chosen on shot boundaries (``edit.best_excerpt``), starting at or
    after frame ``after``. ``avoid_flashes`` refuses (None) a source with no flash-free excerpt.
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
    total = int(src.duration_s * rate)  # whole frames the source really has
    if pictures is not None:
        total = min(total, pictures.frames)  # past the last decoded picture there is nothing to see
    if start is not None:
        first, end = min(to_frames(start, rate), total), total
    else:
        first, end = edit.usable_range(total, audio, pictures) if total > 0 else (0, 0)
        if after and end - after >= MIN_SHOT_FRAMES:
            first = max(first, after)  # a second shot of the same record shows what the first did not
    available = end - first
    if available < 1:
        return None
    # a blink of a clip (a spoken digit, a 1-frame GIF) is still somebody's work: hold it to half
    # a second; the render holds its last frame and pads its sound with silence
    available = max(available, MIN_SHOT_FRAMES)
    n = available if max_frames is None else min(available, max_frames)
    if start is None:
        chosen = edit.best_excerpt(pictures, n, (first, end)) if pictures is not None and end - first >= n else None
        if chosen is not None:
            first = chosen
        elif avoid_flashes and not edit.flash_free(pictures, first, first + n):
            return None
        elif available > n:  # no shot list: skip the fumbled first moments of a longer take
            first += min((available - n) // 4, to_frames(Fraction(2), rate))
    elif avoid_flashes and not edit.flash_free(pictures, first, first + n):
        return None
    kind = "video" if src.visual == "video" else "audio"
    return Shot(kind, n, rid, source_in_s=to_seconds(first, rate), gain_db=gain_db(loud),
                text=src.record.title if kind == "audio" else "",
                byline=byline(callout, rid) if kind == "audio" else "", sound=sound_role(src.record.kind))


def sound_role(record_kind: str) -> str:
    """What a record's own sound is for the stems: a voice record's is dialogue, a music record's music,
    anything else's (a phone video, an animation) a clip's, split by its speech."""
    return {"voice": "dialogue", "music": "music"}.get(record_kind, "clip")


def with_speech(runs: list[tuple[Shot, ...]], audio: Mapping[str, AudioAnalysis], rate: Fraction = RATE
                ) -> list[tuple[Shot, ...]]:
    """``runs`` (each segment's shots, in programme order, transitions placed) with each clip's analysed
    speech as frames from the shot's first frame, over every frame its sound plays: its own, and the
    handles the crossfades on either side borrow from beyond its in and out points."""
    def borrows(t: Transition | None) -> bool:  # only a crossfade plays sound from beyond a cut
        return t is not None and t.kind == "crossfade" and not t.is_cut

    flat = [shot for run in runs for shot in run]
    out: list[tuple[Shot, ...]] = []
    i = 0
    for run in runs:
        placed = []
        for shot in run:
            nxt = flat[i + 1] if i + 1 < len(flat) else None
            i += 1
            heard = audio.get(shot.record_id) if shot.kind in ("video", "audio") and shot.sound == "clip" else None
            if heard is None or not heard.speech:
                placed.append(shot)
                continue
            lo = -shot.enter.before_frames if borrows(shot.enter) else 0
            hi = shot.frames + (nxt.enter.after_frames if nxt is not None and borrows(nxt.enter) else 0)
            first = to_frames(shot.source_in_s, rate)
            spans = []
            for span in heard.speech:
                a, b = span.frames(rate)
                a, b = max(a - first, lo), min(b - first, hi)
                if a < b:
                    spans.append((a, b))
            placed.append(replace(shot, speech=tuple(spans)))
        out.append(tuple(placed))
    return out


def flash_note(pictures: PictureAnalysis | None, rate: Fraction = RATE) -> str:
    """Where a record flashes, for warnings: '00:00:03:12-00:00:05:00 (luminance, 6 flashes/s)'."""
    if pictures is None or not pictures.flashes:
        return ""
    return ", ".join(f"{timecode(f.start, rate)}-{timecode(f.end, rate)} ({f.kind}, {f.flashes_per_s:g} flashes/s)"
                     for f in pictures.flashes[:3])


def beat_grid(beats: list[int], length: int, target: int, min_gap: int = MIN_SHOT_FRAMES) -> list[int]:
    """Cut frames in ``(0, length)``, each on a beat, spaced as near ``target`` frames as the beats allow."""
    beats = sorted(b for b in beats if min_gap <= b <= length - min_gap)
    cuts: list[int] = []
    prev = 0
    while length - prev >= target * 3 // 2:  # less than that left is the last shot
        options = [b for b in beats if b - prev >= min_gap]
        if not options:
            break
        prev = min(options, key=lambda b: (abs(b - prev - target), b))
        cuts.append(prev)
    return cuts


def speech_under(shots: tuple[Shot, ...], audio: Mapping[str, AudioAnalysis], rate: Fraction = RATE
                 ) -> tuple[tuple[int, int], ...]:
    """Frames ``[a, b)`` of a run of shots where their own sound is speech (a bed ducks there); gaps
    under half a second are bridged so the bed does not pump between words."""
    speech: list[tuple[int, int]] = []
    at = 0
    for shot in shots:
        heard = audio.get(shot.record_id) if shot.kind in ("video", "audio") else None
        first = to_frames(shot.source_in_s, rate)
        for span in heard.speech if heard else ():
            a, b = span.frames(rate)
            a, b = max(a, first), min(b, first + shot.frames)
            if a < b:
                speech.append((at + a - first, at + b - first))
        at += shot.frames
    merged: list[tuple[int, int]] = []
    for a, b in sorted(speech):
        if merged and a <= merged[-1][1] + to_frames(Fraction(1, 2), rate):  # don't pump between words
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


def place_transitions(laid: list[tuple[SegmentSpec, tuple[Shot, ...]]], rate: Fraction,
                      warnings: list[str]) -> list[tuple[Shot, ...]]:
    """Every shot with its ``enter`` transition, in frames, clamped to what its two shots can hold.

    A transition sits on its cut and changes no length, so this never moves the runtime. A shot must
    hold the second half of its incoming transition plus the first half of its outgoing one; going
    through the programme in order, a transition that does not fit is shortened to what does (with a
    warning naming the segment), or dropped to a cut under two frames. A crossfade into or out of an
    act break plays as a dip: the break stays black.
    """
    out: list[tuple[Shot, ...]] = []
    prev: Shot | None = None  # the previous shot in programme order, as placed
    prev_type = ""
    for seg, shots in laid:
        placed = []
        for j, shot in enumerate(shots):
            want = seg.transition if j else seg.transition_in
            enter = CUT
            if prev is not None and want.type != "cut":
                kind = want.type
                if kind == "crossfade" and j == 0 and "act_break" in (seg.type, prev_type):
                    kind = "dip"
                where = f"segment {seg.id}: " + (f"transition_in ({kind})" if j == 0 else f"{kind} into shot {j + 1}")
                enter = _fitted(kind, to_frames(want.seconds, rate), prev, shot, where, rate, warnings)
            shot = replace(shot, enter=enter)
            placed.append(shot)
            prev = shot
        if shots:
            prev_type = seg.type
        out.append(tuple(placed))
    return out


def _fitted(kind: str, asked: int, prev: Shot, shot: Shot, where: str, rate: Fraction,
            warnings: list[str]) -> Transition:
    """A transition of ``asked`` frames from ``prev`` into ``shot``, shortened (or a cut) to fit them."""
    room = prev.frames - prev.enter.after_frames  # what the outgoing shot has left to give
    fits = min(asked, 2 * room + 1, 2 * shot.frames)
    if fits < 2:
        warnings.append(f"{where} dropped to a cut: the shots either side are too short "
                        f"to hold any of its {timecode(asked, rate)}")
        return CUT
    if fits < asked:
        warnings.append(f"{where} shortened from {timecode(asked, rate)} to {timecode(fits, rate)} ({fits} frames): "
                        "the shots either side are too short to hold it")
    return Transition(kind, fits)


class _Planner:  # one concept: the planner's state over one spec (problems, warnings, records used); short methods
    def __init__(self, spec: EpisodeSpec, callout: CallOut, sources: Mapping[str, Source], analysis: Analysis):
        self.spec, self.callout, self.sources, self.analysis = spec, callout, sources, analysis
        self.rate = RATE
        self.problems: list[SpecProblem] = []
        self.warnings: list[str] = list(analysis.warnings)
        self.used: set[str] = {s.record for s in spec.segments if s.type == "feature"}
        self.used |= {s.music for s in spec.segments if s.music} | {s.bed for s in spec.segments if s.bed}
        self.beds: dict[str, Bed] = {}

    def problem(self, seg: SegmentSpec, field: str, message: str) -> None:
        index = self.spec.segments.index(seg)
        self.problems.append(SpecProblem(self.spec.path, seg.line, f"segments[{index}].{field}".rstrip("."), message))

    def frames(self, seconds: Fraction) -> int:
        return to_frames(seconds, self.rate)

    def shot(self, src: Source, max_frames: int | None = None, start: Fraction | None = None,
             exact: bool = False, *, seg: SegmentSpec | None = None, after: int = 0) -> Shot | None:
        """``source_shot`` with this record's analysis; flash-risk excerpts refused unless ``seg`` allows them."""
        loud, audio, pictures = self.analysis.of(src.record.record_id)
        avoid = seg is not None and not self.spec.flashes_allowed(seg)
        return source_shot(src, self.callout, loud, max_frames, start, exact, self.rate, audio=audio,
                           pictures=pictures, avoid_flashes=avoid, after=after)

    def labelled(self, shot: Shot, seg: SegmentSpec) -> Shot:
        """The shot with its lower third (title over credit names) when the segment wants one."""
        n = min(self.frames(seg.lower_third_seconds), shot.frames)
        if shot.kind not in ("video", "image") or n < self.frames(Fraction(1)):
            return shot  # under a second nobody can read it; sound and text records carry their own titles
        rec = self.callout.record(shot.record_id)
        return replace(shot, text=rec.title if rec else "", byline=byline(self.callout, shot.record_id),
                       label_frames=n)

    def bed_under(self, seg: SegmentSpec, shots: tuple[Shot, ...]) -> Bed | None:
        """A music bed under the segment's own sound, ducked where that sound is speech."""
        music = self.sources.get(seg.bed)
        if music is None or music.media is None or music.media.audio is None:
            why = "has no sound" if music is not None else "cannot be used (see intake.json for the reason)"
            self.problem(seg, "bed", f"record {seg.bed} {why}")
            return None
        loud, audio, _ = self.analysis.of(seg.bed)
        head, tail = edit.usable_range(int(music.duration_s * self.rate), audio, None, trim_silence=True)
        length = sum(s.frames for s in shots)
        if tail - head < length:
            self.warnings.append(f"segment {seg.id}: bed {seg.bed} runs {timecode(tail - head, self.rate)}, "
                                 f"the segment {timecode(length, self.rate)}; the rest is without it")
        return Bed(seg.bed, to_seconds(head, self.rate), round(gain_db(loud) + seg.bed_db, 2), "under",
                   speech_under(shots, self.analysis.audio, self.rate))

    def flashing(self, seg: SegmentSpec, record_id: str) -> str:
        """Where the record flashes, when that keeps it out of this segment; "" otherwise."""
        if self.spec.flashes_allowed(seg):
            return ""
        return flash_note(self.analysis.pictures.get(record_id), self.rate)

    def flash_warning(self, seg: SegmentSpec, src: Source) -> None:
        """Warn when flashing is why a selected record was left out."""
        note = self.flashing(seg, src.record.record_id)
        if note:
            self.warnings.append(f"segment {seg.id}: left out {src.record.record_id} — flashing that risks "
                                 f"photosensitive viewers at {note}; set allow_flashes: true to use it anyway")

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
            pool.sort(key=lambda s: -quality(s, *self.analysis.of(s.record.record_id)))
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
        if seg.type in ("montage", "song"):
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
        if src.duration_s is not None and seg.start is not None and seg.start >= src.duration_s:
            self.problem(seg, "start", f"starts at {float(seg.start):.1f} s but {seg.record} is only "
                                       f"{float(src.duration_s):.1f} s long")
            return ()
        if src.visual == "image" and max_frames is None:
            max_frames = self.frames(STILL_SECONDS * 2)  # a featured still holds longer than a montage one
        shot = self.shot(src, max_frames, seg.start, exact=seg.seconds is not None or src.visual == "image", seg=seg)
        if shot is None:
            note = self.flashing(seg, seg.record)
            if note:
                self.problem(seg, "record", f"record {seg.record} flashes in a way that risks photosensitive viewers "
                                            f"({note}) and no flash-free excerpt of the asked length exists; "
                                            "choose another record or start, or set allow_flashes: true")
            else:
                self.problem(seg, "record", f"record {seg.record} is too short to show")
            return ()
        if src.visual in ("video", "audio") and shot.frames < (max_frames or 0) and seg.seconds is not None:
            self.problem(seg, "seconds", f"record {seg.record} has only {timecode(shot.frames, self.rate)} to show "
                                         f"from there, not {timecode(max_frames, self.rate)}")
            return ()
        return (self.labelled(shot, seg),)

    def montage(self, seg: SegmentSpec) -> tuple[Shot, ...]:
        if seg.music:
            return self.music_montage(seg)
        shot_frames = self.frames(seg.shot_seconds)
        shots = []
        for src in self.candidates(seg.select, seg):
            if seg.select.limit is not None and len(shots) >= seg.select.limit:
                break
            shot = self.shot(src, shot_frames, seg=seg)
            if shot is None:
                self.flash_warning(seg, src)
                continue
            shots.append(self.labelled(shot, seg))
            self.used.add(src.record.record_id)
        if not shots:
            self.problem(seg, "select", "no usable released record matches this selection")
        elif seg.select.limit and len(shots) < seg.select.limit:
            self.warnings.append(f"segment {seg.id}: only {len(shots)} of {seg.select.limit} requested records match")
        return tuple(shots)

    def music_montage(self, seg: SegmentSpec) -> tuple[Shot, ...]:
        """Pictures cut to a record's music: the music plays under the whole montage (a Bed) and,
        with ``cut_on: beats``, every cut falls on one of its beats."""
        music = self.sources.get(seg.music)
        if music is None or music.media is None or music.media.audio is None:
            why = "has no sound" if music is not None else "cannot be used (see intake.json for the reason)"
            self.problem(seg, "record" if seg.type == "song" else "music", f"record {seg.music} {why}")
            return ()
        loud, audio, _ = self.analysis.of(seg.music)
        head, tail = edit.usable_range(int(music.duration_s * self.rate), audio, None, trim_silence=True)
        length = self.frames(seg.seconds) if seg.seconds else tail - head
        if length > tail - head:
            self.problem(seg, "seconds", f"music {seg.music} has {timecode(tail - head, self.rate)} of sound "
                                         f"(silence trimmed); the montage asks for {timecode(length, self.rate)}")
            return ()
        cuts = self.music_cuts(seg, audio, head, length)
        if cuts is None:
            return ()
        pool = self.candidates(seg.select, seg)
        if seg.select.limit is not None:
            pool = pool[:seg.select.limit]
        shots, shown = self.fill_slots(seg, pool, [b - a for a, b in zip([0, *cuts], [*cuts, length])])
        if shots is None:
            return ()
        for src in pool:
            if src.record.record_id in shown:
                self.used.add(src.record.record_id)
            else:
                self.flash_warning(seg, src)
        self.beds[seg.id] = Bed(seg.music, to_seconds(head, self.rate), gain_db(loud))
        return shots

    def music_cuts(self, seg: SegmentSpec, audio: AudioAnalysis | None, head: int, length: int) -> list[int] | None:
        """Where a music montage of ``length`` frames cuts: on beats (None when the music has none) or every shot."""
        target = self.frames(seg.shot_seconds)
        if seg.cut_on != "beats":
            return list(range(target, length - MIN_SHOT_FRAMES + 1, target))
        if audio is None or not audio.beat_frames:
            self.problem(seg, "cut_on", f"no steady beat found in {seg.music}; use cut_on: shots")
            return None
        return beat_grid([b - head for b in audio.beat_frames], length, target)

    def fill_slots(self, seg: SegmentSpec, pool: list[Source],
                   slots: list[int]) -> tuple[tuple[Shot, ...] | None, dict[str, int]]:
        """A shot exactly filling each slot, the pool taken round robin; and, by record, the frame its
        last excerpt ended at. None (and a problem) when a slot cannot be filled."""
        shots: list[Shot] = []
        shown: dict[str, int] = {}  # record -> the frame its last excerpt ended at, to show more of it next time
        queue = list(pool)
        for need in slots:
            shot = None
            for _ in range(len(queue)):
                src = queue.pop(0)
                queue.append(src)  # round robin: a short selection repeats, showing later excerpts
                rid = src.record.record_id
                shot = self.shot(src, need, exact=True, seg=seg, after=shown.get(rid, 0))
                if shot is not None and shot.frames < need:
                    shot = None  # a cut must land on the beat: the excerpt has to fill the slot
                if shot is not None:
                    shown[rid] = to_frames(shot.source_in_s, self.rate) + shot.frames
                    break
            if shot is None:
                self.problem(seg, "select", f"no selected record can fill a {timecode(need, self.rate)} shot "
                                            f"(after {len(shots)} shots); add records or lengthen the selection")
                return None, shown
            shots.append(self.labelled(shot, seg))
        return tuple(shots), shown

    def transitions(self, laid: list[tuple[SegmentSpec, tuple[Shot, ...]]]) -> list[tuple[Shot, ...]]:
        """``place_transitions`` over the laid-out segments, warning here."""
        return place_transitions(laid, self.rate, self.warnings)

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
                shot = self.shot(src, min(max_frames, left, self.frames(cap) if cap else left), seg=seg)
                if shot is None:
                    self.flash_warning(seg, src)
                    continue
                if left - shot.frames < MIN_SHOT_FRAMES and left != shot.frames:
                    # take the remainder now rather than leave a sliver
                    shot = self.shot(src, left, exact=True, seg=seg) or shot
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
    for seg in spec.segments:
        if seg.bed and laid.get(seg.id):
            p.beds[seg.id] = p.bed_under(seg, laid[seg.id])
    if p.problems:
        raise SpecError(p.problems)
    segments, start = [], 0
    placed = with_speech(p.transitions([(seg, laid[seg.id]) for seg in spec.segments]), analysis.audio, p.rate)
    for seg, shots in zip(spec.segments, placed):
        n = sum(s.frames for s in shots)
        segments.append(Segment(seg.id, seg.type, start, n, shots, seg.line, p.beds.get(seg.id)))
        start += n
    assert start == runtime, (start, runtime)  # transitions sit on cuts: they never change a length
    return Timeline(spec.title, p.rate, tuple(segments), tuple(p.warnings))
