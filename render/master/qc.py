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

Cost: every measure that is local to a picture or sound is taken once per rendered piece, in its
render (``render.compose.measure``: the picture as the encoder was given it, the sound from the
piece's PCM), and kept in the piece's folder (keyed like the piece), so a one-segment edit measures
one piece. A piece cached without this version's measures is rendered again
(``render.compose.store.cached_piece``), so every piece is read the same way; any other file is
measured by decoding it (``measure_piece``; a test holds the two readings to the same ranges).
Ranges are merged across piece boundaries (a freeze is continuous across a boundary when the frames
either side match). Loudness and duration are programme-level and read from the final file's figures;
``qc.json`` is keyed like the join, so a no-change rebuild reuses it without decoding anything.

``qc.json`` also reports the captions (``captions``): seconds of speech captioned from transcripts and
from recognition, the caption count, the records whose captions are an unreviewed draft, and the
caption QC's verdicts, as the captions step summarised them (``render.deliver.captions.episode``; the
details are in captions.json). They are reported beside the checks and do not decide ``passed``: a
draft caption is for an editor to review, not a fault in the picture or the sound.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from render.analysis import loudness as loudness_mod
from render.compose.measure import FREEZE_DIFF, LEGAL_AREA, QC_VERSION, SILENCE_DBFS, PieceQC, measure_piece, runs
from render.compose.store import RenderedPiece, cached_piece_qc
from render.core import ffmpeg
from render.core.cache import key_of, write_text_atomic
from render.core.house import TARGET_LUFS, TOLERANCE_LU, TRUE_PEAK_DBTP, HouseFormat
from render.core.timebase import FrameRange, timecode, to_seconds
from render.edit.timeline import Timeline

MIN_SECONDS = 2                     # black, freeze and silence shorter than this are not reported
HOUSE_BACKGROUND_KINDS = ("black", "card", "text", "credits")   # near-black and still by design
STILL_KINDS = (*HOUSE_BACKGROUND_KINDS, "image")                # still by design (a photo's push-in is slow)
SOUNDING_KINDS = ("video", "audio")                             # shots that play a record's sound
CHECKS = ("duration", "loudness", "black", "freeze", "silence", "luma", "flash")


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


def _range_json(r: FrameRange, timeline: Timeline) -> dict:
    segs = [s.id for s in timeline.segments if s.start_frame < r.end and s.end_frame > r.start]
    return {"start": r.start, "end": r.end, "start_tc": timecode(r.start, timeline.rate),
            "end_tc": timecode(r.end, timeline.rate), "seconds": round(float(to_seconds(r.length, timeline.rate)), 3),
            "segments": segs}


def _ranged_check(flag: np.ndarray, act: np.ndarray, expected: np.ndarray, timeline: Timeline, what: str) -> dict:
    need = round(MIN_SECONDS * timeline.rate)
    outside = flag & ~act
    bad = [r for r in runs(outside & ~expected) if r.length >= need]
    ok = [r for r in runs(outside & expected) if r.length >= need]
    return {"passed": not bad, "limit": f"no {what} of {MIN_SECONDS} s or more outside act breaks",
            "ranges": [_range_json(r, timeline) for r in bad],
            "expected": [_range_json(r, timeline) for r in ok]}


def _frozen(still: np.ndarray, rate) -> np.ndarray:
    """Frames in a freeze: a repeated frame and its repeats, for at least MIN_SECONDS."""
    out = np.zeros(still.size, bool)
    need = round(MIN_SECONDS * rate)
    for r in runs(still):
        if r.length + 1 >= need:
            out[max(0, r.start - 1):r.end] = True
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
            for r in ranges:
                mask[at + r.start:at + r.end] = True
        if i and at < n and p.first_sig and measured[i - 1].last_sig:
            step = np.abs(np.array(p.first_sig) - np.array(measured[i - 1].last_sig)).mean()
            still[at] = bool(step < FREEZE_DIFF)
        flashes += [_range_json(FrameRange(f.start, f.end).shifted(at), timeline)
                    | {"kind": f.kind, "flashes_per_s": f.flashes_per_s, "area": f.area} for f in p.flashes]
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
                 "ranges": [_range_json(r, timeline) for r in runs(illegal)],
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


def captions_report(summary: Mapping) -> dict:
    """qc.json's ``captions`` from the captions step's summary: what was captioned, from where, and the
    caption QC's verdicts (``passed`` when every one passed)."""
    verdicts = dict(summary.get("qc") or {})
    return {"file": "captions.json", "captions": summary.get("captions", 0),
            "speech_seconds": dict(summary.get("speech_seconds") or {}),
            "unreviewed": list(summary.get("unreviewed") or ()), "checks": verdicts,
            "passed": all(v == "pass" for v in verdicts.values())}


def run(timeline: Timeline, pieces: Sequence[RenderedPiece], episode: Path, loudness: dict | None, house: HouseFormat,
        join_key: str, out: Path, sources: Mapping | None = None, captions: Mapping | None = None) -> dict:
    """QC the episode into ``out`` (qc.json), reusing its checks when the episode is exactly the one they
    checked. ``captions`` (the captions step's summary) is reported as it is (``captions_report``).

    ``pieces`` are the rendered pieces in timeline order.
    """
    key = key_of("qc", QC_VERSION, join_key, episode.stat().st_size)
    try:
        kept = json.loads(out.read_text())
    except (OSError, ValueError):
        kept = {}
    if kept.get("key") == key:
        doc = {k: v for k, v in kept.items() if k != "captions"}
    else:
        if loudness is None:
            got = loudness_mod.measure_file(episode)
            loudness = {"integrated_lufs": got.integrated_lufs, "true_peak_dbtp": got.true_peak_dbtp,
                        "lra_lu": got.lra_lu}
        measured = [piece_qc(p.video, p.audio, p.frames, house) for p in pieces]
        doc = {**check(timeline, measured, episode, loudness, sources), "key": key}
    if captions is not None:
        doc["captions"] = captions_report(captions)
    if doc != kept:  # the same words over the same episode rewrite nothing
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
