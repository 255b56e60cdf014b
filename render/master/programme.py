"""The programme: the rendered pieces joined into one MP4, its sound levelled and encoded, its chapters.

``join`` is the master stage's one entry. Handed the rendered pieces in programme order, it joins
their pictures by stream copy, levels their sound (``level``), encodes it to AAC once (``sound``: in
parts side by side, or, for the preview, re-encoding only what an edit changed) and muxes both with
the chapters (``chapters``) and the captions (an SRT, as a ``mov_text`` subtitle track), in one
pass. Piece sound is kept as PCM, so no join has an AAC priming gap; each piece's sound is rounded
to whole samples independently, so the join can drift from the picture by at most half a sample per
piece (0.5 ms over 50 pieces), and the programme's sound is trimmed to the exact sample count of its
picture.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from render.compose import store
from render.compose.pieces import Piece, pieces
from render.compose.store import COMPOSE_VERSION, RenderedPiece
from render.core import ffmpeg
from render.core.cache import Cache, atomic_path, key_of, write_text_atomic
from render.core.errors import FfmpegError
from render.core.house import HouseFormat
from render.core.timebase import samples_for, to_seconds
from render.edit.timeline import Shot, Timeline
from render.intake.records import Source
from render.master import chapters as chapters_mod
from render.master import level as level_mod
from render.master import sound

MOOV_TOO_SMALL = "reserved_moov_size is too small"
CAPTIONS_LANGUAGE = "eng"  # ISO 639-2, as MP4 and MOV tag a track


def subtitle_args(srt: Path, index: int) -> tuple[list[str], list[str]]:
    """ffmpeg's input arguments for the captions' SRT, and the output arguments that make that input
    (``index``) an English ``mov_text`` track, MP4's subtitle format (the episode's, the web file's)."""
    return (["-f", "srt", "-i", str(srt)],
            ["-map", f"{index}:0", "-c:s", "mov_text", "-metadata:s:s:0", f"language={CAPTIONS_LANGUAGE}",
             "-metadata:s:s:0", "handler_name=Captions"])


def moov_bytes(frames: int, samples: int, chapters: int = 0, cues: int = 0) -> int:
    """Space reserved before the media data for the MP4's index (moov), so the file is fast-start
    without ``+faststart``'s second pass, which rewrites the whole file (1.4 s of a 2 s preview join).

    The index costs ~11 bytes a sample here (22 minutes: 1.14 MB for 39 560 frames and 61 876 AAC
    packets); 24 a sample (frames, AAC packets, chapters, and two a caption: a caption and the gap
    before it are a sample each) plus 64 KiB leaves twice that. Should it not fit, the muxer says so
    (and exits 0 with a broken file), and the join is written again with ``+faststart``."""
    return 65536 + 24 * (frames + samples // 1024 + 2 + chapters + 2 * cues + 1)


def srt_cues(path: Path | None) -> int:
    """How many captions an SRT file holds (its blank-line-separated blocks)."""
    if path is None:
        return 0
    return sum(1 for block in path.read_text(encoding="utf-8-sig").split("\n\n") if block.strip())


@dataclass(frozen=True, slots=True)
class Joined:
    """What ``join`` did: whether it wrote the file, the join's key, and the levelled sound's figures."""

    rewritten: bool
    key: str
    loudness: dict | None = None  # build.json's "loudness" (levelled joins only)
    sound_encode: dict | None = None  # spliced joins: AAC frames encoded afresh and reused


class _Mux:
    """The join's muxing: the pieces' pictures by stream copy, with a given sound, the chapters and
    the title, into one MP4. Writes its concat lists and chapters into ``work``."""

    def __init__(self, rendered: Sequence[RenderedPiece], house: HouseFormat, title: str,
                 chapters: tuple[chapters_mod.Chapter, ...], work: Path,
                 progress: Callable[[float], None] | None, subtitles: Path | None = None):
        self.house, self.title, self.chapters, self.work, self.progress = house, title, chapters, work, progress
        self.subtitles, self.cues = subtitles, srt_cues(subtitles)
        self.sounds = [p.audio for p in rendered]
        self.sizes = [samples_for(p.frames, house.rate) for p in rendered]
        self.frames = sum(p.frames for p in rendered)
        self.total_samples = samples_for(self.frames, house.rate)
        self.seconds = float(to_seconds(self.frames, house.rate))
        self.vlist, self.alist, self.meta = work / "video.txt", work / "audio.txt", work / "chapters.txt"
        lines, start = [], 0
        for p in rendered:
            # exact cumulative durations: the concat demuxer would otherwise trust the MP4's
            # millisecond-rounded movie duration and jitter every join by up to half a millisecond
            a = round(to_seconds(start, house.rate) * 1_000_000)
            b = round(to_seconds(start + p.frames, house.rate) * 1_000_000)
            lines.append(f"{ffmpeg.concat_entry(p.video)}duration {(b - a) / 1e6:.6f}\n")
            start += p.frames
        self.vlist.write_text("".join(lines))
        self.alist.write_text("".join(ffmpeg.concat_entry(s) for s in self.sounds))
        self.meta.write_text(chapters_mod.ffmetadata(chapters, house.rate), encoding="utf-8")

    def argv(self, out: Path, audio_in: list[str], audio_out: list[str], fast_start: list[str],
             verbose: bool) -> list[str]:
        captions = subtitle_args(self.subtitles, 3) if self.subtitles else ([], [])
        return [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-y", "-v", "info" if verbose else "error",
                "-f", "concat", "-safe", "0", "-i", str(self.vlist), *audio_in,
                "-f", "ffmetadata", "-i", str(self.meta), *captions[0],
                "-map", "0:v", "-map", "1:a", "-map_metadata", "2", "-map_chapters", "2" if self.chapters else "-1",
                *captions[1], "-c:v", "copy", *audio_out, "-metadata", f"title={self.title}", *fast_start,
                "-movie_timescale", str(self.house.rate.numerator), "-f", "mp4", str(out)]

    def __call__(self, out: Path, audio_in: list[str], audio_out: list[str], verbose: bool = False) -> str:
        """Write ``out`` with the sound ``audio_in`` gives (as ``audio_out`` says); returns ffmpeg's stderr tail."""
        seconds, progress = self.seconds, self.progress

        def run(cmd: list[str]) -> str:
            return ffmpeg.run(cmd, timeout_s=300 + seconds,
                              progress=(lambda t: progress(min(1.0, t / seconds))) if progress else None).stderr_tail

        moov = moov_bytes(self.frames, self.total_samples, len(self.chapters), self.cues)
        try:
            said = run(self.argv(out, audio_in, audio_out, ["-moov_size", str(moov)], verbose))
        except FfmpegError as exc:  # the runner refuses the unfinished file ffmpeg exits 0 with
            if MOOV_TOO_SMALL not in exc.stderr_tail:
                raise
            said = MOOV_TOO_SMALL
        if MOOV_TOO_SMALL in said:  # the reserved room was short: write it again, the slow way
            said = run(self.argv(out, audio_in, audio_out, ["-movflags", "+faststart"], verbose))
        return said

    def with_aac(self, out: Path, aac: Path) -> None:
        """Write ``out`` with the programme's sound from the ADTS file ``aac``, timed as an encode is."""
        self(out, ["-f", "aac", "-i", str(aac)], sound.mux_args(self.total_samples, self.house))


def join(rendered: Sequence[RenderedPiece], house: HouseFormat, out: Path, *, title: str = "",
         chapters: tuple[chapters_mod.Chapter, ...] = (), level: bool = False, verify: bool = True,
         splice: bool = False, subtitles: Path | None = None, acts: Sequence[tuple[int, int]] = (),
         progress: Callable[[float], None] | None = None) -> Joined:
    """Join rendered pieces into one MP4: video by stream copy, sound encoded to AAC.

    ``level`` levels the programme's sound to the delivery loudness (``level.level_programme``) and
    (``verify``) re-measures the final file; ``chapters`` are written into the MP4, and ``subtitles`` (an
    SRT in programme time) as its English ``mov_text`` track. ``acts`` (the master's choice: the
    programme's acts as ``[start, end)`` frames, ``chapters.acts``) levels each act to the target with a
    gain of its own before the programme's level (``level.act_levels``). ``splice`` (the
    preview's choice) levels by one gain and re-encodes only the sound that changed since the last
    join into ``out`` (``sound.encode``); it ignores ``acts``. Does nothing (``rewritten`` False) when
    ``out`` already holds exactly this join: a sidecar written after the file records its key, size and
    loudness figures.
    """
    acts = tuple(acts) if level and not splice else ()
    key = key_of("join", COMPOSE_VERSION, house.key(), title, [p.key for p in rendered],
                 [c.to_json(house.rate) for c in chapters],
                 [level_mod.level_key(), verify, *([[list(a) for a in acts]] if acts else [])] if level else None,
                 hashlib.sha256(subtitles.read_bytes()).hexdigest() if subtitles else None)
    sidecar = out.with_name(f".{out.name}.key")
    kept_sound = out.with_name(f".{out.name}.aac")  # the spliced preview's programme AAC, for the next edit
    done = _sidecar(sidecar)
    if out.exists() and done.get("key") == key and done.get("size") == out.stat().st_size:
        return Joined(False, key, done.get("loudness"))
    meters = ([level_mod.piece_meter(p.audio, float(to_seconds(p.frames, house.rate))) for p in rendered]
              if level else [])
    previous = sound.Layout.from_json(done.get("sound")) if splice else None
    plan = (level_mod.preview_plan(level_mod.programme_loudness(meters), previous.gain_db if previous else None)
            if splice and level else None)
    # a limiter's sound cannot be spliced: that programme is levelled whole, as the master is
    layout = (sound.Layout(tuple((p.key, samples_for(p.frames, house.rate)) for p in rendered),
                           samples_for(sum(p.frames for p in rendered), house.rate),
                           plan.gain_db if plan and plan.mode == "linear" else 0.0)
              if splice and (plan is None or plan.mode != "limited") else None)
    loudness, sound_encode = None, None
    with tempfile.TemporaryDirectory(prefix="remixtv-join-") as tmpdir:
        mux = _Mux(rendered, house, title, chapters, Path(tmpdir), progress, subtitles)
        with atomic_path(out) as tmp:
            if layout is not None:
                sound_encode = _spliced(mux, tmp, layout, (previous, kept_sound) if previous else None)
                if level:
                    loudness = level_mod.planned_loudness(plan, meters)
            else:
                act_levels = (level_mod.act_levels(meters, [p.frames for p in rendered], acts, house.rate)
                              if acts else None)
                loudness = _encoded(mux, tmp, meters if level else None, verify, act_levels)
        if layout is not None:
            os.replace(mux.work / "programme.aac", kept_sound)
        else:
            kept_sound.unlink(missing_ok=True)
    write_text_atomic(sidecar, json.dumps({"key": key, "size": out.stat().st_size, "loudness": loudness,
                                           "sound": layout.to_json() if layout else None,
                                           "sound_encode": sound_encode}))
    return Joined(True, key, loudness, sound_encode)


def _sidecar(path: Path) -> dict:
    """What the last join into a file recorded beside it (empty when there is nothing readable)."""
    try:
        done = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return done if isinstance(done, dict) else {}


def _spliced(mux: _Mux, out: Path, layout: sound.Layout, previous: tuple[sound.Layout, Path] | None) -> dict:
    """Write ``out`` with the programme's sound at one gain, re-encoding only the AAC frames whose sound
    changed since ``previous`` (its layout and ADTS file); returns build.json's ``sound_encode``."""
    aac = mux.work / "programme.aac"
    result = sound.encode(mux.sounds, layout, mux.house, aac, mux.work, previous=previous,
                          timeout_s=300 + mux.seconds)
    mux.with_aac(out, aac)
    return result.to_json()


def _encoded(mux: _Mux, out: Path, meters: list[level_mod.PieceMeter] | None, verify: bool,
             acts: level_mod.ActLevels | None = None) -> dict | None:
    """Write ``out`` with the programme's sound encoded whole, levelled when given the pieces' ``meters``
    (each act first by its own gain, given ``acts``); returns build.json's ``loudness`` (None unlevelled)."""
    level = meters is not None

    def encode(audio_filter: str, per_sample: bool = False) -> list[str]:
        if per_sample:  # gains or linear loudnorm: the AAC is encoded a part a core and spliced
            aac = mux.work / "programme.aac"
            tails = sound.encode_whole(mux.sounds, mux.sizes, mux.total_samples, audio_filter, mux.house, aac,
                                       mux.work, timeout_s=300 + mux.seconds, verbose=level)
            mux.with_aac(out, aac)
            return tails
        # the level chain runs before the exact trim, so the sound still ends on the picture's last sample
        n = mux.total_samples
        return [mux(out, ["-f", "concat", "-safe", "0", "-i", str(mux.alist)],
                    ["-af", f"{audio_filter},apad=whole_len={n},atrim=end_sample={n}", *mux.house.audio_codec_args()],
                    verbose=level)]

    if level:
        return level_mod.level_programme(meters, mux.alist, encode, out, timeout_s=300 + 2 * mux.seconds,
                                         verify=verify, acts=acts)
    encode("anull", per_sample=True)
    return None


def render_timeline(timeline: Timeline, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                    cache: Cache, out: Path) -> Path:
    """Render every piece (serially) and join them: the engine's whole job without Prefect."""
    rendered = [store.render_piece(p, sources, house, fit_mode, cache) for p in pieces(timeline)]
    join(rendered, house, out, title=timeline.title, chapters=chapters_mod.chapters(timeline), level=True,
         acts=chapters_mod.acts(timeline))
    return out


def write_clip(source: Source, shot: Shot, house: HouseFormat, fit_mode: str, cache: Cache, out: Path) -> Path:
    """One record conformed to the house format as a standalone MP4, through the render path itself."""
    rendered = store.render_piece(Piece(source.record.record_id, 0, (shot,)), {source.record.record_id: source},
                                  house, fit_mode, cache)
    join([rendered], house, out, title=source.record.title)
    return out
