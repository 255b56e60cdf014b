"""The files an export's clips play, written into ``<out>/media/`` through the render path itself.

``conformed`` (the default): each record the cut uses is written whole at the house format by
``master.programme.write_clip`` (the render's own decode, conform and pre-levelling gain), so frame N of the
clip is source time N / rate, the very frame the render shows there. ``original``: clips point at the
uploads themselves, each with its own rate and length as probed. Either way the pictures that exist
only in our render are written too: stills, cards, texts and the credits roll (one render per shot:
their moves and fades are timed to the shot), lower thirds (PNG in MOV with alpha, to lie over the
shots), and every bed as mixed (ducked) and raw.

What ``original`` cannot promise, and why ``conformed`` is the default: a variable-frame-rate upload
(phones) has no frame N at N / rate, so the NLE places its frames by their timestamps and may show a
neighbouring frame at a cut; a rotated upload is stored sideways with a display matrix the NLE must
honour (its ``rotation_cw`` is in the reference's metadata); letterboxing, legal range, the blur fill
and the pre-levelling gain (in each clip's metadata) are the editor's to redo.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from render.callout.folder import CallOut
from render.compose.pieces import Piece
from render.compose.store import render_piece
from render.core import ffmpeg, text
from render.core.cache import Cache, atomic_path, key_of
from render.core.house import HouseFormat
from render.core.timebase import to_frames, to_seconds
from render.edit.timeline import CUT, Shot, Timeline
from render.intake.records import Source, resolve_file
from render.master.programme import join, write_clip

from .timeline import GRAPHIC_KINDS, RECORD_KINDS, Media, MediaFile, file_url

MEDIA_MODES = ("conformed", "original")
LOWER_THIRD_VERSION = 1


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip"


def _record_shots(timeline: Timeline) -> dict[str, list[Shot]]:
    out: dict[str, list[Shot]] = {}
    for seg in timeline.segments:
        for shot in seg.shots:
            if shot.kind in RECORD_KINDS and shot.record_id:
                out.setdefault(shot.record_id, []).append(shot)
    return out


def _conformed_record(source: Source, shots: list[Shot], house: HouseFormat, fit_mode: str, cache: Cache,
                      folder: Path) -> MediaFile:
    """A record whole, from its first frame, at the house format: the frames every shot of it uses,
    with the handles its crossfades borrow: past the source's end its last frame holds, and a pre-roll from
    before its start (``lead`` frames) holds its first, as in the render."""
    rate = house.rate
    own = int(source.duration_s * rate) if source.duration_s else 0
    reach = max(to_frames(s.source_in_s, rate) + s.frames + s.enter.after_frames for s in shots)
    lead = max([0] + [s.enter.before_frames - to_frames(s.source_in_s, rate) for s in shots
                      if s.enter.kind == "crossfade"])
    first = shots[0]
    whole = dataclasses.replace(first, frames=lead + max(own, reach), source_in_s=-to_seconds(lead, rate),
                                label_frames=0, enter=CUT,
                                **({"text": "", "byline": ""} if first.kind == "video" else {}))
    out = folder / f"{_safe(source.record.record_id)}.mp4"
    write_clip(source, whole, house, fit_mode, cache, out)
    return MediaFile(file_url(out), whole.frames, rate, lead=lead, metadata=(("lead_frames", lead),))


def _original_record(source: Source, callout: CallOut, house: HouseFormat) -> MediaFile:
    """The upload itself, at its own (average) rate; audio-only uploads are counted in house frames."""
    media = source.media
    video = media.video if media and media.video and not media.is_image else None
    rate = video.fps if video and video.fps else house.rate
    frames = to_frames(source.duration_s or 0, rate)
    meta = {"fps": str(rate), "rotation_cw": video.rotation_cw if video else 0,
            "note": "the upload as submitted: not conformed, levelled or rotated"}
    return MediaFile(file_url(resolve_file(callout, source.record)), frames, rate, metadata=tuple(meta.items()))


def _render_shot(shot: Shot, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str, cache: Cache,
                 out: Path, bed=None) -> MediaFile:
    """One shot (and a bed under it) through the render path, as a standalone MP4 at the house format."""
    rendered = render_piece(Piece(out.stem, 0, (shot,), bed), sources, house, fit_mode, cache)
    join([rendered], house, out, title=out.stem)
    return MediaFile(file_url(out), shot.frames, house.rate)


def _lower_third(shot: Shot, house: HouseFormat, cache: Cache, out: Path) -> MediaFile:
    """The lower third alone, typeset as the render does it, over transparency: PNG in MOV (RGBA; lossless,
    and a fifth of ProRes 4444's encode for a picture that is mostly empty). Cached by what it shows."""
    rate, frames = house.rate, shot.label_frames
    doc = text.lower_third(shot.text, shot.byline, to_seconds(frames, rate))
    kept = cache.path("lower-thirds", key_of("lower-third", LOWER_THIRD_VERSION, house.key(), doc, frames) + ".mov")
    if not kept.exists():
        with tempfile.TemporaryDirectory(prefix="remixtv-lt-") as tmpdir, atomic_path(kept) as tmp:
            ass = Path(tmpdir) / "lower-third.ass"
            ass.write_text(doc, encoding="utf-8")
            graph = (f"color=c=black@0.0:s={house.width}x{house.height}:r={rate},format=rgba,"
                     f"subtitles=f={text.filter_path(ass)}:fontsdir={text.filter_path(text.FONTS_DIR)}:alpha=1,"
                     f"trim=end_frame={frames}")
            ffmpeg.run([ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", graph,
                        "-c:v", "png", "-pix_fmt", "rgba", "-frames:v", str(frames),
                        "-video_track_timescale", str(rate.numerator), "-f", "mov", str(tmp)],
                       timeout_s=120 + float(to_seconds(frames, rate)) * 4)
    _copy(kept, out)
    return MediaFile(file_url(out), frames, rate)


def _copy(src: Path, out: Path) -> None:
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)


def _bed_files(seg, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str, cache: Cache,
               folder: Path) -> tuple[MediaFile, MediaFile]:
    """A segment's bed as the render mixed it (ducked under speech) and raw, each a WAV of the segment."""
    files = []
    for bed, what in ((seg.bed, "mixed"), (dataclasses.replace(seg.bed, duck=()), "raw")):
        rendered = render_piece(Piece(f"{seg.id}-bed", 0, (Shot("black", seg.frames),), bed),
                                        sources, house, fit_mode, cache)
        out = folder / f"{_safe(seg.id)}-bed-{_safe(seg.bed.record_id)}-{what}.wav"
        _copy(rendered.audio, out)
        files.append(MediaFile(file_url(out), seg.frames, house.rate))
    return files[0], files[1]


def write_media(timeline: Timeline, sources: Mapping[str, Source], callout: CallOut, house: HouseFormat,
                fit_mode: str, cache: Cache, folder: Path, mode: str = "conformed") -> Media:
    """Write every file the export needs into ``folder`` (``media/``) and say which clip plays which."""
    folder.mkdir(parents=True, exist_ok=True)
    records = {}
    for rid, shots in _record_shots(timeline).items():
        if rid not in sources:
            continue
        records[rid] = (_conformed_record(sources[rid], shots, house, fit_mode, cache, folder) if mode == "conformed"
                        else _original_record(sources[rid], callout, house))
    graphics, lower_thirds, beds = {}, {}, {}
    for si, seg in enumerate(timeline.segments):
        for hi, shot in enumerate(seg.shots):
            stem = f"{_safe(seg.id)}-{hi + 1:02d}"
            if shot.kind in GRAPHIC_KINDS:
                alone = dataclasses.replace(shot, enter=CUT, label_frames=0)  # its lower third is on V2
                graphics[si, hi] = _render_shot(alone, sources, house, fit_mode, cache,
                                                folder / f"{stem}-{shot.kind}.mp4")
            if shot.label_frames and shot.kind in ("video", "image"):
                lower_thirds[si, hi] = _lower_third(shot, house, cache, folder / f"{stem}-lower-third.mov")
        if seg.bed is not None and seg.bed.record_id in sources:
            beds[seg.id] = _bed_files(seg, sources, house, fit_mode, cache, folder)
    return Media(records, graphics, lower_thirds, beds, gain_applied=mode == "conformed")
