"""The Timeline cut into pieces: the units rendered, cached and joined.

A piece is consecutive shots of one segment, about a minute at most, with what lies at its two edges
(``Edges``: where the segment's bed starts and ends, and the neighbouring shots a crossfade across the
edge borrows). ``graph`` renders a piece, ``store`` caches it; its position in the programme is in
neither, so an edit elsewhere never re-renders it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

from render.core.timebase import to_seconds
from render.edit.timeline import CUT, Bed, Shot, Timeline, Transition

PIECE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Edges:
    """What lies at a piece's two edges beyond its own shots.

    ``bed``: does the piece's bed start / end here (it fades there only). A crossfade that spans an
    edge needs the shot on the other side: ``before`` is the previous shot when ``shots[0]`` enters
    with a crossfade (its handle, the frames after its out point, blends into this piece's first
    frames), ``after`` the next shot when it enters with one (its pre-roll blends into this piece's
    last frames), each with the bed under it from the cut on. ``exit`` is the next shot's ``enter``
    (a dip fades this piece out). Neighbours are kept only as far as the handles need them (no lower
    third, no transition of their own), so a piece re-renders when its neighbour's picture or sound
    at the cut changes and not otherwise.
    """

    bed: tuple[bool, bool] = (True, True)
    before: Shot | None = None
    before_bed: Bed | None = None
    after: Shot | None = None
    after_bed: Bed | None = None
    exit: Transition = CUT

    @property
    def record_ids(self) -> tuple[str, ...]:
        ids = [x.record_id for x in (self.before, self.before_bed, self.after, self.after_bed) if x is not None]
        return tuple(dict.fromkeys(r for r in ids if r))


@dataclass(frozen=True, slots=True)
class Piece:
    """The unit of rendering: consecutive shots of one segment, about a minute at most.

    Pieces are grouped greedily from the start of their segment, so changing a segment's
    last shot (as a fill does when the runtime arithmetic moves) re-renders only its last piece.
    A piece renders its own shots' frames only; a crossfade across its edge borrows the neighbouring
    shot (``edges``) and renders this side's half of the blend.
    """

    segment_id: str
    index: int
    shots: tuple[Shot, ...]
    bed: Bed | None = None  # the segment's bed, from where this piece starts in it
    edges: Edges = Edges()

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)

    @property
    def record_ids(self) -> tuple[str, ...]:
        ids = [s.record_id for s in self.shots if s.record_id]
        return tuple(dict.fromkeys(ids + ([self.bed.record_id] if self.bed else [])))

    @property
    def before(self) -> Shot | None:
        return self.edges.before

    @property
    def after(self) -> Shot | None:
        return self.edges.after

    @property
    def exit(self) -> Transition:
        return self.edges.exit


def _handle_of(shot: Shot) -> Shot:
    """A neighbouring shot as a crossfade's handle needs it: its picture and sound, not its lower third
    (over before the handle starts) or its own transition."""
    lower_third = {"text": "", "byline": "", "label_frames": 0} if shot.kind in ("video", "image") else {}
    return dataclasses.replace(shot, enter=CUT, **lower_third)


def _bed_from(bed: Bed | None, frame: int, reach: int, rate: Fraction) -> Bed | None:
    """A segment's bed from ``frame`` (of the segment) on: the bed under a neighbour's handle, with the
    duck ranges within ``reach`` frames of it (on its clock: they can start before it)."""
    if bed is None:
        return None
    reach += round(rate / 2)  # the ducking's ramps reach a quarter second past a range
    duck = tuple((a - frame, b - frame) for a, b in bed.duck if a < frame + reach and b > frame - reach)
    return dataclasses.replace(bed, source_in_s=bed.source_in_s + to_seconds(frame, rate), duck=duck)


def pieces(timeline: Timeline, max_seconds: int = PIECE_SECONDS) -> list[Piece]:
    """Cut every segment into render pieces, in timeline order, each with what lies at its edges."""
    limit = round(max_seconds * timeline.rate)
    # every shot in programme order with its segment and where it starts in it: neighbours cross segments
    flat = [(seg, at, shot) for seg in timeline.segments for shot, at in zip(seg.shots, seg.shot_starts())]
    out = []
    first = 0  # index in flat of the piece's first shot
    for seg in timeline.segments:
        groups: list[list[Shot]] = [[]]
        for shot in seg.shots:
            if groups[-1] and sum(s.frames for s in groups[-1]) + shot.frames > limit:
                groups.append([])
            groups[-1].append(shot)
        groups = [g for g in groups if g]
        at = 0
        for i, group in enumerate(groups):
            n = sum(s.frames for s in group)
            bed = None
            if seg.bed is not None:  # the bed from where this piece starts, its duck ranges on the piece's clock
                duck = tuple((max(a, at) - at, min(b, at + n) - at) for a, b in seg.bed.duck if a < at + n and at < b)
                bed = dataclasses.replace(seg.bed, source_in_s=seg.bed.source_in_s + to_seconds(at, timeline.rate),
                                          duck=duck)
            last = first + len(group) - 1
            before = before_bed = after = after_bed = None
            if first > 0 and group[0].enter.kind == "crossfade" and not group[0].enter.is_cut:
                pseg, pat, prev = flat[first - 1]
                before = _handle_of(prev)
                before_bed = _bed_from(pseg.bed, pat - pseg.start_frame + prev.frames, group[0].enter.frames,
                                       timeline.rate)
            exit_ = flat[last + 1][2].enter if last + 1 < len(flat) else CUT
            if exit_.kind == "crossfade" and not exit_.is_cut:
                nseg, nat, nxt = flat[last + 1]
                after = _handle_of(nxt)
                after_bed = _bed_from(nseg.bed, nat - nseg.start_frame, exit_.frames, timeline.rate)
            edges = Edges((i == 0, i == len(groups) - 1), before, before_bed, after, after_bed, exit_)
            out.append(Piece(seg.id, i, tuple(group), bed, edges))
            at += n
            first = last + 1
    return out
