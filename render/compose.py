"""Timeline -> per-segment ffmpeg graphs -> cached segment files -> episode by stream copy.

A segment is rendered by one ffmpeg process that decodes each shot from the original upload,
conforms it inline (``normalize``), joins the shots and encodes once at final quality. Its
picture goes to an H.264 MP4 and its sound to PCM WAV; both are cached under a key made of
everything that can change them (shots, source content hashes, house format, versions) and
nothing else: a segment's position in the episode is not in the key, so an edit elsewhere
never re-renders it.

The episode is joined by stream copy (video) and the sound encoded to AAC once, from the
concatenated PCM. Keeping segment sound as PCM avoids AAC priming gaps at every join; each
segment's sound is rounded to whole samples independently, so the join can drift from the
picture by at most half a sample per segment (0.5 ms over 50 segments), and the final
sound is trimmed to the exact sample count of the picture.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import wave
from fractions import Fraction
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import __version__, ffmpeg, normalize, text
from .cache import Cache, atomic_dir, atomic_path, key_of, write_text_atomic
from .errors import FfmpegError
from .house import BACKGROUND, HouseFormat
from .intake import Source
from .timebase import samples_for, sec, split_samples, to_seconds
from .timeline import Shot, Timeline

COMPOSE_VERSION = 2
WAVE_COLOUR = "0xE8C547"


PIECE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Piece:
    """The unit of rendering: consecutive shots of one segment, about a minute at most.

    Pieces are grouped greedily from the start of their segment, so changing a segment's
    last shot (as a fill does when the runtime arithmetic moves) re-renders only its last piece.
    """

    segment_id: str
    index: int
    shots: tuple[Shot, ...]

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)

    @property
    def record_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.record_id for s in self.shots if s.record_id))


def pieces(timeline: Timeline, max_seconds: int = PIECE_SECONDS) -> list[Piece]:
    """Cut every segment into render pieces, in timeline order."""
    limit = round(max_seconds * timeline.rate)
    out = []
    for seg in timeline.segments:
        group: list[Shot] = []
        for shot in seg.shots:
            if group and sum(s.frames for s in group) + shot.frames > limit:
                out.append(Piece(seg.id, len([p for p in out if p.segment_id == seg.id]), tuple(group)))
                group = []
            group.append(shot)
        if group:
            out.append(Piece(seg.id, len([p for p in out if p.segment_id == seg.id]), tuple(group)))
    return out


@dataclass(frozen=True, slots=True)
class RenderedPiece:
    """A piece on disk: exactly ``frames`` frames of video and the matching samples of sound."""

    segment_id: str
    key: str
    video: Path
    audio: Path
    frames: int
    cached: bool  # True when it came from the cache without rendering


def piece_key(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str) -> str:
    """The cache key of a piece: what it shows, from which bytes, in which format; not where it sits."""
    shots = [dataclasses.asdict(s) for s in piece.shots]
    hashes = {rid: sources[rid].content_hash for rid in piece.record_ids if rid in sources}
    return key_of("piece", COMPOSE_VERSION, normalize.CONFORM_VERSION, house.key(), fit_mode, shots, hashes)


def _colour(out: str, colour: str, house: HouseFormat, frames: int) -> str:
    return (f"color=c={colour}:s={house.width}x{house.height}:r={house.rate},setsar=1,format=yuv420p,"
            f"trim=end_frame={frames}[{out}]")


def _typeset(label_in: str, out: str, ass: Path, frames: int) -> str:
    return (f"[{label_in}]subtitles=f={text.filter_path(ass)}:fontsdir={text.filter_path(text.FONTS_DIR)},"
            f"format=yuv420p,trim=end_frame={frames},setpts=PTS-STARTPTS[{out}]")


def build_command(shots: tuple[Shot, ...], sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                  workdir: Path, video_out: Path | None, audio_out: Path | None) -> list[str]:
    """The ffmpeg argv that renders ``shots``; writes the ASS files it needs into ``workdir``."""
    inputs: list[str] = []
    graph: list[str] = []
    vlabels: list[str] = []
    alabels: list[str] = []
    samples = split_samples([s.frames for s in shots], house.rate)
    n_inputs = 0
    for i, (shot, n_samples) in enumerate(zip(shots, samples)):
        tag, v, a = f"s{i}", f"v{i}", f"a{i}"
        seconds = to_seconds(shot.frames, house.rate)
        src = sources.get(shot.record_id) if shot.record_id else None
        if shot.kind in ("video", "image", "audio"):
            assert src is not None and src.link is not None, f"no source for {shot.record_id}"
            media = src.media
            opts: list[str] = []
            if shot.kind != "image":
                # animated GIFs loop, as they do on the web; a blink of one (a single frame) just holds,
                # because looping it makes no progress in time and ffmpeg would never reach -t
                if (src.demuxer == "gif" and media.duration_s and media.duration_s >= Fraction(1, 2)
                        and seconds > media.duration_s - shot.source_in_s):
                    opts += ["-stream_loop", "-1"]
                elif shot.source_in_s > 0:
                    opts += ["-ss", sec(shot.source_in_s)]
                opts += ["-t", sec(seconds + 1)]
            inputs += opts + ffmpeg.untrusted_input(src.link, src.demuxer)
            idx = n_inputs
            n_inputs += 1
        if shot.kind == "video":
            graph += normalize.video_chain(f"{idx}:{media.video.index}", v, media, house, shot.frames, fit_mode, tag)
            graph.append(normalize.audio_chain(f"{idx}:{media.audio.index}", a, n_samples, shot.gain_db)
                         if media.audio else normalize.silence(a, n_samples))
        elif shot.kind == "image":
            graph += normalize.still_chain(f"{idx}:{media.video.index}", v, media, house, shot.frames, fit_mode, tag)
            graph.append(normalize.silence(a, n_samples))
        elif shot.kind == "audio":
            ass = workdir / f"{tag}.ass"
            ass.write_text(text.audio_label(shot.text, shot.byline, seconds), encoding="utf-8")
            wave_h = house.height // 3
            graph += [
                f"[{idx}:{media.audio.index}]asplit=2[{tag}a][{tag}w]",
                normalize.audio_chain(f"{tag}a", a, n_samples, shot.gain_db),
                f"[{tag}w]aresample=48000,aformat=channel_layouts=stereo,"
                f"showwaves=s={house.width}x{wave_h}:mode=cline:rate={house.rate}:colors={WAVE_COLOUR}:"
                f"scale=sqrt:split_channels=0,format=yuva420p[{tag}wv]",
                _colour(f"{tag}bg", BACKGROUND, house, shot.frames),
                f"[{tag}bg][{tag}wv]overlay=0:{(house.height - wave_h) // 2 + house.height // 8}:eof_action=pass[{tag}o]",
                _typeset(f"{tag}o", v, ass, shot.frames),
            ]
        elif shot.kind in ("card", "text", "credits"):
            ass = workdir / f"{tag}.ass"
            if shot.kind == "card":
                doc = text.card(shot.text, shot.byline, seconds)
            elif shot.kind == "text":
                doc = text.text_card(shot.text, shot.byline, src.record.title if src else "", seconds)
            else:
                doc = shot.text  # the credits roll arrives typeset (see credits.roll)
            ass.write_text(doc, encoding="utf-8")
            graph += [_colour(f"{tag}bg", BACKGROUND, house, shot.frames), _typeset(f"{tag}bg", v, ass, shot.frames),
                      normalize.silence(a, n_samples)]
        elif shot.kind == "black":
            graph += [_colour(v, "black", house, shot.frames), normalize.silence(a, n_samples)]
        else:
            raise ValueError(f"unknown shot kind {shot.kind!r}")
        vlabels.append(f"[{v}]")
        alabels.append(f"[{a}]")
    # picture and sound are joined separately: a joint concat pads sound to each shot's last
    # frame duration (a GIF's last frame can claim 100 ms+), while frame and sample counts are exact
    n = len(shots)
    # fps after the exact restamp changes no frame; it sets the stream's declared rate, which a
    # looped still (the loop filter) would otherwise leave unset and the muxer would call 25 fps
    graph.append(f"{''.join(vlabels)}concat=n={n}:v=1:a=0,setpts=N/({house.rate})/TB,fps={house.rate}[vout]")
    graph.append(f"{''.join(alabels)}concat=n={n}:v=0:a=1,asetpts=N/SR/TB[aout]")
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *inputs,
            "-filter_complex", ";\n".join(graph)]
    if video_out is not None:
        argv += ["-map", "[vout]", "-an", *house.video_codec_args(), "-fps_mode", "passthrough",
                 "-frames:v", str(sum(s.frames for s in shots)), str(video_out)]
    else:
        argv += ["-map", "[vout]", "-f", "null", "-"]
    if audio_out is not None:
        argv += ["-map", "[aout]", "-vn", "-c:a", "pcm_s16le", "-map_metadata", "-1", "-bitexact", str(audio_out)]
    return argv


def render_piece(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                 cache: Cache, progress: Callable[[float], None] | None = None) -> RenderedPiece:
    """Render one piece into the cache (or find it there); returns where its files are."""
    key = piece_key(piece, sources, house, fit_mode)
    folder = cache.root / "pieces" / house.name / key[:2] / key
    video, audio = folder / "video.mp4", folder / "audio.wav"
    if (folder / "done.json").exists() and video.exists() and audio.exists():
        return RenderedPiece(piece.segment_id, key, video, audio, piece.frames, cached=True)
    with atomic_dir(folder) as tmp:
        argv = build_command(piece.shots, sources, house, fit_mode, tmp, tmp / "video.mp4", tmp / "audio.wav")
        seconds = float(to_seconds(piece.frames, house.rate))
        ffmpeg.run(argv, timeout_s=120 + 30 * seconds,
                   progress=(lambda t: progress(min(1.0, t / seconds))) if progress else None)
        _check(argv, tmp / "video.mp4", tmp / "audio.wav", piece.frames, samples_for(piece.frames, house.rate))
        (tmp / "done.json").write_text(json.dumps({"segment": piece.segment_id, "piece": piece.index,
                                                   "frames": piece.frames, "engine": __version__}))
    return RenderedPiece(piece.segment_id, key, video, audio, piece.frames, cached=False)


def _check(argv: list[str], video: Path, audio: Path, frames: int, samples: int) -> None:
    """Refuse a render whose frame or sample count is not exact (a join would drift)."""
    info = ffmpeg.ffprobe_output(video)
    got = int(info["streams"][0].get("nb_frames", -1))
    with wave.open(str(audio)) as w:
        got_samples = w.getnframes()
    if got != frames or got_samples != samples:
        raise FfmpegError(argv, 0, "", f"rendered {got} frames / {got_samples} samples, "
                                       f"expected {frames} / {samples}")


def join(segments: list[RenderedPiece], house: HouseFormat, out: Path, *, title: str = "",
         progress: Callable[[float], None] | None = None) -> bool:
    """Join rendered pieces into one MP4: video by stream copy, sound encoded once to AAC.

    Returns False, doing nothing, when ``out`` already holds exactly this join (a sidecar key
    written after the file records what made it).
    """
    key = key_of("join", COMPOSE_VERSION, house.key(), title, [s.key for s in segments])
    sidecar = out.with_name(f".{out.name}.key")
    if out.exists() and sidecar.exists() and sidecar.read_text() == f"{key} {out.stat().st_size}":
        return False
    frames = sum(s.frames for s in segments)
    total_samples = samples_for(frames, house.rate)
    with tempfile.TemporaryDirectory(prefix="remixtv-join-") as tmpdir:
        vlist, alist = Path(tmpdir) / "video.txt", Path(tmpdir) / "audio.txt"
        vlines, alines, start = [], [], 0
        for s in segments:
            # exact cumulative durations: the concat demuxer would otherwise trust the MP4's
            # millisecond-rounded movie duration and jitter every join by up to half a millisecond
            a = round(to_seconds(start, house.rate) * 1_000_000)
            b = round(to_seconds(start + s.frames, house.rate) * 1_000_000)
            vlines.append(f"file '{_concat_path(s.video)}'\nduration {(b - a) / 1e6:.6f}\n")
            alines.append(f"file '{_concat_path(s.audio)}'\n")
            start += s.frames
        vlist.write_text("".join(vlines))
        alist.write_text("".join(alines))
        with atomic_path(out) as tmp:
            argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error",
                    "-f", "concat", "-safe", "0", "-i", str(vlist),
                    "-f", "concat", "-safe", "0", "-i", str(alist),
                    "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                    "-af", f"apad=whole_len={total_samples},atrim=end_sample={total_samples}",
                    *house.audio_codec_args(), "-metadata", f"title={title}",
                    "-movflags", "+faststart", "-movie_timescale", str(house.rate.numerator),
                    "-f", "mp4", str(tmp)]
            seconds = float(to_seconds(frames, house.rate))
            ffmpeg.run(argv, timeout_s=300 + seconds,
                       progress=(lambda t: progress(min(1.0, t / seconds))) if progress else None)
    write_text_atomic(sidecar, f"{key} {out.stat().st_size}")
    return True


def _concat_path(path: Path) -> str:
    return str(path.resolve()).replace("'", "'\\''")


def render_timeline(timeline: Timeline, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                    cache: Cache, out: Path) -> Path:
    """Render every piece (serially) and join them: the engine's whole job without Prefect."""
    rendered = [render_piece(p, sources, house, fit_mode, cache) for p in pieces(timeline)]
    join(rendered, house, out, title=timeline.title)
    return out


def write_clip(source: Source, shot: Shot, house: HouseFormat, fit_mode: str, cache: Cache, out: Path) -> Path:
    """One record conformed to the house format as a standalone MP4, through the render path itself."""
    rendered = render_piece(Piece(source.record.record_id, 0, (shot,)), {source.record.record_id: source},
                            house, fit_mode, cache)
    join([rendered], house, out, title=source.record.title)
    return out
