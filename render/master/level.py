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
- *Acts* (the master's choice, ``act_levels``): each act (the segments between act breaks) first gets
  a gain of its own that takes it to the target, from its pieces' blocks. The gain steps in the
  middle of the act break before the act, which is black and silent, so no step is heard inside an
  act; the programme's gain (or gain and limiter) then applies to the whole as above. Pieces never
  straddle an act break (a piece is part of one segment), so each piece is in one act or one break.
- *The final file is re-measured* with ffmpeg's ``ebur128`` (peak=true) -- a meter independent of
  loudnorm's -- and those figures are what build.json and QC report. If the AAC encoder's
  overshoot pushed the true peak over the ceiling, the join is redone in limited mode with the
  ceiling lowered by the overshoot. (``verify=False``, the preview's choice: no re-measure; the
  figures are the level pass's own reading before AAC, so an edit costs no extra programme decode.)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from render.analysis import loudness
from render.compose import store
from render.core import ffmpeg
from render.core.cache import write_text_atomic
from render.core.errors import FfmpegError
from render.core.house import TARGET_LUFS, TRUE_PEAK_DBTP
from render.core.timebase import AUDIO_RATE_HZ

MASTER_VERSION = 2  # 2: per-act gains
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
BLOCK_S = 0.1                    # ebur128's metadata cadence: one momentary and short-term value every 100 ms
MOMENTARY_S = 0.4
SHORT_TERM_S = 3.0


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

    def moved(self, gain_db: float) -> PieceMeter:
        """The meter of this sound after a gain of ``gain_db`` (exact: a gain moves every block alike)."""
        if gain_db == 0:
            return self
        return PieceMeter(tuple(v + gain_db if v > FLOOR else v for v in self.momentary),
                          tuple(v + gain_db if v > FLOOR else v for v in self.short_term),
                          self.true_peak * 10 ** (gain_db / 20))


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
# acts: one gain each, stepped in the silence of the act break before it


@dataclass(frozen=True, slots=True)
class Act:
    """One act: programme frames ``[start_frame, end_frame)``, its loudness from its pieces' blocks,
    its own gain, and the programme second its gain takes over from (mid act break; 0 for the first)."""

    start_frame: int
    end_frame: int
    before: ProgrammeLoudness
    gain_db: float
    from_s: float


@dataclass(frozen=True, slots=True)
class ActLevels:
    """The acts' gains, and the gain each piece of the programme gets from them (in order)."""

    acts: tuple[Act, ...]
    rate: Fraction
    piece_frames: tuple[int, ...]

    @property
    def piece_gains_db(self) -> tuple[float, ...]:
        """The act gain in force over each piece: a piece inside a break (silent) takes the gain of
        the side of the break's middle it starts on."""
        out, at = [], 0
        for n in self.piece_frames:
            t = float(Fraction(at) / self.rate)
            out.append(next((a.gain_db for a in reversed(self.acts) if a.from_s <= t), self.acts[0].gain_db))
            at += n
        return tuple(out)

    def chain(self) -> str:
        """The acts' gains as a filter chain on the programme's sound (see ``act_chain``)."""
        return act_chain([(a.from_s, a.gain_db) for a in self.acts])

    def moved(self, meters: Sequence[PieceMeter]) -> list[PieceMeter]:
        """The pieces' meters after the acts' gains."""
        return [m.moved(g) for m, g in zip(meters, self.piece_gains_db, strict=True)]

    def seconds(self, act: Act) -> tuple[float, float]:
        """Where ``act`` starts and ends, in programme seconds."""
        return float(Fraction(act.start_frame) / self.rate), float(Fraction(act.end_frame) / self.rate)

    def corrected(self, misses_db: Sequence[float]) -> ActLevels:
        """The same acts with each gain moved by its miss (the target less what the act measured)."""
        return dataclasses.replace(self, acts=tuple(dataclasses.replace(a, gain_db=round(a.gain_db + d, 2))
                                                    for a, d in zip(self.acts, misses_db, strict=True)))


def act_chain(steps: Sequence[tuple[float, float]]) -> str:
    """One gain per act as a filter chain on the programme's sound in programme time (48 kHz in and
    out): ``steps`` are ``(second, gain dB)``, the first from 0.

    ``volume``'s timeline switch is evaluated once per audio frame, on the frame's start time. The
    pieces' sound is read in frames that start afresh at every piece boundary (each piece is its own
    file), so a step at a time inside an act break takes effect inside the break, at the latest on
    the next act's first sample, never inside an act."""
    out = [f"volume={steps[0][1]:.2f}dB"]
    for (_, before), (at, gain) in itertools.pairwise(steps):
        out.append(f"volume={gain - before:.2f}dB:enable='gte(t,{at:.6f})'")
    return ",".join(out)


def act_levels(meters: Sequence[PieceMeter], piece_frames: Sequence[int], acts: Sequence[tuple[int, int]],
               rate: Fraction, target: float = TARGET_LUFS) -> ActLevels | None:
    """Each act's gain to ``target`` from its pieces' blocks (0 for a silent act), stepping in the
    middle of the act break before it; None with fewer than two acts (one gain does it all).

    ``acts`` are ``[start, end)`` programme frames, which are piece boundaries: an act is whole
    segments, and a piece is part of one segment."""
    if len(acts) < 2:
        return None
    starts = list(itertools.accumulate(piece_frames, initial=0))[:-1]
    out = []
    for k, (a, b) in enumerate(acts):
        before = programme_loudness([m for m, s in zip(meters, starts) if a <= s < b])
        gain = 0.0 if before.silent else round(target - before.integrated_lufs, 2)
        middle = Fraction(acts[k - 1][1] + a, 2) if k else Fraction(0)
        out.append(Act(a, b, before, gain, round(float(middle / rate), 6)))
    return ActLevels(tuple(out), rate, tuple(piece_frames))


def act_figures(meter: PieceMeter, start_s: float, end_s: float) -> tuple[float, float]:
    """An act's integrated loudness (BS.1770 gating over the 400 ms blocks wholly inside it) and the
    range of its 3 s short-term loudness (the windows wholly inside it, above the absolute gate), from
    a meter of the whole programme (``meter_file``)."""
    ends = (np.arange(len(meter.momentary)) + 1) * BLOCK_S
    eps = BLOCK_S / 100
    inside = ends <= end_s + eps
    m = np.array(meter.momentary)[inside & (ends - MOMENTARY_S >= start_s - eps)]
    s = np.array(meter.short_term)[inside & (ends - SHORT_TERM_S >= start_s - eps)]
    integrated = programme_loudness([PieceMeter(tuple(m), (), 0.0)]).integrated_lufs
    s = s[s > ABSOLUTE_GATE]
    return round(integrated, 2), round(float(s.max() - s.min()), 2) if s.size else 0.0


def meter_file(path: Path, timeout_s: float = 600) -> tuple[loudness.Loudness, PieceMeter]:
    """One ``ebur128`` pass over a finished file's first sound: its summary and its 100 ms blocks."""
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-v", "info", "-i", str(path), "-map", "0:a:0",
            "-af", "ebur128=peak=true:metadata=1,ametadata=mode=print:file=-", "-f", "null", "-"]
    run = ffmpeg.run(argv, timeout_s=timeout_s)
    return loudness.figures(run.stderr_tail, run.stdout), parse_meter(run.stdout)


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
    acts: ActLevels | None = None  # the acts' own gains, before the programme's (``before`` is after them)

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
               ceiling: float = TRUE_PEAK_DBTP - CODEC_HEADROOM_DB, acts: ActLevels | None = None) -> LevelPlan:
    """Choose linear loudnorm when one gain reaches ``target`` with the true peak under ``ceiling``
    (loudnorm's own rule, on the same rounded values), else a gain plus limiting. With ``acts``,
    ``before`` is the programme after the acts' gains."""
    if before.silent:
        return LevelPlan("none", 0.0, before, ceiling, acts)
    i, tp, _, _ = _measured(before)
    gain = target - i
    if tp + gain <= ceiling and before.lra_lu <= LOUDNORM_LRA:
        return LevelPlan("linear", gain, before, ceiling, acts)
    return LevelPlan("limited", gain, before, ceiling, acts)


def level_filter(plan: LevelPlan, target: float = TARGET_LUFS, print_json: bool = True) -> str:
    """The audio filter chain that levels the programme (48 kHz in, 48 kHz out): the acts' gains, if
    any, then the programme's."""
    programme = _programme_filter(plan, target, print_json)
    if plan.acts is None:
        return programme
    return plan.acts.chain() if programme == "anull" else f"{plan.acts.chain()},{programme}"


def _programme_filter(plan: LevelPlan, target: float, print_json: bool) -> str:
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
        tried = dataclasses.replace(plan, mode="limited", gain_db=gain)
        reading = meter_levelled(alist, level_filter(tried), timeout_s)
        got = reading.integrated_lufs
        if abs(got - target) <= TUNING_LU or got <= ABSOLUTE_GATE or passes >= MAX_TUNING_PASSES:
            return tried, passes, reading
        slope = 1.0
        if prev is not None and abs(gain - prev[0]) > 1e-6:
            slope = min(1.0, max(0.2, (got - prev[1]) / (gain - prev[0])))
        prev = (gain, got)
        gain += (target - got) / slope


def _loudnorm_reading(report: dict) -> loudness.Loudness:
    return loudness.Loudness(float(report["output_i"]), float(report["output_lra"]), float(report["output_tp"]))


# one loop (encode, measure, correct, again) whose state is the plan and its readings: kept whole
def level_programme(meters: Sequence[PieceMeter], alist: Path, encode: Callable[[str, bool], list[str]], final: Path,
                    timeout_s: float, target: float = TARGET_LUFS, max_tp: float = TRUE_PEAK_DBTP,
                    verify: bool = True, acts: ActLevels | None = None) -> dict:
    """Level and encode the programme, then re-measure the final file; returns build.json's ``loudness``.

    ``encode(audio_filter, per_sample)`` writes ``final`` (the whole join) and returns ffmpeg's stderr
    tails (one per part: a ``per_sample`` chain, gains, may be encoded in parts side by side);
    ``alist`` is the concat list of the pieces' PCM, for limiter tuning passes. Without ``verify``
    the final file is not decoded again: the figures are the level pass's own reading of the sound
    it sent to the encoder (loudnorm's output meter, or the last limiter tuning pass).

    ``acts`` (``act_levels``) gives each act its own gain before the programme's; the final file is
    then measured act by act too, and an act that misses the target by more than ``LANDING_LU`` (a
    limiter took loudness from it) has its gain corrected by the miss and the join is redone.
    """
    raw = programme_loudness(meters)
    plan = plan_level(programme_loudness(acts.moved(meters)) if acts else raw, target, acts=acts)
    tuning, reading = 0, None
    if plan.mode == "limited":
        plan, tuning, reading = tune_limited(plan, alist, timeout_s, target)
    report_ln: dict | None = None
    figures: list[tuple[float, float]] | None = None
    joins = 0
    while True:
        joins += 1
        # gains (linear loudnorm, the acts') are the same for a sample wherever it is encoded, so the
        # AAC is encoded in parts side by side; a limiter needs the whole
        stderrs = encode(level_filter(plan, target), plan.mode != "limited")
        before = plan.before
        if plan.mode == "linear":
            report_ln = parse_loudnorm_parts(stderrs)
            if report_ln is None:
                raise FfmpegError(["loudnorm"], 0, "\n".join(stderrs), "loudnorm printed no JSON summary")
            if report_ln["normalization_type"] != "linear":
                # loudnorm judged differently from our prediction: never ship its dynamic mode
                plan, more, reading = tune_limited(dataclasses.replace(plan, mode="limited"), alist, timeout_s,
                                                   target)
                tuning += more
                continue
            # a part's loudnorm measured only its part: the whole's figures are the plan's, exact for a gain
            reading = (_loudnorm_reading(report_ln) if "parts" not in report_ln else
                       loudness.Loudness(before.integrated_lufs + plan.gain_db, before.lra_lu,
                                         before.true_peak_dbtp + plan.gain_db))
        if not verify:
            got = reading or loudness.Loudness(before.integrated_lufs, before.lra_lu, before.true_peak_dbtp)
            break
        misses: list[float] = []
        if plan.acts is None:
            got = loudness.measure_file(final, timeout_s=timeout_s)
        else:
            got, blocks = meter_file(final, timeout_s=timeout_s)
            figures = [act_figures(blocks, *plan.acts.seconds(a)) for a in plan.acts.acts]
            misses = [0.0 if a.before.silent or i <= ABSOLUTE_GATE else target - i
                      for a, (i, _) in zip(plan.acts.acts, figures)]
        over = max(0.0, got.true_peak_dbtp - max_tp)
        acts_landed = all(abs(d) <= LANDING_LU for d in misses)
        landed = not over and acts_landed and (plan.mode == "none" or abs(got.integrated_lufs - target) <= LANDING_LU)
        if landed or joins >= MAX_JOINS:
            break
        # the encoder overshot (or the landing missed): lower the ceiling by the overshoot and retune
        ceiling = plan.ceiling_dbtp - (over + 0.2 if over else 0.0)
        if plan.acts is not None and not acts_landed:
            corrected = plan.acts.corrected(misses)
            plan = plan_level(programme_loudness(corrected.moved(meters)), target, ceiling, corrected)
            if plan.mode == "limited":
                plan, more, reading = tune_limited(plan, alist, timeout_s, target)
                tuning += more
            continue
        plan, more, reading = tune_limited(dataclasses.replace(plan, mode="limited", ceiling_dbtp=ceiling,
                                                               gain_db=plan.gain_db + target - got.integrated_lufs),
                                           alist, timeout_s, target)
        tuning += more
    meter = ("ffmpeg ebur128 (peak=true) on the final file" if verify else
             "the level pass's own meter, before AAC (the final file is not re-measured)")
    return {
        "integrated_lufs": got.integrated_lufs, "lra_lu": got.lra_lu, "true_peak_dbtp": got.true_peak_dbtp,
        "max_short_term_lufs": got.max_short_term_lufs, "meter": meter, "final_file_measured": verify,
        "target_lufs": target, "ceiling_dbtp": max_tp, **plan.to_json(),
        "before": {**raw.to_json(), "from": "per-piece ebur128 blocks, BS.1770 gating"},
        "loudnorm": report_ln, "joins": joins, "tuning_passes": tuning,
        **({"acts": acts_json(plan.acts, figures)} if plan.acts else {}),
    }


def acts_json(acts: ActLevels, figures: Sequence[tuple[float, float]] | None) -> list[dict]:
    """build.json's ``loudness.acts``: each act's frames, its own gain and where that takes over (what
    ``act_chain`` re-applies), its loudness before levelling, and as measured in the final file (None
    unmeasured): integrated, and the range of its 3 s short-term loudness."""
    out = []
    for k, a in enumerate(acts.acts):
        measured = figures[k] if figures else (None, None)
        out.append({"act": k + 1, "start_frame": a.start_frame, "end_frame": a.end_frame, "gain_db": a.gain_db,
                    "gain_from_s": a.from_s, "before_lufs": round(a.before.integrated_lufs, 2),
                    "integrated_lufs": measured[0], "short_term_range_lu": measured[1]})
    return out


def act_gain_at(loudness_report: dict, seconds: float) -> float:
    """The act gain build.json's ``loudness`` applies at programme second ``seconds`` (0 without acts)."""
    acts = loudness_report.get("acts") or []
    return next((float(a["gain_db"]) for a in reversed(acts) if float(a["gain_from_s"]) <= seconds), 0.0)


def acts_chain(loudness_report: dict) -> str | None:
    """The acts' gains of build.json's ``loudness`` as ``act_chain`` (None when the programme had one gain)."""
    acts = loudness_report.get("acts")
    return act_chain([(float(a["gain_from_s"]), float(a["gain_db"])) for a in acts]) if acts else None


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
