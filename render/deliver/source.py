"""The programme as every deliverable reads it: the rendered pieces' pictures and PCM sound (the
same pieces the join copied into episode.mp4) and the level the join chose for the programme.

A deliverable decodes the pieces once and encodes each frame once, in its own format; its sound is
the pieces' PCM with the join's level applied again (each act's own gain, stepping where the join's
stepped; then one gain, or the same gain into the same limiter), so every deliverable carries the
programme the master carries, at the same loudness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from render.compose.store import RenderedPiece
from render.core import ffmpeg
from render.core.errors import UserError
from render.core.house import HouseFormat
from render.core.timebase import samples_for
from render.deliver.leader import frame_clock
from render.master import level as level_mod


@dataclass(frozen=True, slots=True)
class Programme:
    """The programme's pieces in order, how its sound is levelled, and its exact length."""

    pieces: tuple[RenderedPiece, ...]
    level_chain: str
    frames: int
    samples: int

    def inputs(self, work: Path) -> list[str]:
        """ffmpeg inputs 0 (the pictures) and 1 (the sound) for the pieces, listed into ``work``."""
        vlist, alist = work / "programme-video.txt", work / "programme-audio.txt"
        vlist.write_text("".join(ffmpeg.concat_entry(p.video) for p in self.pieces))
        alist.write_text("".join(ffmpeg.concat_entry(p.audio) for p in self.pieces))
        return ["-f", "concat", "-safe", "0", "-i", str(vlist), "-f", "concat", "-safe", "0", "-i", str(alist)]

    def picture(self, rate, out: str) -> str:
        """The programme's picture, every frame stamped in the frame time base, as ``[out]``."""
        return f"[0:v]{frame_clock(rate)}[{out}]"

    def sound(self, out: str) -> str:
        """The programme's levelled stereo sound, exactly as long as its picture, as ``[out]``."""
        n = self.samples
        return (f"[1:a]{self.level_chain},aformat=sample_rates=48000:channel_layouts=stereo,"
                f"apad=whole_len={n},atrim=end_sample={n},asetpts=N/SR/TB[{out}]")


def programme(rendered: Sequence[RenderedPiece], loudness: dict | None, house: HouseFormat) -> Programme:
    """The programme the join made from ``rendered``, levelled as its ``loudness`` (build.json's) says."""
    if not loudness:
        raise UserError(["a delivery is made from a levelled programme: build it with --profile master"])
    frames = sum(p.frames for p in rendered)
    return Programme(tuple(rendered), level_chain(loudness), frames, samples_for(frames, house.rate))


def level_chain(loudness: dict) -> str:
    """The join's level as a filter chain on the pieces' PCM: the acts' own gains, if the join gave
    each act one (the same gains, stepping at the same programme times), then the programme's: linear
    loudnorm is one gain (applied as that gain), a limited programme the same gain into the same limiter."""
    mode, gain = loudness["mode"], float(loudness["gain_db"])
    if mode == "none":
        programme = "anull"
    elif mode == "linear":
        programme = f"volume={gain:.2f}dB"
    else:
        programme = level_mod.limiter_chain(gain, float(loudness["limiter_ceiling_dbtp"]))
    acts = level_mod.acts_chain(loudness)
    return programme if acts is None else f"{acts},{programme}"
