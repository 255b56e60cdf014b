"""Every analysis of one record, as the pipeline runs them: what was found, or why the record cannot be used."""

from __future__ import annotations

import os
from dataclasses import dataclass

from render.analysis import audio as audio_mod
from render.analysis import loudness
from render.analysis import pictures as pictures_mod
from render.core.cache import Cache
from render.core.errors import FfmpegError
from render.intake.records import Quarantined, Source


@dataclass(frozen=True, slots=True)
class RecordAnalysis:
    """What analysis found in one record, or why the record cannot be used after all."""

    record_id: str
    loudness: loudness.Loudness | None = None
    audio: audio_mod.AudioAnalysis | None = None
    pictures: pictures_mod.PictureAnalysis | None = None
    quarantined: Quarantined | None = None
    warnings: tuple[str, ...] = ()


def analyze_record(source: Source, cache: Cache, full: bool = True) -> RecordAnalysis:
    """Sound and picture analysis of one record, cached by content (``full=False``: loudness only,
    all intake needs to level a clip). Media that cannot be decoded quarantines the record (it could
    not be rendered either); an analysis that fails on decodable media leaves the record usable
    without it, with a warning."""
    # numba (under librosa) compiles on first use; caching that beside our own cache makes it once per machine
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache.root / "numba"))
    rid, found, warnings = source.record.record_id, {}, []
    seconds = float(source.media.duration_s or 1) if source.media else 1.0
    steps = (("audio", audio_mod.analyze_audio), ("pictures", pictures_mod.analyze_pictures)) if full else \
        (("loudness", loudness.measure_source),)
    for name, analyze in steps:
        try:
            found[name] = analyze(source, cache, timeout_s=180 + 8 * seconds)
        except FfmpegError as exc:
            what = "pictures" if name == "pictures" else "sound"
            return RecordAnalysis(rid, quarantined=Quarantined(source.record, f"{what} could not be decoded "
                                                                               f"({exc.reason})", str(exc)))
        except (ValueError, RuntimeError, MemoryError) as exc:
            warnings.append(f"{rid}: {name} analysis failed ({type(exc).__name__}: {exc}); used without it")
    audio = found.get("audio")
    return RecordAnalysis(rid, audio.loudness if audio else found.get("loudness"), audio, found.get("pictures"),
                          warnings=tuple(warnings))
