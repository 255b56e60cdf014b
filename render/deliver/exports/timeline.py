"""Our Timeline as an OpenTimelineIO timeline: the one model every NLE export is written from.

Tracks (all exactly the programme's length, integer frames at the house rate):
  V1 ``Picture``   every shot: the records' conformed (or original) media, our own renders of stills,
                   cards, texts and the credits roll; black and act breaks are gaps. Crossfades are
                   ``Transition``s (in/out offsets = our before/after frames); dips are fade effects.
  V2 ``Graphics``  the lower thirds, our renders with alpha, over the shots they name.
  A1 ``Sound``     the shots' own sound (a gap where a bed replaces it), crossfaded as the picture is.
  A2 ``Music``     each segment's bed as we mixed it (ducked under speech: ducking has no portable form).
  A3 ``Music raw`` the same beds unducked, muted (disabled), for a re-mix.
Markers on the stack: one per segment (act breaks named so) and one per dip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from render.callout.folder import CallOut
from render.core.timebase import to_frames
from render.edit.timeline import SOUND_KINDS, Segment, Shot, Timeline

#: the shot kinds drawn from a record's whole media (the rest are our renders of the shot itself)
RECORD_KINDS = ("video", "audio")
GRAPHIC_KINDS = ("image", "card", "text", "credits")


@dataclass(frozen=True, slots=True)
class MediaFile:
    """One file a clip plays: where it is and the frames it holds at ``rate`` (its available range).

    ``url`` is an absolute file:// URL or a path relative to the export (inside an ``.otioz``)."""

    url: str
    frames: int
    rate: Fraction
    start: int = 0  # its first frame's number (its own timecode, in frames)
    lead: int = 0  # frames before the source's first: a crossfade's pre-roll, its first frame held as the render does
    metadata: tuple[tuple[str, object], ...] = ()

    def reference(self) -> otio.schema.ExternalReference:
        return otio.schema.ExternalReference(
            target_url=self.url, available_range=_range(self.start, self.frames, self.rate),
            metadata={"remixtv": dict(self.metadata)} if self.metadata else {})


@dataclass(frozen=True, slots=True)
class Media:
    """Every file the export's clips play, by what they show.

    ``records``: a record's media, whose frame N is source time N / rate (conformed) or the upload itself;
    ``graphics`` / ``lower_thirds``: our renders of one shot, by (segment index, shot index);
    ``beds``: a segment's bed as mixed and raw, by segment id. ``gain_applied``: the records' media
    carry the shots' pre-levelling gain already (conformed clips are rendered with it)."""

    records: dict[str, MediaFile] = field(default_factory=dict)
    graphics: dict[tuple[int, int], MediaFile] = field(default_factory=dict)
    lower_thirds: dict[tuple[int, int], MediaFile] = field(default_factory=dict)
    beds: dict[str, tuple[MediaFile, MediaFile]] = field(default_factory=dict)
    gain_applied: bool = True


def _range(start: int, frames: int, rate: Fraction) -> otio.opentime.TimeRange:
    r = float(rate)  # OTIO keeps rates as doubles; 30000/1001 round-trips exactly as the same double
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, r), otio.opentime.RationalTime(frames, r))


def record_metadata(callout: CallOut | None, record_id: str) -> dict:
    """The ``remixtv`` metadata of a clip from a record: id, title, contributors, release."""
    rec = callout.record(record_id) if callout else None
    if rec is None:
        return {"record": record_id}
    people = []
    for c in rec.credits:
        who = callout.contributor(c.username)
        people.append({"username": c.username, "credit_name": who.credit_name if who else c.username,
                       "role": c.role})
    return {"record": record_id, "title": rec.title, "file": rec.file, "contributors": people,
            "released": rec.released}


class _Track:
    """A track being laid end to end: clips, gaps and transitions, its length counted in frames."""

    def __init__(self, name: str, kind: str, rate: Fraction):
        self.track = otio.schema.Track(name=name, kind=kind)
        self.rate, self.at = rate, 0

    def gap_to(self, frame: int) -> None:
        if frame > self.at:
            self.track.append(otio.schema.Gap(source_range=_range(0, frame - self.at, self.rate)))
            self.at = frame

    def clip(self, name: str, media: MediaFile, source_in: int, frames: int, metadata: dict) -> otio.schema.Clip:
        clip = otio.schema.Clip(name=name, media_reference=media.reference(),
                                source_range=_range(source_in, frames, self.rate), metadata={"remixtv": metadata})
        self.track.append(clip)
        self.at += frames
        return clip

    def transition(self, before: int, after: int) -> None:
        """A dissolve centred as ours is: ``before`` frames of it before the cut, ``after`` after."""
        r = float(self.rate)
        self.track.append(otio.schema.Transition(
            name="crossfade", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
            in_offset=otio.opentime.RationalTime(before, r), out_offset=otio.opentime.RationalTime(after, r)))

    @property
    def last_is_clip(self) -> bool:
        return len(self.track) > 0 and isinstance(self.track[-1], otio.schema.Clip)


def _fade(clip: otio.schema.Clip, kind: str, frames: int) -> None:
    clip.effects.append(otio.schema.Effect(name=kind, effect_name=kind, metadata={"remixtv": {"frames": frames}}))


def _source_in(shot: Shot, media: MediaFile, rate: Fraction) -> int:
    """The shot's first frame in its media, at the house rate."""
    return to_frames(shot.source_in_s, rate) + media.lead + round(Fraction(media.start) * rate / media.rate)


def to_otio(timeline: Timeline, media: Media, callout: CallOut | None = None, start_frame: int = 0,
            spec_name: str = "") -> otio.schema.Timeline:
    """The OTIO timeline of ``timeline`` playing ``media``; ``start_frame`` is the programme's first
    timecode in frames (0 for 00:00:00;00; a delivery with a leader starts at 01:00:00;00)."""
    rate = timeline.rate
    out = otio.schema.Timeline(name=timeline.title, global_start_time=otio.opentime.RationalTime(start_frame,
                                                                                                 float(rate)))
    out.metadata["remixtv"] = {"schema": "remixtv.otio/1", "rate": str(rate), "frames": timeline.frames,
                               "spec": spec_name, "gain_applied": media.gain_applied}
    v1, v2 = _Track("Picture", "Video", rate), _Track("Graphics", "Video", rate)
    a1, a2, a3 = (_Track("Sound", "Audio", rate), _Track("Music", "Audio", rate), _Track("Music raw", "Audio", rate))
    markers = []
    for si, seg in enumerate(timeline.segments):
        markers.append(_segment_marker(seg, rate))
        _bed(seg, media, a2, a3, callout)
        for hi, (shot, at) in enumerate(zip(seg.shots, seg.shot_starts())):
            enter = shot.enter
            if enter.kind == "crossfade" and not enter.is_cut and v1.last_is_clip and shot.kind != "black":
                v1.transition(enter.before_frames, enter.after_frames)
                if a1.last_is_clip and _plays_sound(shot, seg):
                    a1.transition(enter.before_frames, enter.after_frames)
            elif enter.kind == "dip" and not enter.is_cut:
                markers.append(otio.schema.Marker(name=f"dip {enter.frames} frames", marked_range=_range(
                    at - enter.before_frames, enter.frames, rate), color=otio.schema.MarkerColor.BLACK,
                    metadata={"remixtv": {"transition": enter.to_json(), "cut_frame": at}}))
            _picture(v1, a1, seg, si, hi, shot, at, media, callout)
            if shot.label_frames and (si, hi) in media.lower_thirds:
                v2.gap_to(at)
                v2.clip(f"lower third: {shot.text}", media.lower_thirds[si, hi], 0, shot.label_frames,
                        {"record": shot.record_id, "lower_third": True, "text": shot.text, "byline": shot.byline})
    _dips(v1.track, a1.track, timeline)
    for t in (v1, v2, a1, a2, a3):
        t.gap_to(timeline.frames)
    a3.track.enabled = False  # muted: the raw beds are there to re-mix from, not to play
    out.tracks.extend([v1.track, v2.track, a1.track, a2.track, a3.track])
    out.tracks.markers.extend(markers)
    return out


def _plays_sound(shot: Shot, seg: Segment) -> bool:
    return shot.kind in SOUND_KINDS and not (seg.bed is not None and seg.bed.mix == "replace")


def _picture(v1: _Track, a1: _Track, seg: Segment, si: int, hi: int, shot: Shot, at: int, media: Media,
             callout: CallOut | None) -> None:
    """One shot on V1 (and its sound on A1)."""
    v1.gap_to(at)
    a1.gap_to(at)
    name = f"{seg.id} {hi + 1}: {shot.record_id or shot.kind}"
    meta = {**(record_metadata(callout, shot.record_id) if shot.record_id else {}),
            "kind": shot.kind, "segment": seg.id, "segment_index": si, "shot": hi}
    if shot.kind in RECORD_KINDS and shot.record_id in media.records:
        file = media.records[shot.record_id]
        meta.update(gain_db=shot.gain_db, gain_applied=media.gain_applied)
        first = _source_in(shot, file, v1.rate)
        v1.clip(name, file, first, shot.frames, meta)
        if _plays_sound(shot, seg):
            a1.clip(name, file, first, shot.frames, meta)
    elif shot.kind in GRAPHIC_KINDS and (si, hi) in media.graphics:
        v1.clip(name, media.graphics[si, hi], 0, shot.frames, meta)
    # black (and an act break) stays a gap: black is what an NLE shows there


def _dips(v1: otio.schema.Track, a1: otio.schema.Track, timeline: Timeline) -> None:
    """A dip as fades on the clips either side of its cut: out over its before frames, in over its after."""
    for at, t in timeline.transitions():
        if t.kind != "dip":
            continue
        for track in (v1, a1):
            for item in track:
                if not isinstance(item, otio.schema.Clip):
                    continue
                r = item.range_in_parent()
                start, end = round(r.start_time.value), round(r.end_time_exclusive().value)
                if end == at and t.before_frames:
                    _fade(item, "fade_out", t.before_frames)
                elif start == at and t.after_frames:
                    _fade(item, "fade_in", t.after_frames)


def _bed(seg: Segment, media: Media, a2: _Track, a3: _Track, callout: CallOut | None) -> None:
    if seg.bed is None or seg.id not in media.beds:
        return
    mixed, raw = media.beds[seg.id]
    meta = {**record_metadata(callout, seg.bed.record_id), "segment": seg.id, "bed": True,
            "mix": seg.bed.mix, "gain_db": seg.bed.gain_db, "duck_db": seg.bed.duck_db,
            "duck": [list(r) for r in seg.bed.duck], "source_in_s": str(seg.bed.source_in_s)}
    for track, file, what in ((a2, mixed, "as mixed"), (a3, raw, "raw")):
        track.gap_to(seg.start_frame)
        track.clip(f"{seg.id} bed {seg.bed.record_id} ({what})", file, 0, seg.frames, {**meta, "ducked": what != "raw"})


def _segment_marker(seg: Segment, rate: Fraction) -> otio.schema.Marker:
    act_break = seg.type == "act_break"
    return otio.schema.Marker(
        name=f"act break: {seg.id}" if act_break else seg.id, marked_range=_range(seg.start_frame, seg.frames, rate),
        color=otio.schema.MarkerColor.RED if act_break else otio.schema.MarkerColor.GREEN,
        metadata={"remixtv": {"segment": seg.id, "type": seg.type, "spec_line": seg.spec_line,
                              "records": list(seg.record_ids)}})


def file_url(path: Path) -> str:
    """An absolute, percent-encoded file:// URL (what OTIO, Resolve and melt all read)."""
    return Path(path).resolve().as_uri()
