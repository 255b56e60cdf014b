"""The broadcast master's loudness levelling.

**Loudness** (ATSC A/85: -24 LKFS +/-1 LU, true peak <= -2 dBTP). Records are pre-levelled
towards the target when pieces are rendered (``plan.gain_db``); what is left is the programme as a
whole, levelled at the join by a two-pass ``loudnorm`` in linear mode (a single gain, so the mix
the pre-levelling made is kept):

- *Pass 1 costs no programme decode.* Each rendered piece's sound is metered once with ffmpeg's
  ``ebur128`` (BS.1770 momentary and short-term loudness every 100 ms, true peak) and the result
  is cached in the piece's folder, keyed by the piece like the piece itself. The programme's
  integrated loudness, LRA and true peak are computed from the pieces' blocks with the BS.1770
  gates (``programme_loudness``). The only blocks missing are the few 400 ms blocks that straddle
  a piece boundary, so a one-segment edit re-meters one piece, not 22 minutes.
- *Pass 2 is the join's own AAC encode*: ``loudnorm=...:linear=true`` with the measured values.
  loudnorm silently falls back to dynamic mode when a linear gain would break the true-peak
  target, so we predict its decision with its own rule, read ``normalization_type`` from its JSON
  to confirm, and when linear cannot hold the peak we use the *limited* mode instead: the same
  single gain into a look-ahead limiter run at 4x the sample rate (so it sees inter-sample peaks),
  its gain tuned by metering passes until the programme lands on the target.
- *The final file is re-measured* with ffmpeg's ``ebur128`` (peak=true) -- a meter independent of
  loudnorm's -- and those figures are what build.json and QC report. If the AAC encoder's
  overshoot pushed the true peak over the ceiling, the join is redone in limited mode with the
  ceiling lowered by the overshoot. (``verify=False``, the preview's choice: no re-measure; the
  figures are the level pass's own reading before AAC, so an edit costs no extra programme decode.)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from render.analysis import loudness
from render.compose import store
from render.core import ffmpeg
from render.core.cache import write_text_atomic
from render.core.errors import FfmpegError
from render.core.house import TARGET_LUFS, TRUE_PEAK_DBTP
from render.core.timebase import AUDIO_RATE_HZ

MASTER_VERSION = 1
METER_VERSION = 1
FLOOR = -120.0
ABSOLUTE_GATE = -70.0            # BS.1770-4 absolute gate (LKFS)
RELATIVE_GATE_LU = -10.0         # BS.1770-4 relative gate for integrated loudness
LRA_RELATIVE_GATE_LU = -20.0     # EBU Tech 3342 relative gate for the loudness range
#: AAC can put the true peak a few tenths of a dB above the PCM it was given; the level pass aims
#: this far under the ceiling so the encoded file still meets it (verified on the final file).
CODEC_HEADROOM_DB = 0.5
#: loudnorm keeps linear mode only if the measured LRA is within its LRA target; linear mode never
#: changes the range, so we give it the widest target it accepts.
LOUDNORM_LRA = 50.0
LANDING_LU = 0.5                 # redo the join when the final file misses the target by more than this
TUNING_LU = 0.2                  # the limiter's gain is tuned until metering lands this close
MAX_JOINS = 3
MAX_TUNING_PASSES = 6
LIMITER_ATTACK_MS = 5            # also its look-ahead: the limiter acts before the peak arrives
LIMITER_RELEASE_MS = 50
OVERSAMPLE_HZ = 4 * AUDIO_RATE_HZ


# ---------------------------------------------------------------------------------------------
# pass 1: per-piece meters, merged


@dataclass(frozen=True, slots=True)
class PieceMeter:
    """BS.1770 blocks of one rendered piece's sound: every 100 ms, the momentary (400 ms) and
    short-term (3 s) loudness ending there, and the piece's true peak (linear, 1.0 = full scale)."""

    momentary: tuple[float, ...]
    short_term: tuple[float, ...]
    true_peak: float

    def to_json(self) -> dict:
        return {"version": METER_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict) -> PieceMeter:
        return cls(tuple(float(x) for x in d["momentary"]), tuple(float(x) for x in d["short_term"]),
                   float(d["true_peak"]))


_M = re.compile(rb"lavfi\.r128\.M=(\S+)")
_S = re.compile(rb"lavfi\.r128\.S=(\S+)")
_TP = re.compile(rb"lavfi\.r128\.true_peak=(\S+)")


def _values(pattern: re.Pattern, text: bytes) -> list[float]:
    out = []
    for m in pattern.finditer(text):
        try:
            v = float(m.group(1))
        except ValueError:
            v = FLOOR
        out.append(v if math.isfinite(v) else FLOOR)
    return out


def parse_meter(stdout: bytes) -> PieceMeter:
    """A PieceMeter from ``ebur128=metadata=1`` frames printed by ``ametadata=mode=print``."""
    peaks = _values(_TP, stdout)
    return PieceMeter(tuple(_values(_M, stdout)), tuple(_values(_S, stdout)), max(peaks, default=0.0))


def meter_audio(audio: Path, timeout_s: float = 600) -> PieceMeter:
    """Meter one of our own PCM files (a rendered piece's sound)."""
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-i", str(audio), "-map", "0:a:0",
            "-af", "ebur128=peak=true:metadata=1,ametadata=mode=print:file=-", "-f", "null", "-"]
    return parse_meter(ffmpeg.run(argv, timeout_s=timeout_s).stdout)


def piece_meter(audio: Path, seconds: float) -> PieceMeter:
    """A piece's meter, cached beside its sound (the piece's folder is keyed by everything in it)."""
    cached = audio.parent / "meter.json"
    found = store.kept(cached, METER_VERSION, PieceMeter.from_json)
    if found is not None:
        return found
    meter = meter_audio(audio, timeout_s=60 + seconds)
    write_text_atomic(cached, json.dumps(meter.to_json()))
    return meter


@dataclass(frozen=True, slots=True)
class ProgrammeLoudness:
    """Integrated loudness (LKFS), loudness range (LU), true peak (dBTP) and the relative gate."""

    integrated_lufs: float
    lra_lu: float
    true_peak_dbtp: float
    threshold_lufs: float

    @property
    def silent(self) -> bool:
        return self.integrated_lufs <= ABSOLUTE_GATE

    def to_json(self) -> dict:
        return {k: round(v, 2) for k, v in asdict(self).items()}


def _energy(lufs: np.ndarray) -> np.ndarray:
    return np.power(10.0, (lufs + 0.691) / 10)


def _lufs(energy: float) -> float:
    return -0.691 + 10 * math.log10(energy)


def programme_loudness(meters: Sequence[PieceMeter]) -> ProgrammeLoudness:
    """BS.1770-4 integrated loudness and EBU 3342 LRA of pieces played one after another."""
    m = np.array([v for p in meters for v in p.momentary], dtype=np.float64)
    s = np.array([v for p in meters for v in p.short_term], dtype=np.float64)
    peak = max((p.true_peak for p in meters), default=0.0)
    tp = 20 * math.log10(peak) if peak > 0 else FLOOR
    m = m[m > ABSOLUTE_GATE]
    if m.size == 0:
        return ProgrammeLoudness(ABSOLUTE_GATE, 0.0, tp, ABSOLUTE_GATE)
    threshold = _lufs(float(_energy(m).mean())) + RELATIVE_GATE_LU
    integrated = _lufs(float(_energy(m[m > threshold]).mean()))
    s = s[s > ABSOLUTE_GATE]
    lra = 0.0
    if s.size:
        s = s[s > _lufs(float(_energy(s).mean())) + LRA_RELATIVE_GATE_LU]
        lra = float(np.percentile(s, 95) - np.percentile(s, 10))
    return ProgrammeLoudness(integrated, lra, tp, threshold)


# ---------------------------------------------------------------------------------------------
# pass 2: the levelling plan and its filter


@dataclass(frozen=True, slots=True)
class LevelPlan:
    """How the programme's sound is levelled: ``linear`` (loudnorm, one gain), ``limited`` (one gain
    into a true-peak limiter) or ``none`` (silence: nothing to level)."""

    mode: str
    gain_db: float
    before: ProgrammeLoudness
    ceiling_dbtp: float = TRUE_PEAK_DBTP - CODEC_HEADROOM_DB

    def to_json(self) -> dict:
        return {"mode": self.mode, "gain_db": round(self.gain_db, 2),
                "limiter_ceiling_dbtp": round(self.ceiling_dbtp, 2) if self.mode == "limited" else None}


def _measured(before: ProgrammeLoudness) -> tuple[float, float, float, float]:
    """The values loudnorm is given, rounded as they are written into its arguments.

    loudnorm refuses linear mode when measured LRA is 0 or the threshold is exactly -70, so those
    are nudged (they do not otherwise enter a linear gain).
    """
    return (round(before.integrated_lufs, 2), round(max(before.true_peak_dbtp, -99.0), 2),
            round(min(max(before.lra_lu, 0.01), LOUDNORM_LRA), 2), round(max(before.threshold_lufs, -69.99), 2))


def plan_level(before: ProgrammeLoudness, target: float = TARGET_LUFS,
               ceiling: float = TRUE_PEAK_DBTP - CODEC_HEADROOM_DB) -> LevelPlan:
    """Choose linear loudnorm when one gain reaches ``target`` with the true peak under ``ceiling``
    (loudnorm's own rule, on the same rounded values), else a gain plus limiting."""
    if before.silent:
        return LevelPlan("none", 0.0, before, ceiling)
    i, tp, _, _ = _measured(before)
    gain = target - i
    if tp + gain <= ceiling and before.lra_lu <= LOUDNORM_LRA:
        return LevelPlan("linear", gain, before, ceiling)
    return LevelPlan("limited", gain, before, ceiling)


def level_filter(plan: LevelPlan, target: float = TARGET_LUFS, print_json: bool = True) -> str:
    """The audio filter chain that levels the programme (48 kHz in, 48 kHz out)."""
    if plan.mode == "none":
        return "anull"
    if plan.mode == "linear":
        i, tp, lra, thresh = _measured(plan.before)
        # aresample: loudnorm works at 192 kHz when it leaves linear mode; we detect that and redo,
        # but the output must stay 48 kHz whatever it did
        return (f"loudnorm=I={target}:TP={plan.ceiling_dbtp:.2f}:LRA={LOUDNORM_LRA:g}:measured_I={i:.2f}:"
                f"measured_TP={tp:.2f}:measured_LRA={lra:.2f}:measured_thresh={thresh:.2f}:offset=0:linear=true"
                + (":print_format=json" if print_json else "") + f",aresample={AUDIO_RATE_HZ}")
    return limiter_chain(plan.gain_db, plan.ceiling_dbtp)


def limiter_chain(gain_db: float, ceiling_dbtp: float) -> str:
    """One gain into the true-peak limiter: the ``limited`` levelling's filter chain (48 kHz in and out)."""
    limit = 10 ** (ceiling_dbtp / 20)
    # limiting at 4x the rate puts inter-sample (true) peaks on samples the limiter can see
    return (f"volume={gain_db:.2f}dB,aresample={OVERSAMPLE_HZ},"
            f"alimiter=limit={limit:.6f}:attack={LIMITER_ATTACK_MS}:release={LIMITER_RELEASE_MS}:level=0:latency=1,"
            f"aresample={AUDIO_RATE_HZ}")


def parse_loudnorm(stderr: str) -> dict | None:
    """loudnorm's ``print_format=json`` block (the last one in ``stderr``), or None."""
    end = stderr.rfind("}")
    start = stderr.rfind("{", 0, end)
    if start < 0 or end < 0:
        return None
    try:
        data = json.loads(stderr[start:end + 1])
    except json.JSONDecodeError:
        return None
    return data if "normalization_type" in data else None


def parse_loudnorm_parts(stderrs: Sequence[str]) -> dict | None:
    """One summary for a programme levelled in parts (each part's stderr, in order): loudnorm's own
    when there is one part; else its decision (``linear`` only if every part stayed linear), its
    inputs (the same for every part) and each part's output figures, or None if any part printed none."""
    reports = [parse_loudnorm(e) for e in stderrs]
    if not reports or any(r is None for r in reports):
        return None
    if len(reports) == 1:
        return reports[0]
    outputs = ("output_i", "output_tp", "output_lra", "output_thresh")
    kinds = {r["normalization_type"] for r in reports}
    return {**{k: v for k, v in reports[0].items() if k not in outputs},
            "normalization_type": kinds.pop() if len(kinds) == 1 else "mixed",
            "parts": [{k: r.get(k) for k in outputs} for r in reports]}


def _concat_input(alist: Path) -> list[str]:
    return ["-f", "concat", "-safe", "0", "-i", str(alist)]


def meter_levelled(alist: Path, chain: str, timeout_s: float) -> loudness.Loudness:
    """Meter the concatenated piece sound through ``chain`` (no encode): one limiter tuning pass."""
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-v", "info", *_concat_input(alist),
            "-map", "0:a", "-af", f"{chain},ebur128=peak=true", "-f", "null", "-"]
    return loudness.parse_summary(ffmpeg.run(argv, timeout_s=timeout_s).stderr_tail)


def tune_limited(plan: LevelPlan, alist: Path, timeout_s: float,
                 target: float = TARGET_LUFS) -> tuple[LevelPlan, int, loudness.Loudness]:
    """Find the gain that lands the limited programme on ``target``: limiting takes loudness away
    with the peaks, so the gain is corrected by the secant method over metering passes. Returns the
    plan, the passes it took and the last pass's reading (of the levelled sound, before encoding)."""
    gain, passes = plan.gain_db, 0
    prev: tuple[float, float] | None = None
    while True:
        passes += 1
        reading = meter_levelled(alist, level_filter(LevelPlan("limited", gain, plan.before, plan.ceiling_dbtp)),
                                 timeout_s)
        got = reading.integrated_lufs
        if abs(got - target) <= TUNING_LU or got <= ABSOLUTE_GATE or passes >= MAX_TUNING_PASSES:
            return LevelPlan("limited", gain, plan.before, plan.ceiling_dbtp), passes, reading
        slope = 1.0
        if prev is not None and abs(gain - prev[0]) > 1e-6:
            slope = min(1.0, max(0.2, (got - prev[1]) / (gain - prev[0])))
        prev = (gain, got)
        gain += (target - got) / slope


def _loudnorm_reading(report: dict) -> loudness.Loudness:
    return loudness.Loudness(float(report["output_i"]), float(report["output_lra"]), float(report["output_tp"]))


def level_programme(meters: Sequence[PieceMeter], alist: Path, encode: Callable[[str, bool], list[str]], final: Path,
                    timeout_s: float, target: float = TARGET_LUFS, max_tp: float = TRUE_PEAK_DBTP,
                    verify: bool = True) -> dict:
    """Level and encode the programme, then re-measure the final file; returns build.json's ``loudness``.

    ``encode(audio_filter, per_sample)`` writes ``final`` (the whole join) and returns ffmpeg's stderr
    tails (one per part: a ``per_sample`` chain, a gain, may be encoded in parts side by side);
    ``alist`` is the concat list of the pieces' PCM, for limiter tuning passes. Without ``verify``
    the final file is not decoded again: the figures are the level pass's own reading of the sound
    it sent to the encoder (loudnorm's output meter, or the last limiter tuning pass).
    """
    before = programme_loudness(meters)
    plan = plan_level(before, target)
    tuning, reading = 0, None
    if plan.mode == "limited":
        plan, tuning, reading = tune_limited(plan, alist, timeout_s, target)
    report_ln: dict | None = None
    joins = 0
    while True:
        joins += 1
        # a gain (linear loudnorm) treats every sample alike, so its AAC is encoded in parts side by side
        stderrs = encode(level_filter(plan, target), plan.mode != "limited")
        if plan.mode == "linear":
            report_ln = parse_loudnorm_parts(stderrs)
            if report_ln is None:
                raise FfmpegError(["loudnorm"], 0, "\n".join(stderrs), "loudnorm printed no JSON summary")
            if report_ln["normalization_type"] != "linear":
                # loudnorm judged differently from our prediction: never ship its dynamic mode
                plan, more, reading = tune_limited(LevelPlan("limited", plan.gain_db, before, plan.ceiling_dbtp),
                                                   alist, timeout_s, target)
                tuning += more
                continue
            # a part's loudnorm measured only its part: the whole's figures are the plan's, exact for a gain
            reading = (_loudnorm_reading(report_ln) if "parts" not in report_ln else
                       loudness.Loudness(before.integrated_lufs + plan.gain_db, before.lra_lu,
                                         before.true_peak_dbtp + plan.gain_db))
        if not verify:
            got = reading or loudness.Loudness(before.integrated_lufs, before.lra_lu, before.true_peak_dbtp)
            break
        got = loudness.measure_file(final, timeout_s=timeout_s)
        landed = got.true_peak_dbtp <= max_tp and (plan.mode == "none" or abs(got.integrated_lufs - target) <= LANDING_LU)
        if landed or joins >= MAX_JOINS:
            break
        # the encoder overshot (or the landing missed): lower the ceiling by the overshoot and retune
        over = max(0.0, got.true_peak_dbtp - max_tp)
        ceiling = plan.ceiling_dbtp - (over + 0.2 if over else 0.0)
        plan, more, reading = tune_limited(LevelPlan("limited", plan.gain_db + target - got.integrated_lufs, before,
                                                     ceiling), alist, timeout_s, target)
        tuning += more
    meter = ("ffmpeg ebur128 (peak=true) on the final file" if verify else
             "the level pass's own meter, before AAC (the final file is not re-measured)")
    return {
        "integrated_lufs": got.integrated_lufs, "lra_lu": got.lra_lu, "true_peak_dbtp": got.true_peak_dbtp,
        "max_short_term_lufs": got.max_short_term_lufs, "meter": meter, "final_file_measured": verify,
        "target_lufs": target, "ceiling_dbtp": max_tp, **plan.to_json(),
        "before": {**before.to_json(), "from": "per-piece ebur128 blocks, BS.1770 gating"},
        "loudnorm": report_ln, "joins": joins, "tuning_passes": tuning,
    }


#: A preview keeps the gain of its previous build while that still lands this close to the target, so an
#: edit that moves the programme's loudness a little re-encodes only the sound it changed.
PREVIEW_HOLD_LU = 0.5


def preview_plan(before: ProgrammeLoudness, previous_gain_db: float | None, target: float = TARGET_LUFS) -> LevelPlan:
    """The preview's level: one gain (no limiter, so the encoded sound can be spliced), the previous
    build's if it still lands within ``PREVIEW_HOLD_LU`` with the peak under the ceiling; ``limited``
    when no single gain holds the peak (the caller then levels the whole programme as the master does)."""
    plan = plan_level(before, target)
    if plan.mode == "linear" and previous_gain_db is not None:
        i, tp, _, _ = _measured(before)
        if abs(i + previous_gain_db - target) <= PREVIEW_HOLD_LU and tp + previous_gain_db <= plan.ceiling_dbtp:
            return LevelPlan("linear", previous_gain_db, before, plan.ceiling_dbtp)
    return plan


def planned_loudness(plan: LevelPlan, meters: Sequence[PieceMeter], target: float = TARGET_LUFS,
                     max_tp: float = TRUE_PEAK_DBTP) -> dict:
    """build.json's ``loudness`` for a programme levelled by one plain gain and not re-measured: the
    per-piece meters' figures moved by that gain (exact for a gain, before the AAC encode)."""
    b = plan.before
    shift = plan.gain_db if plan.mode == "linear" else 0.0
    short = max((v for m in meters for v in m.short_term), default=FLOOR)
    return {
        "integrated_lufs": round(b.integrated_lufs + shift, 2), "lra_lu": round(b.lra_lu, 2),
        "true_peak_dbtp": round(b.true_peak_dbtp + shift, 2), "max_short_term_lufs": round(short + shift, 2),
        "meter": "per-piece ebur128 blocks moved by the programme gain (the final file is not re-measured)",
        "final_file_measured": False, "target_lufs": target, "ceiling_dbtp": max_tp, **plan.to_json(),
        "before": {**b.to_json(), "from": "per-piece ebur128 blocks, BS.1770 gating"},
        "loudnorm": None, "joins": 1, "tuning_passes": 0,
    }


def level_key(target: float = TARGET_LUFS, max_tp: float = TRUE_PEAK_DBTP) -> dict:
    """What a join's cache key needs to know about levelling."""
    return {"master": MASTER_VERSION, "meter": METER_VERSION, "target": target, "tp": max_tp,
            "headroom": CODEC_HEADROOM_DB, "limiter": [LIMITER_ATTACK_MS, LIMITER_RELEASE_MS]}
