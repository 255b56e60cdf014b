"""The programme as every deliverable reads it: the rendered pieces' pictures and PCM sound (the
same pieces the join copied into episode.mp4) and the level the join chose for the programme.

A deliverable decodes the pieces once and encodes each frame once, in its own format; its sound is
the pieces' PCM with the join's level applied again (each act's own gain, stepping where the join's
stepped; then one gain, or the same gain into the same limiter), so every deliverable carries the
programme the master carries, at the same loudness.

The sound stems (dialogue, music, effects; rendered per piece, ``render.compose.store.render_stems``)
are levelled by exactly what the level does to the mix at each sample (``Programme.levelled``), so
levelled stems still sum to the levelled mix, the limiter's work included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from render.compose.store import RenderedPiece, RenderedStems
from render.core import ffmpeg
from render.core.errors import UserError
from render.core.house import HouseFormat
from render.core.timebase import samples_for
from render.deliver.leader import frame_clock
from render.edit.timeline import STEMS
from render.master import level as level_mod

#: A stem rides through the mix's level as two more channels this far (2^-20, -120 dB) under its own
#: level: the limiter's gain is one for all channels and set by the loudest, so the mix alone sets it,
#: and scaling by a power of two and back is exact in floating point.
STEM_SCALE = 2.0 ** -20


@dataclass(frozen=True, slots=True)
class Programme:
    """The programme's pieces in order, how its sound is levelled, and its exact length."""

    pieces: tuple[RenderedPiece, ...]
    level_chain: str
    frames: int
    samples: int
    stems: tuple[RenderedStems, ...] = ()  # each piece's stems, when a delivery asked for them

    def inputs(self, work: Path) -> list[str]:
        """ffmpeg inputs 0 (the pictures) and 1 (the sound) for the pieces, listed into ``work``."""
        vlist = work / "programme-video.txt"
        vlist.write_text("".join(ffmpeg.concat_entry(p.video) for p in self.pieces))
        return ["-f", "concat", "-safe", "0", "-i", str(vlist), *self.mix_input(work)]

    def mix_input(self, work: Path) -> list[str]:
        """An ffmpeg input of the pieces' sound (the mix, before the level), listed into ``work``."""
        alist = work / "programme-audio.txt"
        alist.write_text("".join(ffmpeg.concat_entry(p.audio) for p in self.pieces))
        return ["-f", "concat", "-safe", "0", "-i", str(alist)]

    def picture(self, rate, out: str) -> str:
        """The programme's picture, every frame stamped in the frame time base, as ``[out]``."""
        return f"[0:v]{frame_clock(rate)}[{out}]"

    def sound(self, out: str, mix_input: int = 1) -> str:
        """The programme's levelled stereo sound, exactly as long as its picture, as ``[out]``."""
        return f"[{mix_input}:a]{self.level_chain},{self._exact()}[{out}]"

    def stem_input(self, work: Path, stem: str) -> list[str]:
        """An ffmpeg input of one stem (``STEMS``) of the pieces' sound, listed into ``work``."""
        assert self.stems, "the stems were not rendered for this programme"
        i = STEMS.index(stem)
        listed = work / f"programme-{stem}.txt"
        listed.write_text("".join(ffmpeg.concat_entry(s.audio[i]) for s in self.stems))
        return ["-f", "concat", "-safe", "0", "-i", str(listed)]

    def levelled(self, mix_in: str, part_in: str, mix_out: str | None, part_out: str) -> list[str]:
        """Statements that level ``[part_in]`` (a stem of the mix ``[mix_in]``, or a sum of stems) by what the
        level does to the mix at each sample, into ``[part_out]``, and the levelled mix into ``[mix_out]``
        (when given); both stereo and exactly as long as the picture.

        The part rides with the mix through one level chain as channels 3-4, scaled by ``STEM_SCALE``:
        a gain is the same for every channel, and the limiter computes one gain for all channels from
        the loudest sample, which is the mix's whenever it limits (the scaled part is 120 dB under the
        ceiling), so the part gets the mix's gain, sample by sample. The mix goes first: alimiter reads
        the peaks it has queued back from a frame's first two channels."""
        up = 1 / STEM_SCALE
        fmt = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"
        out = [f"[{mix_in}]{fmt}[{part_out}m]", f"[{part_in}]{fmt},volume={STEM_SCALE!r}[{part_out}p]",
               f"[{part_out}m][{part_out}p]amerge=inputs=2,{self.level_chain},aformat=sample_rates=48000"
               + (f",asplit=2[{part_out}l][{part_out}k]" if mix_out else f"[{part_out}k]")]
        if mix_out:
            out.append(f"[{part_out}l]pan=stereo|c0=c0|c1=c1,{self._exact()}[{mix_out}]")
        out.append(f"[{part_out}k]pan=stereo|c0=c2|c1=c3,volume={up:.0f},{self._exact()}[{part_out}]")
        return out

    def _exact(self) -> str:
        """Filters that make a levelled stereo sound exactly the picture's samples."""
        n = self.samples
        return f"aformat=sample_rates=48000:channel_layouts=stereo,apad=whole_len={n},atrim=end_sample={n},asetpts=N/SR/TB"


def programme(rendered: Sequence[RenderedPiece], loudness: dict | None, house: HouseFormat,
              stems: Sequence[RenderedStems] = ()) -> Programme:
    """The programme the join made from ``rendered``, levelled as its ``loudness`` (build.json's) says,
    with each piece's ``stems`` when a delivery needs them."""
    if not loudness:
        raise UserError(["a delivery is made from a levelled programme: build it with --profile master"])
    assert not stems or [s.piece_key for s in stems] == [p.key for p in rendered], "stems of other pieces"
    frames = sum(p.frames for p in rendered)
    return Programme(tuple(rendered), level_chain(loudness), frames, samples_for(frames, house.rate), tuple(stems))


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
