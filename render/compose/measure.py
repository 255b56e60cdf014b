"""QC's measures of a piece, taken as it is rendered -> ``qc-piece.json`` in the piece's folder.

The picture is measured in the render itself (``picture_graph`` hangs off the encoder's input, see
``store.render_piece``): a second decode of each 1080p piece cost about a third of its encode. The
measures see the picture the encoder was given; the join copies those encodes bit for bit, so the
final file differs from it only by the codec's quantisation, which the legal-range reading is
low-passed to exclude (EBU R 103: averaged to 320x180, so the ringing H.264 leaves around hard
edges at the range's limits is not counted, while an area really out of range is). The black,
still and flash meters see the same average scaled to 160x90, in numpy; the sound is read from
the piece's PCM. Any other file is measured by decoding it (``measure_piece``; a test holds the two
readings to the same ranges). The master stage's QC merges the pieces' measures into the programme's
checks.
"""

from __future__ import annotations

import re
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from render.analysis.pictures import FlashRange, PictureMeter
from render.core import ffmpeg, text
from render.core.errors import FfmpegError
from render.core.house import HouseFormat
from render.core.pipe import stream
from render.core.timebase import AUDIO_RATE_HZ, FrameRange

QC_VERSION = 8  # 8: only a render's own measures are kept; 7: freezedetect's noise tolerance; 2: signalstats values in exponent notation read whole; 3: 320x180 samples; 4: meters see the whole picture; 5: legal range low-passed; 6: meters from the low-passed picture, taken in the render
SAMPLE_W, SAMPLE_H = 320, 180       # the averaged (low-passed) picture for the legal-range statistics
METER_W, METER_H = 160, 90          # black / still / flash picture: 10x10-pixel flash blocks
SIG_W, SIG_H = 16, 9                # block means compared across a piece boundary
# a frame repeats the previous one when the mean change is under freezedetect's default noise tolerance
# (-60 dB of full scale); on our 160x90 average, which smooths motion away, that is stricter than
# freezedetect on the whole picture. (Upload analysis flags near-stills at 0.6: a different question.)
FREEZE_DIFF = 255 * 10 ** (-60 / 20)
SILENCE_DBFS = -60.0                # silencedetect's default noise floor
LEGAL_AREA = 0.01                   # EBU R 103: out-of-range area tolerated per frame
LEGAL_Y = (16, 235)


def runs(mask: np.ndarray) -> list[FrameRange]:
    """``[start, end)`` of every run of True in a boolean array."""
    if mask.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return [FrameRange(a, b) for a, b in zip(starts, ends)]


def _ranges_json(ranges: tuple[FrameRange, ...]) -> list[list[int]]:
    return [[r.start, r.end] for r in ranges]


def _ranges(d: dict, key: str) -> tuple[FrameRange, ...]:
    return tuple(FrameRange(int(a), int(b)) for a, b in d[key])


@dataclass(frozen=True, slots=True)
class PieceQC:
    """What QC measured in one rendered piece; frames are the piece's own (0 = its first frame)."""

    frames: int
    black: tuple[FrameRange, ...]    # black frames (as upload analysis finds them: pictures.BLACK_*)
    still: tuple[FrameRange, ...]    # frames that repeat the previous one (mean change under FREEZE_DIFF)
    silent: tuple[FrameRange, ...]   # frames whose sound peaks under SILENCE_DBFS
    illegal: tuple[FrameRange, ...]  # frames with more than LEGAL_AREA of the picture out of range
    excursions: int                  # frames with any sample outside luma 16-235
    ymin: int
    ymax: int
    flashes: tuple[FlashRange, ...]
    first_sig: tuple[float, ...]     # 16x9 block means of the first and last frames
    last_sig: tuple[float, ...]

    def to_json(self) -> dict:
        return {"version": QC_VERSION, "frames": self.frames, "black": _ranges_json(self.black),
                "still": _ranges_json(self.still), "silent": _ranges_json(self.silent),
                "illegal": _ranges_json(self.illegal), "excursions": self.excursions, "ymin": self.ymin,
                "ymax": self.ymax, "flashes": [f.to_json() for f in self.flashes],
                "first_sig": self.first_sig, "last_sig": self.last_sig}

    @classmethod
    def from_json(cls, d: dict) -> PieceQC:
        return cls(int(d["frames"]), _ranges(d, "black"), _ranges(d, "still"), _ranges(d, "silent"),
                   _ranges(d, "illegal"), int(d["excursions"]), int(d["ymin"]), int(d["ymax"]),
                   tuple(FlashRange.from_json(f) for f in d["flashes"]),
                   tuple(float(x) for x in d["first_sig"]), tuple(float(x) for x in d["last_sig"]))


_STATS = {k: re.compile(rf"lavfi\.signalstats\.{k}=([-+\d.eE]+)") for k in ("YMIN", "YMAX", "BRNG")}  # BRNG may be 3.6e-05


def picture_graph(src: str, stats: Path, out: str) -> str:
    """Filter statements giving QC its two views of the picture in ``[src]``: legal-range statistics
    written to ``stats``, and ``[out]``, the METER_W x METER_H BGR picture for ``PictureMeasure``.

    Both are box averages of the whole picture, one from the other (an area scale by a whole
    factor averages exactly): the legal range is measured through a low-pass, as EBU R 103 has it,
    so ringing at a hard edge is not a gamut error while an area really out of range still is.
    """
    return (f"[{src}]scale={SAMPLE_W}:{SAMPLE_H}:flags=area,split=2[qcs][qcm];"
            f"[qcs]signalstats=stat=brng,metadata=mode=print:file={text.filter_path(stats)},nullsink;"
            f"[qcm]scale={METER_W}:{METER_H}:flags=area,setsar=1,format=bgr24[{out}]")


class PictureMeasure:
    """Black, still, flash and legal-range meters of one piece, fed chunks of the BGR frames
    ``picture_graph`` gives (``RECORD_BYTES`` each); the statistics file is read at the end."""

    RECORD_BYTES = METER_W * METER_H * 3

    def __init__(self, stats: Path):
        self.stats = stats
        self.meter = PictureMeter(METER_W, METER_H)  # black, frame-to-frame change, flashing
        self.first_sig: np.ndarray | None = None
        self.last_sig: np.ndarray | None = None

    def feed(self, data: bytes) -> None:
        frames = np.frombuffer(data, np.uint8).reshape(-1, METER_H, METER_W, 3)
        luma = self.meter.feed(frames)
        sig = luma.reshape(-1, SIG_H, METER_H // SIG_H, SIG_W, METER_W // SIG_W).mean(axis=(2, 4))
        if self.first_sig is None:
            self.first_sig = sig[0].ravel()
        self.last_sig = sig[-1].ravel()

    def piece(self, audio: Path, frames: int, house: HouseFormat, argv: list[str]) -> PieceQC:
        """The piece's measures, its sound read from its PCM; ``argv`` (the command that fed the
        meters) is the evidence if they did not see exactly ``frames`` frames."""
        # the picture's own metadata (a photo's EXIF text, in any bytes) is printed beside the statistics
        got = self.stats.read_text(errors="replace") if self.stats.exists() else ""
        ymin, ymax, brng = (np.array([float(v) for v in p.findall(got)]) for p in _STATS.values())
        n = sum(len(b) for b in self.meter.black)
        if n != frames or ymin.size != frames:
            raise FfmpegError(argv, 0, "", f"QC saw {n} frames ({ymin.size} with statistics), expected {frames}")
        still = np.concatenate(self.meter.diff) < FREEZE_DIFF
        still[0] = False  # whether the first frame repeats the previous piece's last is decided at the merge
        return PieceQC(
            frames=frames, black=tuple(runs(np.concatenate(self.meter.black))), still=tuple(runs(still)),
            silent=tuple(runs(_silent_frames(audio, frames, house.rate))), illegal=tuple(runs(brng > LEGAL_AREA)),
            excursions=int(((ymin < LEGAL_Y[0]) | (ymax > LEGAL_Y[1])).sum()), ymin=int(ymin.min()),
            ymax=int(ymax.max()), flashes=self.meter.flash_ranges(),
            first_sig=tuple(round(float(x), 3) for x in self.first_sig),
            last_sig=tuple(round(float(x), 3) for x in self.last_sig))


def _silent_frames(audio: Path, frames: int, rate) -> np.ndarray:
    """Per picture frame: does the piece's sound stay under SILENCE_DBFS (read in 30 s chunks)?"""
    limit = 32768 * 10 ** (SILENCE_DBFS / 20)
    out = np.zeros(frames, bool)
    # samples_for() for every frame at once, in integers (Fractions cost more than the reading)
    per = Fraction(AUDIO_RATE_HZ) / Fraction(rate)
    bounds = ((2 * np.arange(frames + 1, dtype=np.int64) * per.numerator + per.denominator)
              // (2 * per.denominator)).tolist()
    with wave.open(str(audio)) as w:
        channels = w.getnchannels()
        step = 900
        for first in range(0, frames, step):
            last = min(frames, first + step)
            w.setpos(bounds[first])
            raw = w.readframes(bounds[last] - bounds[first])
            peak = np.abs(np.frombuffer(raw, "<i2").reshape(-1, channels).astype(np.int32)).max(axis=1)
            starts = np.array(bounds[first:last]) - bounds[first]
            if peak.size == 0:
                out[first:last] = True
                continue
            starts = np.minimum(starts, peak.size - 1)
            out[first:last] = np.maximum.reduceat(peak, starts) <= limit
    return out


def measure_piece(video: Path, audio: Path, frames: int, house: HouseFormat, timeout_s: float = 600) -> PieceQC:
    """Measure a piece file by decoding it (one decode of its picture, one read of its PCM): for any
    file QC is asked about that its render did not measure (a build's pieces carry their own)."""
    with tempfile.TemporaryDirectory(prefix="remixtv-qc-") as tmpdir:
        meter = PictureMeasure(Path(tmpdir) / "signalstats.txt")
        argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-i", str(video),
                "-filter_complex", picture_graph("0:v:0", meter.stats, "out"),
                "-map", "[out]", "-an", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
        stream(argv, PictureMeasure.RECORD_BYTES, meter.feed, timeout_s=timeout_s, records_per_chunk=64)
        return meter.piece(audio, frames, house, argv)
