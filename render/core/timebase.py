"""Exact time: integer frames at a rational rate (OpenTimelineIO's RationalTime idea).

Seconds appear only at the edges (ffmpeg arguments, reports), always derived from frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

AUDIO_RATE_HZ = 48_000

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def parse_duration(text: str | float) -> Fraction:
    """``"22:00"``, ``"1:02:03.5"``, ``"90"``, ``4.5`` -> seconds as a Fraction. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(text, (int, float)):
        value = Fraction(str(text))
    else:
        s = str(text).strip()
        m = _CLOCK.match(s)
        if m:
            h, mnt, sec = m.groups()
            if int(mnt) >= 60 and h is not None:
                raise ValueError(f"minutes must be under 60 in {s!r}")
            if Fraction(sec) >= 60:
                raise ValueError(f"seconds must be under 60 in {s!r}")
            value = int(h or 0) * 3600 + int(mnt) * 60 + Fraction(sec)
        else:
            try:
                value = Fraction(s.rstrip("s"))
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"{s!r} is not a duration (use seconds like 4.5 or a clock like 22:00)") from None
    if value < 0:
        raise ValueError("a duration cannot be negative")
    return value


def to_frames(seconds: Fraction | float, rate: Fraction) -> int:
    """Nearest whole frame to ``seconds`` at ``rate``."""
    return round(Fraction(seconds) * rate)


def to_seconds(frames: int, rate: Fraction) -> Fraction:
    """Exact start time of frame ``frames`` at ``rate``."""
    return Fraction(frames) / rate


def samples_for(frames: int, rate: Fraction, sample_rate_hz: int = AUDIO_RATE_HZ) -> int:
    """Whole audio samples that span ``frames`` video frames (rounded to nearest)."""
    return round(Fraction(frames) * sample_rate_hz / rate)


def split_samples(frame_counts: list[int], rate: Fraction, sample_rate_hz: int = AUDIO_RATE_HZ) -> list[int]:
    """Sample counts for consecutive pieces, rounded cumulatively so they sum exactly."""
    out, start = [], 0
    for n in frame_counts:
        a = samples_for(start, rate, sample_rate_hz)
        b = samples_for(start + n, rate, sample_rate_hz)
        out.append(b - a)
        start += n
    return out


def sec(value: Fraction) -> str:
    """Seconds for an ffmpeg argument, to the microsecond."""
    return f"{float(value):.6f}"


def timecode(frames: int, rate: Fraction) -> str:
    """``HH:MM:SS.mmm`` for people (wall-clock, not drop-frame)."""
    ms = round(Fraction(frames) / rate * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


@dataclass(frozen=True, slots=True, order=True)
class FrameRange:
    """Half-open ``[start, end)`` in whole units of one clock: frames of the programme or of a record,
    or samples of a sound. The one range type; the stages' ranges (sound spans, flashes, QC's
    findings) are made of it, so overlap and length are computed one way everywhere."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"a range cannot end ({self.end}) before it starts ({self.start})")

    @property
    def length(self) -> int:
        return self.end - self.start

    def __contains__(self, unit: int) -> bool:
        return self.start <= unit < self.end

    def overlaps(self, other: FrameRange) -> bool:
        """Whether the two share at least one unit (touching ranges do not)."""
        return self.start < other.end and other.start < self.end

    def intersection(self, other: FrameRange) -> FrameRange | None:
        """The units both cover, or None when they do not overlap."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return FrameRange(start, end) if start < end else None

    def shifted(self, by: int) -> FrameRange:
        """The same length, ``by`` units later (earlier when negative)."""
        return FrameRange(self.start + by, self.end + by)

    def seconds(self, rate: Fraction) -> tuple[Fraction, Fraction]:
        """Exact start and end times at ``rate`` units a second."""
        return Fraction(self.start) / rate, Fraction(self.end) / rate


#: 29.97 drop-frame: two frame labels skipped at the start of every minute except each tenth.
_DF_MINUTE = 1798  # frames in a minute that drops labels
_DF_TEN_MINUTES = 17982
_DF_TC = re.compile(r"^(\d{2}):(\d{2}):(\d{2})[;:.,](\d{2})$")


def dropframe_timecode(frames: int) -> str:
    """``HH:MM:SS;FF`` drop-frame timecode (SMPTE 12M, 30000/1001) of a frame count from 00:00:00;00."""
    tens, rest = divmod(frames, _DF_TEN_MINUTES)
    skipped = 18 * tens + (2 * ((rest - 2) // _DF_MINUTE) if rest >= 2 else 0)
    n = frames + skipped
    return f"{n // 108000 % 24:02d}:{n // 1800 % 60:02d}:{n // 30 % 60:02d};{n % 30:02d}"


def dropframe_frames(tc: str) -> int:
    """The frame count of a drop-frame timecode ``HH:MM:SS;FF``. Raises ValueError for a malformed or
    dropped label (``00:01:00;00`` does not exist)."""
    m = _DF_TC.match(tc.strip())
    if not m:
        raise ValueError(f"{tc!r} is not a drop-frame timecode like 00:58:30;00")
    h, mnt, s, f = (int(x) for x in m.groups())
    if mnt > 59 or s > 59 or f > 29 or (s == 0 and f < 2 and mnt % 10):
        raise ValueError(f"{tc!r} is not a valid drop-frame timecode")
    minutes = 60 * h + mnt
    return (3600 * h + 60 * mnt + s) * 30 + f - 2 * (minutes - minutes // 10)
