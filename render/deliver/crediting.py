"""Crediting a cut: who appears in it, and the timeline with the credits roll typeset into its slot."""

from __future__ import annotations

from dataclasses import replace

from render.callout.folder import CallOut
from render.core.timebase import to_seconds
from render.deliver import credits as credits_mod
from render.edit.spec import EpisodeSpec
from render.edit.timeline import Timeline


def with_roll(timeline: Timeline, roll_ass: str) -> Timeline:
    """The timeline with its credits shot carrying the typeset roll."""
    segments = tuple(
        replace(seg, shots=tuple(replace(s, text=roll_ass) if s.kind == "credits" else s for s in seg.shots))
        for seg in timeline.segments)
    return replace(timeline, segments=segments)


def credit(spec: EpisodeSpec, timeline: Timeline, callout: CallOut) -> tuple[credits_mod.Credits, Timeline]:
    """The cut's credits, and the timeline with the roll typeset for the spec's credits segment (if any)."""
    credits = credits_mod.compute(timeline, callout)
    seg = next((s for s in spec.segments if s.type == "credits"), None)
    if seg is None:
        return credits, timeline
    frames = next(s.frames for s in timeline.segments if s.id == seg.id)
    roll = credits_mod.roll(credits, to_seconds(frames, timeline.rate), seg.min_name_seconds)
    return credits, with_roll(timeline, roll)
