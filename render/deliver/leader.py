"""The broadcast leader and tail around the programme on a mezzanine: bars and tone, a slate, black,
a countdown, the one-frame 2-pop, black to the programme's first frame at 01:00:00;00, and black
after its last.

Every part is placed by drop-frame timecode (``Leader``) and turned into exact frame and sample
counts here; the parts are ffmpeg sources inside the mezzanine's own filter graph, so the leader's
frames are encoded once, in the same pass as the programme's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render.core import text
from render.core.errors import UserError
from render.core.timebase import AUDIO_RATE_HZ, dropframe_frames, dropframe_timecode, split_samples

#: ffmpeg's ``sine`` source peaks at 1/8 (-18.06 dBFS); this lands the reference tone and the pop at -20.00 dBFS.
TONE_HZ = 1000
TONE_DBFS = -20.0
_SINE_DBFS = 20 * math.log10(1 / 8)
WHITE = "0xFFFFFF"  # the pop's picture flash: full white, legal 235 once in limited range


@dataclass(frozen=True, slots=True)
class Leader:
    """Where each part of the leader starts, as drop-frame timecode; each part runs to the next.
    The defaults: 60 s of bars and tone, a 15 s slate, black, a 6 s countdown (8 to 3), the 2-pop on
    one frame at 00:59:58;00, black, the programme at 01:00:00;00; ``tail_seconds`` of black after it."""

    bars: str = "00:58:30;00"
    slate: str = "00:59:30;00"
    black: str = "00:59:45;00"
    countdown: str = "00:59:52;00"
    pop: str = "00:59:58;00"
    programme: str = "01:00:00;00"
    tail_seconds: Fraction = Fraction(2)

    def parts(self) -> tuple[tuple[str, int], ...]:
        """Each part's name and length in frames, in order (``pop`` is one frame, ``black`` after it)."""
        names = ("bars", "slate", "black", "countdown", "pop", "programme")
        try:
            at = [dropframe_frames(getattr(self, n)) for n in names]
        except ValueError as exc:
            raise UserError([f"deliver leader: {exc}"]) from None
        if any(b <= a for a, b in itertools.pairwise(at)) or at[5] - at[4] < 2:
            raise UserError([(f"deliver leader: {', '.join(f'{n} {getattr(self, n)}' for n in names)}: each part "
                              f"must start after the one before, and the pop at least 2 frames before the programme")])
        lengths = [b - a for a, b in itertools.pairwise(at)]
        return (("bars", lengths[0]), ("slate", lengths[1]), ("black", lengths[2]), ("countdown", lengths[3]),
                ("pop", 1), ("black", lengths[4] - 1))

    @property
    def frames(self) -> int:
        return dropframe_frames(self.programme) - dropframe_frames(self.bars)

    def tail_frames(self, rate: Fraction) -> int:
        """Frames of black after the programme: at least ``tail_seconds``."""
        return math.ceil(self.tail_seconds * rate)

    def programme_timecode(self, frame: int) -> str:
        """Drop-frame timecode of programme frame ``frame`` (0 is the programme's first)."""
        return dropframe_timecode(dropframe_frames(self.programme) + frame)

    def to_json(self) -> dict:
        return {"bars": self.bars, "slate": self.slate, "black": self.black, "countdown": self.countdown,
                "pop": self.pop, "programme": self.programme, "tail_seconds": float(self.tail_seconds)}


def slate(title: str, lines: list[tuple[str, str]]) -> str:
    """The slate: the title, then one ``label: value`` line each (version, date, TRT, acts...)."""
    body = "\\N".join(f"{{\\c&H00A0C8E8&}}{text.escape(k)}{{\\c&H00FFFFFF&}}  {text.escape(v)}" for k, v in lines)
    return text.document([text.style("Title", 72, bold=True, align=8), text.style("Body", 40, align=7,
                                                                                  margin_v=text.SAFE_Y + 130)],
                         [text.event(text.escape(title), 3600, "Title"), text.event(body, 3600, "Body")])


def countdown(frames: int, rate: Fraction) -> str:
    """The countdown before the pop: one number a second, counting down to 3 (the pop is 2)."""
    seconds = frames // 30
    events = [text.event(str(seconds + 2 - i), Fraction(min(30 * (i + 1), frames)) / rate, "Count",
                         Fraction(30 * i) / rate) for i in range(seconds)]
    return text.document([text.style("Count", 360, bold=True)], events)


def frame_clock(rate: Fraction) -> str:
    """Filters that stamp each frame with its index in the frame time base, so joined parts stay exact."""
    return f"settb=expr={rate.denominator}/{rate.numerator},setpts=N"


def _typeset(ass: Path) -> str:
    return f"subtitles=f={text.filter_path(ass)}:fontsdir={text.filter_path(text.FONTS_DIR)}"


def graph(leader: Leader, width: int, height: int, rate: Fraction, slate_ass: Path, countdown_ass: Path,
          tail: int) -> tuple[list[str], list[str], list[str], list[str]]:
    """The leader's and the tail's filter statements: ``(statements, leader video labels, leader sound
    labels, [tail video, tail sound])``, each sound stereo and exactly as long as its picture."""
    parts = leader.parts()
    samples = split_samples([n for _, n in parts] + [tail], rate, AUDIO_RATE_HZ)
    size, r = f"s={width}x{height}", f"r={rate.numerator}/{rate.denominator}"
    tone = (f"sine=f={TONE_HZ}:r={AUDIO_RATE_HZ},volume={TONE_DBFS - _SINE_DBFS:.2f}dB,"
            f"pan=stereo|c0=c0|c1=c0")
    silence = f"anullsrc=r={AUDIO_RATE_HZ}:cl=stereo"
    statements, video, sound = [], [], []
    for i, ((name, frames), n) in enumerate(zip(parts + (("tail", tail),), samples)):
        picture = {"bars": f"smptehdbars={size}:{r}", "slate": f"color=c=black:{size}:{r},{_typeset(slate_ass)}",
                   "countdown": f"color=c=black:{size}:{r},{_typeset(countdown_ass)}",
                   "pop": f"color=c={WHITE}:{size}:{r}"}.get(name, f"color=c=black:{size}:{r}")
        audio = tone if name in ("bars", "pop") else silence
        statements.append(f"{picture},setsar=1,trim=end_frame={frames},{frame_clock(rate)},format=yuv422p10le[lv{i}]")
        statements.append(f"{audio},atrim=end_sample={n},asetpts=N/SR/TB[la{i}]")
        video.append(f"[lv{i}]")
        sound.append(f"[la{i}]")
    return statements, video[:-1], sound[:-1], [video[-1], sound[-1]]
