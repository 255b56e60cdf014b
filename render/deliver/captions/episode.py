"""Captions for an episode: which words each heard record says, laid out on the cut, and written beside
the episode with their QC. They need only the Timeline and the records, so they are made before the
join, which muxes captions.srt into the episode as its subtitle track in its one pass.

For each record the Timeline plays the sound of: its transcript (the spec's ``transcripts/`` folder,
else the call-out's ``transcript`` column) force-aligned; a transcript that does not fit its sound
(under half its words aligned) is a warning naming the record and the share, and recognition fills in.
With no transcript, a music record gets ``♪ title ♪`` (its lyrics when given), a record whose sound is
music likewise, silence nothing, and speech an unreviewed recognised draft. Nothing here stops a build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render.analysis.audio import AudioAnalysis
from render.callout.folder import CallOut
from render.core.cache import Cache, write_text_atomic
from render.core.errors import FfmpegError
from render.core.timebase import AUDIO_RATE_HZ, timecode, to_frames
from render.deliver.captions import files, layout, speech, transcripts
from render.edit.timeline import Timeline
from render.intake.records import Source

SCHEMA = "remixtv.captions/1"


@dataclass(frozen=True, slots=True)
class Words:
    """What the captions know of each heard record."""

    heard: dict[str, speech.Heard]
    music: dict[str, str]       # record -> title, for ``♪ title ♪``
    sung: frozenset[str]        # records whose words are lyrics
    origins: dict[str, str]     # record -> where its transcript came from
    warnings: tuple[str, ...]


def _one(source: Source, callout: CallOut, audio: AudioAnalysis | None, cache: Cache,
         folder: Path | None) -> tuple[str, speech.Heard | None, str, list[str]]:
    """One record's captions: how it is captioned (``heard``, ``sung``, ``music``, or ``""``: not at all),
    its words, where its transcript came from, and warnings."""
    rec = source.record
    rid = rec.record_id
    found, warn = transcripts.find(rec, callout, folder)
    warn = list(warn)
    is_music = rec.kind == "music" or (audio is not None and audio.content == "music")
    try:
        if found is not None:
            got = speech.heard(source, list(found.tokens), cache)
            if got.aligned_share < speech.MIN_ALIGNED_SHARE:
                instead = ("captioned at its file's own times" if got.how == "timed" else "captioned as music"
                           if is_music else "captioned from recognition (unreviewed)")
                warn.append(f"{rid}: its transcript ({found.origin}) does not fit its sound: "
                            f"{got.aligned_share:.0%} of its words aligned; {instead}")
            if got.how == "timed" or got.aligned_share >= speech.MIN_ALIGNED_SHARE:
                return ("sung" if is_music else "heard"), got, found.origin, warn
        if is_music:
            return "music", None, "", warn
        if audio is not None and audio.content == "silence":
            return "", None, "", warn
        return "heard", speech.heard(source, None, cache), "", warn
    except (FfmpegError, RuntimeError) as exc:
        warn.append(f"{rid}: its sound could not be read for captions ({getattr(exc, 'reason', exc)}); not captioned")
        return "", None, "", warn


def _first_job(source: Source, callout: CallOut, audio: AudioAnalysis | None,
               folder: Path | None) -> speech.Job | None:
    """What ``_one`` decodes first for a record (its transcript to align, or None tokens to recognise),
    or None when it decodes nothing (music, silence)."""
    found, _ = transcripts.find(source.record, callout, folder)
    if found is not None:
        return source, list(found.tokens)
    if source.record.kind == "music" or (audio is not None and audio.content in ("music", "silence")):
        return None
    return source, None


def find_words(timeline: Timeline, sources: Mapping[str, Source], callout: CallOut,
               audio: Mapping[str, AudioAnalysis], cache: Cache, folder: Path | None) -> Words:
    """The words (or music) of every record whose sound the Timeline plays; the records not decoded
    before are decoded first, side by side (``speech.prepare``)."""
    heard, music, sung, origins, warnings = {}, {}, set(), {}, []
    played = [sources[rid] for rid in dict.fromkeys(h.record_id for h in layout.sound_at(timeline))
              if rid in sources and sources[rid].media is not None and sources[rid].media.audio is not None]
    speech.prepare([j for s in played if (j := _first_job(s, callout, audio.get(s.record.record_id), folder))],
                   cache)
    for source in played:
        rid = source.record.record_id
        kind, got, origin, warn = _one(source, callout, audio.get(rid), cache, folder)
        warnings += warn
        if kind == "music":
            music[rid] = source.record.title
        elif got is not None:
            heard[rid] = got
            if kind == "sung":
                sung.add(rid)
            if origin:
                origins[rid] = origin
    return Words(heard, music, frozenset(sung), origins, tuple(warnings))


def speech_ranges(timeline: Timeline, audio: Mapping[str, AudioAnalysis], words: Words) -> list[tuple[int, int]]:
    """Programme frames where the analysis heard speech in a record played as speech (not a bed under)."""
    out = []
    for where in layout.sound_at(timeline):
        if where.under or where.record_id in words.music or where.record_id in words.sung:
            continue
        found = audio.get(where.record_id)
        for span in found.speech if found else ():
            a_s, b_s = span.seconds(AUDIO_RATE_HZ)
            a = where.start + to_frames(Fraction(a_s) - where.source_in_s, timeline.rate)
            b = where.start + to_frames(Fraction(b_s) - where.source_in_s, timeline.rate)
            if max(a, where.start) < min(b, where.end):
                out.append((max(a, where.start), min(b, where.end)))
    return sorted(out)


def deliver(timeline: Timeline, sources: Mapping[str, Source], callout: CallOut, audio: Mapping[str, AudioAnalysis],
            folder: Path, cache: Cache, transcripts_folder: Path | None = None,
            start_timecode: str = files.PROGRAMME_START) -> dict:
    """Write captions.scc, captions.srt, captions.vtt and captions.json into ``folder``. Returns build.json's
    ``captions`` summary (qc.json reports it too); its ``subtitles`` names the SRT for the episode's subtitle
    track (None: no captions). ``start_timecode`` is the SCC's timecode of the programme's first frame."""
    words = find_words(timeline, sources, callout, audio, cache, transcripts_folder)
    cues = layout.cues(timeline, words.heard, words.music, words.sung)
    written = files.write(cues, timeline.rate, folder, start_timecode)
    checks = files.qc(cues, timeline, speech_ranges(timeline, audio, words))
    seconds: dict[str, float] = {}
    for c in cues:
        if c.how != "music":
            seconds[c.how] = seconds.get(c.how, 0.0) + float(Fraction(c.speech_frames) / timeline.rate)
    unreviewed = sorted(r for r, h in words.heard.items() if h.how == "recognition")
    doc = {
        "schema": SCHEMA, "start_timecode": start_timecode, "files": [p.name for p in written.values()],
        "speech_seconds": {k: round(v, 2) for k, v in sorted(seconds.items())},
        "records": {rid: {"how": h.how, "aligned_share": h.aligned_share,
                          **({"transcript": words.origins[rid]} if rid in words.origins else {})}
                    for rid, h in sorted(words.heard.items())} | {rid: {"how": "music"} for rid in sorted(words.music)},
        "unreviewed": unreviewed, "captions": len(cues), "qc": checks, "warnings": list(words.warnings),
        "cues": [{"start": timecode(c.start_frame, timeline.rate), "start_frame": c.start_frame,
                  "end_frame": c.end_frame, "lines": list(c.lines), "top": c.top, "how": c.how, "record": c.record_id}
                 for c in cues],
    }
    write_text_atomic(folder / "captions.json", json.dumps(doc, ensure_ascii=False, indent=2))
    return {"files": doc["files"] + ["captions.json"], "start_timecode": start_timecode,
            "speech_seconds": doc["speech_seconds"], "unreviewed": unreviewed, "captions": len(cues),
            "subtitles": written["srt"].name if cues else None,
            "qc": {c["check"]: c["verdict"] for c in checks}, "warnings": doc["warnings"]}


def written(folder: Path, summary: Mapping) -> files.Written | None:
    """The caption files ``deliver`` wrote into ``folder`` (``summary``: what it returned), for the
    deliverables to carry; None when there is nothing to caption."""
    if not summary.get("captions"):
        return None
    return files.Written(folder / "captions.scc", folder / "captions.srt", folder / "captions.vtt",
                         summary["start_timecode"], summary["captions"])
