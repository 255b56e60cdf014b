"""The Timeline: the exact, immutable cut. It knows nothing of ffmpeg or YAML.

Everything downstream (rendering, credits, reports) reads the same Timeline, so credits can
never drift from the cut. Times are integer frames at ``rate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from render.core.timebase import timecode

SCHEMA = "remixtv.timeline/1"
SOUND_KINDS = ("video", "audio")  # shot kinds that play their record's own sound
#: The sound stems a delivery splits the mix into: dialogue, music, effects and ambience (their sum is the mix).
STEMS = ("dx", "mx", "fx")
#: What a shot's own sound is (``Shot.sound``): a voice record is dialogue, a music record music; a clip's
#: sound (a phone video, an animation) is dialogue inside its analysed speech (``Shot.speech``), effects and
#: ambience outside it. A bed is always music.
SOUND_ROLES = ("dialogue", "music", "clip")
STEM_FIELDS = ("sound", "speech")  # the Shot fields only the stems read
TRANSITION_KINDS = ("cut", "crossfade", "dip")


@dataclass(frozen=True, slots=True)
class Transition:
    """How one shot gives way to the next (OpenTimelineIO's model): it sits on the cut, centred on it,
    and never moves the cut or changes any length.

    ``crossfade``: over ``frames`` frames, ``before_frames`` of them before the cut and ``after_frames``
    after, the outgoing shot runs on past its out point and the incoming one starts early (both borrow
    handles), blended linearly in picture and sound. ``dip``: the outgoing shot fades to black and
    silence over its last ``before_frames``, the incoming one fades up over its first ``after_frames``
    (no handles). ``cut``: neither.
    """

    kind: str = "cut"
    frames: int = 0

    @property
    def before_frames(self) -> int:
        return self.frames // 2 if self.kind != "cut" else 0

    @property
    def after_frames(self) -> int:
        return self.frames - self.frames // 2 if self.kind != "cut" else 0

    @property
    def is_cut(self) -> bool:
        return self.kind == "cut" or self.frames <= 0

    def to_json(self) -> dict:
        return {"kind": self.kind, "frames": self.frames}


CUT = Transition()


@dataclass(frozen=True, slots=True)
class Shot:
    """One picture-and-sound item inside a segment.

    kind: ``video`` (moving picture, plays its own sound), ``image`` (moving still, silent),
    ``audio`` (a sound record shown as a visual), ``text`` (a typeset record),
    ``card`` (title card), ``credits`` (the roll), ``black``. ``sound`` and ``speech`` say which stem its
    own sound goes to; they change no frame or sample of the mix, so a piece's cache key leaves them out.
    """

    kind: str
    frames: int
    record_id: str = ""
    source_in_s: Fraction = Fraction(0)  # where in the source the shot starts
    text: str = ""  # card/text words, or the title over an audio visual
    byline: str = ""  # credit names shown with text and audio visuals
    gain_db: float = 0.0  # pre-levelling gain for the record's sound
    label_frames: int = 0  # video/image: a lower third (``text`` over ``byline``) for the first N frames
    enter: Transition = CUT  # from the previous shot in programme order (across a segment boundary too)
    sound: str = "clip"  # video/audio: what its own sound is, for the stems (``SOUND_ROLES``)
    #: a clip's speech, frames ``[a, b)`` from the shot's first frame, over every frame its sound plays
    #: (the handles a crossfade borrows too: negative before its in point, past ``frames`` after its out point)
    speech: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Bed:
    """A record's sound laid under a whole segment.

    ``mix="replace"``: the bed replaces the shots' own sound (a montage cut to music plays the
    song, not the phones). ``mix="under"``: the shots keep their sound and the bed plays under
    it, ducked by ``duck_db`` over the ``duck`` frame ranges (where the shots' sound is speech).
    ``source_in_s`` is where in the record the segment's first frame falls.
    """

    record_id: str
    source_in_s: Fraction = Fraction(0)
    gain_db: float = 0.0
    mix: str = "replace"
    duck: tuple[tuple[int, int], ...] = ()  # frames from the segment start, [start, end)
    duck_db: float = -12.0


@dataclass(frozen=True, slots=True)
class Segment:
    id: str
    type: str
    start_frame: int
    frames: int
    shots: tuple[Shot, ...]
    spec_line: int = 0
    bed: Bed | None = None

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames

    @property
    def record_ids(self) -> tuple[str, ...]:
        ids = [s.record_id for s in self.shots if s.record_id]
        return tuple(dict.fromkeys(ids + ([self.bed.record_id] if self.bed else [])))

    def shot_starts(self) -> tuple[int, ...]:
        """Programme frame where each shot starts (its cut, when it enters with a transition)."""
        out, at = [], self.start_frame
        for shot in self.shots:
            out.append(at)
            at += shot.frames
        return tuple(out)

    def cuts(self) -> tuple[int, ...]:
        """Frames (from the segment start) where one shot gives way to the next."""
        out, at = [], 0
        for shot in self.shots[:-1]:
            at += shot.frames
            out.append(at)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Timeline:
    title: str
    rate: Fraction
    segments: tuple[Segment, ...]
    warnings: tuple[str, ...] = ()

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.segments)

    def records_used(self) -> tuple[str, ...]:
        """Every record whose picture or sound is in the cut, in order of first appearance."""
        return tuple(dict.fromkeys(r for seg in self.segments for r in seg.record_ids))

    def record_frames(self) -> dict[str, int]:
        """Frames of screen time per record."""
        out: dict[str, int] = {}
        for seg in self.segments:
            for shot in seg.shots:
                if shot.record_id:
                    out[shot.record_id] = out.get(shot.record_id, 0) + shot.frames
        return out

    def sound_frames(self) -> dict[str, int]:
        """Frames during which each record's sound plays (its own shots, or a bed under a segment)."""
        out: dict[str, int] = {}
        for seg in self.segments:
            if seg.bed is not None:
                out[seg.bed.record_id] = out.get(seg.bed.record_id, 0) + seg.frames
                continue
            for shot in seg.shots:
                if shot.record_id and shot.kind in SOUND_KINDS:
                    out[shot.record_id] = out.get(shot.record_id, 0) + shot.frames
        return out

    def transitions(self) -> tuple[tuple[int, Transition], ...]:
        """Every transition that is not a cut, with the programme frame of its cut."""
        return tuple((at, shot.enter) for seg in self.segments for shot, at in zip(seg.shots, seg.shot_starts())
                     if not shot.enter.is_cut)

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA, "title": self.title, "rate": str(self.rate), "frames": self.frames,
            "duration": timecode(self.frames, self.rate),
            "segments": [
                {"id": s.id, "type": s.type, "start_frame": s.start_frame, "end_frame": s.end_frame,
                 "start": timecode(s.start_frame, self.rate), "end": timecode(s.end_frame, self.rate),
                 "records": list(s.record_ids),
                 **({"bed": {"record": s.bed.record_id, "source_in_s": float(s.bed.source_in_s),
                             "gain_db": s.bed.gain_db, "mix": s.bed.mix, "duck_db": s.bed.duck_db,
                             "duck": [list(r) for r in s.bed.duck]}} if s.bed else {}),
                 "shots": [{"kind": h.kind, "frames": h.frames, "record": h.record_id or None,
                            "source_in_s": float(h.source_in_s),
                            **({"lower_third_frames": h.label_frames} if h.label_frames else {}),
                            **({"sound": h.sound, "speech": [list(r) for r in h.speech]}
                               if h.kind in SOUND_KINDS else {}),
                            **({"transition": {**h.enter.to_json(), "cut_frame": at,
                                               "cut": timecode(at, self.rate)}} if not h.enter.is_cut else {})}
                           for h, at in zip(s.shots, s.shot_starts())]}
                for s in self.segments
            ],
            "warnings": list(self.warnings),
        }
