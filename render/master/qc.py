"""Quality control of the final episode -> ``qc.json``: what a broadcaster's QC desk checks.

Checks, each with a limit and a verdict:

- **duration**: the file's video frames equal the timeline's; the sound ends with the picture.
- **loudness**: integrated -24 LKFS +/-1 LU, true peak <= -2 dBTP (the final-file reading, see
  ``master``).
- **black**, **freeze**, **silence**: ranges of at least 2 s (blackdetect's, freezedetect's and
  silencedetect's default duration) outside act breaks. A range is *expected* -- listed, never a
  failure -- where the timeline made it so: the house background behind cards, text and credits
  is near-black and still by design, a photo or illustration is still by design (its slow
  push-in is not motion a freeze meter can be asked to see), and cards, stills, credits and video
  without sound are silent by design. Black media, a frozen upload or dead air in a record's
  sound are failures. A frame is still when it changes less than freezedetect's default noise
  tolerance (-60 dB).
- **luma**: frames where more than 1% of the picture is outside the legal range (luma 16-235,
  chroma 16-240; EBU R 103 tolerates excursions over less than 1% of the area). Single-pixel
  excursions (text edges ringing in H.264) are counted and reported, not failed.
- **flash**: photosensitive-risk flashing (``analysis.pictures``: more than 3 flashes a second over
  more than a quarter of the screen, luminance or saturated red).

Cost: every measure that is local to a picture or sound is taken once per rendered piece and
cached in the piece's folder (keyed like the piece), so a one-segment edit measures one piece.
The picture is measured in the render itself (``picture_graph`` hangs off the encoder's input,
see ``compose.render_piece``): a second decode of each 1080p piece cost about a third of its
encode. The measures see the picture the encoder was given; the join copies those encodes bit
for bit, so the final file differs from it only by the codec's quantisation, which the legal-range
reading is low-passed to exclude (EBU R 103: averaged to 320x180, so the ringing H.264 leaves
around hard edges at the range's limits is not counted, while an area really out of range
is). The black/still/flash meters see the same average scaled to 160x90, in numpy; the sound is
read from the piece's PCM. A piece cached without this version's measures is rendered again
(``compose.cached_piece``), so every piece is read the same way; any other file is measured by
decoding it (``measure_piece``; a test holds the two readings to the same ranges). Ranges are merged
across piece boundaries (a freeze is continuous across a boundary when the frames either side
match). Loudness and duration are programme-level and read from the final file's figures;
``qc.json`` is keyed like the join, so a no-change rebuild reuses it without decoding anything.
"""

from __future__ import annotations

import json
import re
import tempfile
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from render.analysis import loudness as loudness_mod
from render.analysis.pictures import FlashRange, PictureMeter
from render.core import ffmpeg, text
from render.core.cache import key_of, write_text_atomic
from render.core.errors import FfmpegError
from render.core.house import TARGET_LUFS, TOLERANCE_LU, TRUE_PEAK_DBTP, HouseFormat
from render.core.pipe import stream
from render.core.timebase import AUDIO_RATE_HZ, timecode, to_seconds
from render.edit.timeline import Timeline

QC_VERSION = 8  # 8: only a render's own measures are kept; 7: freezedetect's noise tolerance; 2: signalstats values in exponent notation read whole; 3: 320x180 samples; 4: meters see the whole picture; 5: legal range low-passed; 6: meters from the low-passed picture, taken in the render
SAMPLE_W, SAMPLE_H = 320, 180       # the averaged (low-passed) picture for the legal-range statistics
METER_W, METER_H = 160, 90          # black / still / flash picture: 10x10-pixel flash blocks
SIG_W, SIG_H = 16, 9                # block means compared across a piece boundary
MIN_SECONDS = 2                     # black, freeze and silence shorter than this are not reported
# a frame repeats the previous one when the mean change is under freezedetect's default noise tolerance
# (-60 dB of full scale); on our 160x90 average, which smooths motion away, that is stricter than
# freezedetect on the whole picture. (Upload analysis flags near-stills at 0.6: a different question.)
FREEZE_DIFF = 255 * 10 ** (-60 / 20)
SILENCE_DBFS = -60.0                # silencedetect's default noise floor
LEGAL_AREA = 0.01                   # EBU R 103: out-of-range area tolerated per frame
LEGAL_Y = (16, 235)
HOUSE_BACKGROUND_KINDS = ("black", "card", "text", "credits")   # near-black and still by design
STILL_KINDS = (*HOUSE_BACKGROUND_KINDS, "image")                # still by design (a photo's push-in is slow)
SOUNDING_KINDS = ("video", "audio")                             # shots that play a record's sound
CHECKS = ("duration", "loudness", "black", "freeze", "silence", "luma", "flash")


Range = tuple[int, int]  # frames [start, end)


def runs(mask: np.ndarray) -> list[Range]:
    """``[start, end)`` of every run of True in a boolean array."""
    if mask.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


@dataclass(frozen=True, slots=True)
class PieceQC:
    """What QC measured in one rendered piece; frames are the piece's own (0 = its first frame)."""

    frames: int
    black: tuple[Range, ...]         # black frames (as upload analysis finds them: pictures.BLACK_*)
    still: tuple[Range, ...]         # frames that repeat the previous one (mean change under FREEZE_DIFF)
    silent: tuple[Range, ...]        # frames whose sound peaks under SILENCE_DBFS
    illegal: tuple[Range, ...]       # frames with more than LEGAL_AREA of the picture out of range
    excursions: int                  # frames with any sample outside luma 16-235
    ymin: int
    ymax: int
    flashes: tuple[FlashRange, ...]
    first_sig: tuple[float, ...]     # 16x9 block means of the first and last frames
    last_sig: tuple[float, ...]

    def to_json(self) -> dict:
        return {"version": QC_VERSION, "frames": self.frames, "black": self.black, "still": self.still,
                "silent": self.silent, "illegal": self.illegal, "excursions": self.excursions, "ymin": self.ymin,
                "ymax": self.ymax, "flashes": [f.to_json() for f in self.flashes],
                "first_sig": self.first_sig, "last_sig": self.last_sig}

    @classmethod
    def from_json(cls, d: dict) -> PieceQC:
        def rs(key: str) -> tuple[Range, ...]:
            return tuple((int(a), int(b)) for a, b in d[key])

        return cls(int(d["frames"]), rs("black"), rs("still"), rs("silent"), rs("illegal"), int(d["excursions"]),
                   int(d["ymin"]), int(d["ymax"]), tuple(FlashRange.from_json(f) for f in d["flashes"]),
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


def cached_piece_qc(video: Path, frames: int) -> PieceQC | None:
    """A piece's QC measures as its folder holds them, or None if they must be taken."""
    try:
        data = json.loads((video.parent / "qc-piece.json").read_text())
        if data.get("version") == QC_VERSION and data.get("frames") == frames:
            return PieceQC.from_json(data)
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    return None


def store(folder: Path, measured: PieceQC) -> None:
    """Keep a piece's QC measures in its folder, where ``cached_piece_qc`` finds them."""
    write_text_atomic(folder / "qc-piece.json", json.dumps(measured.to_json()))


def piece_qc(video: Path, audio: Path, frames: int, house: HouseFormat) -> PieceQC:
    """A piece's QC measures as its render took them, else read by decoding it. Only a render's
    own measures are kept in the piece's folder: a decode's reading differs (it sees the codec's
    ringing), and a kept one would pass as the render's."""
    found = cached_piece_qc(video, frames)
    if found is not None:
        return found
    return measure_piece(video, audio, frames, house, timeout_s=120 + 2 * float(to_seconds(frames, house.rate)))


# ---------------------------------------------------------------------------------------------
# the programme


def _masks(timeline: Timeline, sources: Mapping | None) -> tuple[np.ndarray, ...]:
    """Per programme frame: inside an act break; house background by design; still by design;
    silent by design."""
    n = timeline.frames
    act, background, still, quiet = (np.zeros(n, bool) for _ in range(4))
    for seg in timeline.segments:
        if seg.type == "act_break":
            act[seg.start_frame:seg.end_frame] = True
        bed = getattr(seg, "bed", None)  # a bed (music under a montage) sounds throughout its segment
        at = seg.start_frame
        for shot in seg.shots:
            if shot.kind in HOUSE_BACKGROUND_KINDS:
                background[at:at + shot.frames] = True
            if shot.kind in STILL_KINDS:
                still[at:at + shot.frames] = True
            src = sources.get(shot.record_id) if (sources is not None and shot.record_id) else None
            mute_source = src is not None and (src.media is None or src.media.audio is None)
            if bed is None and (shot.kind not in SOUNDING_KINDS or mute_source):
                quiet[at:at + shot.frames] = True
            at += shot.frames
    return act, background, still, quiet


def _range_json(a: int, b: int, timeline: Timeline) -> dict:
    segs = [s.id for s in timeline.segments if s.start_frame < b and s.end_frame > a]
    return {"start": a, "end": b, "start_tc": timecode(a, timeline.rate), "end_tc": timecode(b, timeline.rate),
            "seconds": round(float(to_seconds(b - a, timeline.rate)), 3), "segments": segs}


def _ranged_check(flag: np.ndarray, act: np.ndarray, expected: np.ndarray, timeline: Timeline, what: str) -> dict:
    need = round(MIN_SECONDS * timeline.rate)
    outside = flag & ~act
    bad = [r for r in runs(outside & ~expected) if r[1] - r[0] >= need]
    ok = [r for r in runs(outside & expected) if r[1] - r[0] >= need]
    return {"passed": not bad, "limit": f"no {what} of {MIN_SECONDS} s or more outside act breaks",
            "ranges": [_range_json(a, b, timeline) for a, b in bad],
            "expected": [_range_json(a, b, timeline) for a, b in ok]}


def _frozen(still: np.ndarray, rate) -> np.ndarray:
    """Frames in a freeze: a repeated frame and its repeats, for at least MIN_SECONDS."""
    out = np.zeros(still.size, bool)
    need = round(MIN_SECONDS * rate)
    for a, b in runs(still):
        if b - a + 1 >= need:
            out[max(0, a - 1):b] = True
    return out


def _duration(episode: Path, timeline: Timeline) -> dict:
    info = ffmpeg.ffprobe_output(episode)
    video = next((s for s in info.get("streams", []) if s.get("codec_type") == "video"), {})
    audio = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), {})
    frames = int(video.get("nb_frames", -1))
    video_s, audio_s = float(video.get("duration", 0)), float(audio.get("duration", 0))
    expected_s = float(to_seconds(timeline.frames, timeline.rate))
    half_frame = float(1 / timeline.rate) / 2
    return {"passed": frames == timeline.frames and abs(audio_s - expected_s) <= half_frame,
            "limit": "video frames equal the timeline's; sound within half a frame of it",
            "frames": frames, "expected_frames": timeline.frames, "timecode": timecode(max(frames, 0), timeline.rate),
            "expected_timecode": timecode(timeline.frames, timeline.rate),
            "video_seconds": round(video_s, 4), "audio_seconds": round(audio_s, 4)}


def _loudness(figures: dict) -> dict:
    i, tp = figures["integrated_lufs"], figures["true_peak_dbtp"]
    return {"passed": abs(i - TARGET_LUFS) <= TOLERANCE_LU and tp <= TRUE_PEAK_DBTP,
            "limit": f"integrated {TARGET_LUFS:g} LKFS +/-{TOLERANCE_LU:g} LU, true peak <= {TRUE_PEAK_DBTP:g} dBTP",
            "integrated_lufs": i, "true_peak_dbtp": tp, "lra_lu": figures.get("lra_lu"),
            "meter": figures.get("meter", "ffmpeg ebur128 (peak=true) on the final file")}


def check(timeline: Timeline, measured: Sequence[PieceQC], episode: Path, loudness: dict,
          sources: Mapping | None = None) -> dict:
    """Every QC check of the programme from its pieces' measures and the final file's figures."""
    n = timeline.frames
    black, still, silent, illegal = (np.zeros(n, bool) for _ in range(4))
    flashes: list[dict] = []
    at = 0
    for i, p in enumerate(measured):
        for mask, ranges in ((black, p.black), (still, p.still), (silent, p.silent), (illegal, p.illegal)):
            for a, b in ranges:
                mask[at + a:at + b] = True
        if i and at < n and p.first_sig and measured[i - 1].last_sig:
            step = np.abs(np.array(p.first_sig) - np.array(measured[i - 1].last_sig)).mean()
            still[at] = bool(step < FREEZE_DIFF)
        flashes += [_range_json(at + f.start, at + f.end, timeline) | {"kind": f.kind, "flashes_per_s": f.flashes_per_s,
                                                                        "area": f.area} for f in p.flashes]
        at += p.frames
    if at != n:
        raise ValueError(f"QC pieces hold {at} frames, the timeline {n}")
    act, background, still_by_design, quiet = _masks(timeline, sources)
    excursions = sum(p.excursions for p in measured)
    bad_frames = int(illegal.sum())
    checks = {
        "duration": _duration(episode, timeline),
        "loudness": _loudness(loudness),
        "black": _ranged_check(black, act, background, timeline, "black"),
        "freeze": _ranged_check(_frozen(still, timeline.rate), act, still_by_design, timeline, "frozen picture"),
        "silence": _ranged_check(silent, act, quiet, timeline, f"silence (under {SILENCE_DBFS:g} dBFS)"),
        "luma": {"passed": bad_frames == 0,
                 "limit": f"no frame with more than {LEGAL_AREA:.0%} of its picture outside luma 16-235 / chroma 16-240",
                 "frames_out_of_range": bad_frames, "percent_out_of_range": round(100 * bad_frames / max(n, 1), 3),
                 "ranges": [_range_json(a, b, timeline) for a, b in runs(illegal)],
                 "frames_with_excursions": excursions,
                 "percent_with_excursions": round(100 * excursions / max(n, 1), 3),
                 "ymin": min((p.ymin for p in measured), default=None),
                 "ymax": max((p.ymax for p in measured), default=None)},
        "flash": {"passed": not flashes,
                  "limit": "no flashing over 3 a second on more than 25% of the screen (Ofcom/Harding)",
                  "ranges": flashes},
    }
    return {"schema": "remixtv.qc/1", "passed": all(c["passed"] for c in checks.values()), "episode": episode.name,
            "rate": str(timeline.rate), "frames": n, "checks": checks}


def run(timeline: Timeline, pieces: Sequence, episode: Path, loudness: dict | None, house: HouseFormat,
        join_key: str, out: Path, sources: Mapping | None = None) -> dict:
    """QC the episode into ``out`` (qc.json), reusing it when the episode is exactly the one it checked.

    ``pieces`` are the rendered pieces (``compose.RenderedPiece``) in timeline order.
    """
    key = key_of("qc", QC_VERSION, join_key, episode.stat().st_size)
    try:
        doc = json.loads(out.read_text())
        if doc.get("key") == key:
            return doc
    except (OSError, ValueError):
        pass
    if loudness is None:
        got = loudness_mod.measure_file(episode)
        loudness = {"integrated_lufs": got.integrated_lufs, "true_peak_dbtp": got.true_peak_dbtp, "lra_lu": got.lra_lu}
    measured = [piece_qc(p.video, p.audio, p.frames, house) for p in pieces]
    doc = {**check(timeline, measured, episode, loudness, sources), "key": key}
    write_text_atomic(out, json.dumps(doc, ensure_ascii=False, indent=2))
    return doc


def _brief(name: str, c: dict) -> str:
    if name == "duration":
        return f"{c['timecode']} ({c['frames']} of {c['expected_frames']} frames), sound {c['audio_seconds']:.3f} s"
    if name == "loudness":
        return f"{c['integrated_lufs']:.1f} LUFS, true peak {c['true_peak_dbtp']:.1f} dBTP"
    if name == "luma":
        return (f"{c['frames_out_of_range']} frames out of range ({c['percent_out_of_range']:.2f}%), "
                f"{c['percent_with_excursions']:.1f}% with single-sample excursions")
    ranges = c.get("ranges", [])
    if not ranges:
        extra = f" ({len(c['expected'])} expected, in cards/credits/stills)" if c.get("expected") else ""
        return "none" + extra
    shown = ", ".join(f"{r['start_tc']}-{r['end_tc']} ({'/'.join(r['segments'])})" for r in ranges[:3])
    return f"{len(ranges)} range{'s' if len(ranges) > 1 else ''}: {shown}" + (" ..." if len(ranges) > 3 else "")


def summary(doc: dict) -> dict:
    """build.json's ``qc``: the verdicts and one line per check (the details are in qc.json)."""
    return {"passed": doc["passed"], "file": "qc.json",
            "checks": {name: {"passed": c["passed"], "summary": _brief(name, c)} for name, c in doc["checks"].items()}}
