"""QC of a mezzanine (ProRes MOV or XDCAM MXF) as a network's QC desk checks it, measured in the
delivered file itself: the timecode (its start, drop-frame, the programme's first frame, and a frame
count that matches the timecode's span without a break), the leader (bars by pixel probes, the tone at
-20 dBFS, the 2-pop on exactly one frame with its flash, black where black belongs) and the loudness of
each act (-24 LKFS +-1 LU each, and the spread of its 3 s short-term loudness).

Only the leader's few probe frames are decoded from the picture (the seeks are exact in both formats:
ProRes is all intra, and ffmpeg decodes an MPEG-2 GOP up to the frame asked for); the sound is read
once per check (PCM, cheap); the frame count reads the video packets' timestamps without decoding.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from render.analysis import loudness
from render.core import ffmpeg
from render.core.house import TARGET_LUFS, TOLERANCE_LU
from render.core.timebase import AUDIO_RATE_HZ, dropframe_frames, dropframe_timecode, samples_for, sec, to_seconds
from render.deliver.leader import TONE_DBFS, Leader

#: SMPTE HD bars, top row: the seven 75% bars after the 40% grey edge (each 1/7 of 3/4 of the width), in RGB.
BARS_75 = ((191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191))
PIXEL_TOLERANCE = 30
TONE_TOLERANCE_DB = 0.1
BLACK_MAX = 20  # 8-bit full-range grey of legal black (16) after decoding, with room for the codec
SHORT_TERM_RANGE_LU = 8.0  # Discovery: 3 s short-term loudness within +-4 dB
_SHORT = re.compile(rb"lavfi\.r128\.S=(-?[\d.]+)")


def _frames(path: Path, first: int, count: int, rate: Fraction, fmt: str) -> np.ndarray:
    """``count`` decoded frames from frame ``first`` (ProRes is all intra, so the seek is exact)."""
    argv = [ffmpeg.FFMPEG, "-v", "error", "-ss", sec(to_seconds(first, rate)), "-i", str(path), "-frames:v",
            str(count), "-f", "rawvideo", "-pix_fmt", fmt, "-"]
    data = np.frombuffer(ffmpeg.run(argv, timeout_s=120).stdout, np.uint8)
    return data.reshape(count, 1080, 1920, -1)


def _channels(info: dict, n: int) -> str:
    """The start of a filter graph that takes the file's first ``n`` channels as one stream: from its one
    multichannel track (the MOV), or merged from that many mono tracks (the MXF)."""
    tracks = [s for s in info["streams"] if s.get("codec_type") == "audio"]
    if len(tracks) == 1:
        if n >= int(tracks[0].get("channels") or 1):
            return "[0:a:0]anull"
        return f"[0:a:0]pan={'stereo' if n == 2 else f'{n}c'}|" + "|".join(f"c{i}=c{i}" for i in range(n))
    return "".join(f"[0:a:{i}]" for i in range(n)) + f"amerge=inputs={n}"


def _sound(path: Path, info: dict, start: int, frames: int, rate: Fraction) -> np.ndarray:
    """The mezzanine's four channels over programme-clock frames ``[start, start + frames)``, as floats."""
    argv = [ffmpeg.FFMPEG, "-v", "error", "-ss", sec(to_seconds(start, rate)), "-i", str(path),
            "-filter_complex", f"{_channels(info, 4)}[a]", "-map", "[a]",
            "-t", sec(to_seconds(frames, rate)), "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    return np.frombuffer(ffmpeg.run(argv, timeout_s=300).stdout, np.float32).reshape(-1, 4)


def _db(x: np.ndarray) -> float:
    peak = float(np.abs(x).max()) if x.size else 0.0
    return round(20 * np.log10(peak), 2) if peak > 0 else -120.0


def _bars(frame: np.ndarray) -> dict:
    y, x0, w = 300, 1920 // 8, 1920 * 3 / 4 / 7
    got = [tuple(int(v) for v in frame[y, int(x0 + (i + 0.5) * w)]) for i in range(7)]
    ok = all(abs(a - b) <= PIXEL_TOLERANCE for g, e in zip(got, BARS_75) for a, b in zip(g, e))
    return {"passed": ok, "probes_rgb": got, "expected_rgb": list(BARS_75)}


def _leader(path: Path, info: dict, ld: Leader, programme_frames: int, rate: Fraction) -> dict:
    parts, at = ld.parts(), 0
    starts = {}
    for name, n in parts:
        starts.setdefault(name, []).append((at, n))
        at += n
    bars_at, bars_n = starts["bars"][0]
    pop_at = starts["pop"][0][0]
    sound = _sound(path, info, 0, ld.frames, rate)
    margin = AUDIO_RATE_HZ // 10  # the tone's edges are left out of its level
    tone = sound[samples_for(bars_at, rate) + margin:samples_for(bars_at + bars_n, rate) - margin]
    tone_db = [_db(tone[:, c]) for c in range(4)]
    after_bars = sound[samples_for(bars_at + bars_n, rate):]
    heard = np.flatnonzero(np.abs(after_bars).max(axis=1) > 10 ** ((TONE_DBFS - 20) / 20))
    heard = heard + samples_for(bars_at + bars_n, rate)
    pop_lo, pop_hi = samples_for(pop_at, rate), samples_for(pop_at + 1, rate)
    pop_ok = bool(heard.size) and pop_lo <= heard.min() and heard.max() < pop_hi
    flash = _frames(path, pop_at - 1, 3, rate, "gray")[..., 0].mean(axis=(1, 2))
    tail = ld.frames + programme_frames + ld.tail_frames(rate) // 2
    blacks = [a + n // 2 for a, n in starts["black"]] + [tail]
    black_max = [int(_frames(path, f, 1, rate, "gray").max()) for f in blacks]
    bars = _bars(_frames(path, bars_at + min(10, bars_n - 1), 1, rate, "rgb24")[0])
    return {
        "bars": bars,
        "tone": {"passed": all(abs(d - TONE_DBFS) <= TONE_TOLERANCE_DB for d in tone_db), "peak_dbfs": tone_db,
                 "limit": f"{TONE_DBFS:g} +-{TONE_TOLERANCE_DB} dBFS on every channel"},
        "pop": {"passed": bool(pop_ok and flash[1] > 200 and flash[0] < 30 and flash[2] < 30), "at": ld.pop,
                "sound_samples": [int(heard.min()), int(heard.max()) + 1] if heard.size else None,
                "frame_samples": [pop_lo, pop_hi], "flash_mean_luma": [round(float(v), 1) for v in flash],
                "pop_peak_dbfs": _db(sound[pop_lo:pop_hi])},
        "black": {"passed": all(v <= BLACK_MAX for v in black_max), "probe_frames": blacks, "max_grey": black_max},
    }


def _act_loudness(path: Path, info: dict, start: int, frames: int, rate: Fraction) -> dict:
    """ebur128 on ch1-2 (the mix) over one act: integrated, true peak and the spread of short-term loudness."""
    # cut by sample inside the graph: an input seek into this MOV landed the sound seconds off the
    # picture's time, and an output -ss/-t trims after the filters, so the meter saw the whole start
    cut = f"atrim=start_sample={samples_for(start, rate)}:end_sample={samples_for(start + frames, rate)}"
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "info", "-i", str(path),
            "-filter_complex", f"{_channels(info, 2)},{cut},{loudness.meter_chain()}[m]", "-map", "[m]",
            "-f", "null", "-"]
    run = ffmpeg.run(argv, timeout_s=300)
    summary = loudness.parse_summary(run.stderr_tail)
    # the first 3 s have no full short-term window; silence (under the absolute gate) is not programme
    short = [float(v) for v in _SHORT.findall(run.stdout)[30:] if float(v) > -70]
    spread = round(max(short) - min(short), 2) if short else 0.0
    return {"integrated_lufs": summary.integrated_lufs, "true_peak_dbtp": summary.true_peak_dbtp,
            "short_term_range_lu": spread,
            "passed": bool(abs(summary.integrated_lufs - TARGET_LUFS) <= TOLERANCE_LU),
            "short_term_passed": spread <= SHORT_TERM_RANGE_LU}


def timecode(path: Path, ld: Leader, programme_frames: int, rate: Fraction, info: dict | None = None) -> dict:
    """The timecode as a QC desk reads it. The file's timecode (a MOV's ``tmcd`` track, an MXF's
    material package) starts at the leader's bars, drop-frame, so the programme's first frame reads the
    leader's programme timecode (01:00:00;00); the picture is exactly leader + programme + tail frames,
    each stamped one frame after the one before (no gap, no repeat), so the timecode runs unbroken
    from the first frame to the last; a MOV's timecode is one sample lasting as long as the picture
    (one run, not several)."""
    info = info or ffmpeg.ffprobe_output(path)
    video = next(s for s in info["streams"] if s.get("codec_type") == "video")
    tmcd = next((s for s in info["streams"] if s.get("codec_tag_string") == "tmcd"), None)
    start = ((tmcd or {}).get("tags") or {}).get("timecode") or (info["format"].get("tags") or {}).get("timecode")
    argv = [ffmpeg.FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts", "-of", "csv=p=0",
            str(path)]
    stamps = [x.strip() for x in ffmpeg.run(argv, timeout_s=600).stdout.decode().split()]
    pts = sorted(int(x) for x in stamps if x.lstrip("-").isdigit())
    tick = 1 / (rate * Fraction(video["time_base"]))  # a frame in the stream's time base
    breaks = [i for i in range(1, len(pts)) if pts[i] - pts[i - 1] != tick]
    expected = ld.frames + programme_frames + ld.tail_frames(rate)
    try:
        first = dropframe_frames(start) if start and ";" in start else None
    except ValueError:
        first = None
    runs = None
    if tmcd is not None:
        seconds = {s["index"]: Fraction(s.get("duration_ts") or 0) * Fraction(s["time_base"]) for s in (tmcd, video)}
        runs = int(tmcd.get("nb_frames") or 0)
        runs = runs if seconds[tmcd["index"]] == seconds[video["index"]] else -runs  # negative: not the picture's span
    report = {
        "start": start, "drop_frame": bool(start and ";" in start),
        "programme_first_frame": dropframe_timecode(first + ld.frames) if first is not None else None,
        "last_frame": dropframe_timecode(first + len(pts) - 1) if first is not None and pts else None,
        "frames": len(pts), "expected_frames": expected, "unstamped_frames": len(stamps) - len(pts),
        "breaks": [{"after_frame": i - 1, "at": dropframe_timecode(first + i) if first is not None else None}
                   for i in breaks[:10]],
        "timecode_runs": runs,
        "limit": (f"starts at {ld.bars} (drop-frame), the programme's first frame at {ld.programme}; {expected} "
                  "frames, each one frame after the last; one timecode run over the whole picture"),
    }
    report["passed"] = bool(start == ld.bars and report["programme_first_frame"] == ld.programme
                            and len(pts) == expected == len(stamps) and not breaks and runs in (None, 1))
    return report


def check(path: Path, ld: Leader, programme_frames: int, acts: list[tuple[int, int]], rate: Fraction) -> dict:
    """A mezzanine's QC report: each check's figures and verdict, and ``passed`` overall."""
    info = ffmpeg.ffprobe_output(path)
    report = {
        "timecode": timecode(path, ld, programme_frames, rate, info),
        **_leader(path, info, ld, programme_frames, rate),
        "acts": [{"act": i, "in": ld.programme_timecode(a), "out": ld.programme_timecode(b),
                  **_act_loudness(path, info, ld.frames + a, b - a, rate)} for i, (a, b) in enumerate(acts, 1)],
    }
    report["passed"] = all(v["passed"] for k, v in report.items() if k != "acts") and all(
        a["passed"] for a in report["acts"])
    return report
