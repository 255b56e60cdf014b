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
import hashlib
import json
import os
import tempfile
import wave
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from . import __version__, ffmpeg, master, normalize, programme_sound, text
from .cache import Cache, atomic_dir, atomic_path, key_of, write_text_atomic
from .errors import FfmpegError
from .house import BACKGROUND, HouseFormat
from .intake import Source
from .timebase import samples_for, sec, split_samples, to_seconds
from .timeline import Bed, Shot, Timeline

COMPOSE_VERSION = 4  # 3: waveforms of levelled sound; done.json fingerprints; 4: WebM alpha decoded
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
    bed: Bed | None = None  # the segment's bed, from where this piece starts in it
    bed_edges: tuple[bool, bool] = (True, True)  # does the bed start / end in this piece (fade there only)

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)

    @property
    def record_ids(self) -> tuple[str, ...]:
        ids = [s.record_id for s in self.shots if s.record_id]
        return tuple(dict.fromkeys(ids + ([self.bed.record_id] if self.bed else [])))


def pieces(timeline: Timeline, max_seconds: int = PIECE_SECONDS) -> list[Piece]:
    """Cut every segment into render pieces, in timeline order."""
    limit = round(max_seconds * timeline.rate)
    out = []
    for seg in timeline.segments:
        groups: list[list[Shot]] = [[]]
        for shot in seg.shots:
            if groups[-1] and sum(s.frames for s in groups[-1]) + shot.frames > limit:
                groups.append([])
            groups[-1].append(shot)
        groups = [g for g in groups if g]
        at = 0
        for i, group in enumerate(groups):
            n = sum(s.frames for s in group)
            bed = None
            if seg.bed is not None:  # the bed from where this piece starts, its duck ranges on the piece's clock
                duck = tuple((max(a, at) - at, min(b, at + n) - at) for a, b in seg.bed.duck if a < at + n and at < b)
                bed = dataclasses.replace(seg.bed, source_in_s=seg.bed.source_in_s + to_seconds(at, timeline.rate),
                                          duck=duck)
            out.append(Piece(seg.id, i, tuple(group), bed, (i == 0, i == len(groups) - 1)))
            at += n
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
    bed = [dataclasses.asdict(piece.bed), piece.bed_edges] if piece.bed else None
    return key_of("piece", COMPOSE_VERSION, normalize.CONFORM_VERSION, house.key(), fit_mode, shots, hashes,
                  *([bed] if bed else []))


def _colour(out: str, colour: str, house: HouseFormat, frames: int) -> str:
    return (f"color=c={colour}:s={house.width}x{house.height}:r={house.rate},setsar=1,format=yuv420p,"
            f"trim=end_frame={frames}[{out}]")


def _typeset(label_in: str, out: str, ass: Path, frames: int) -> str:
    return (f"[{label_in}]subtitles=f={text.filter_path(ass)}:fontsdir={text.filter_path(text.FONTS_DIR)},"
            f"format=yuv420p,trim=end_frame={frames},setpts=PTS-STARTPTS[{out}]")


def build_command(shots: tuple[Shot, ...], sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                  workdir: Path, video_out: Path | None, audio_out: Path | None, bed: Bed | None = None,
                  bed_edges: tuple[bool, bool] = (True, True)) -> list[str]:
    """The ffmpeg argv that renders ``shots`` (over ``bed``'s sound, if any); writes the ASS files it needs
    into ``workdir``."""
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
            inputs += opts + normalize.decoder_args(media) + ffmpeg.untrusted_input(src.link, src.demuxer)
            idx = n_inputs
            n_inputs += 1
        # a lower third is typeset over the conformed picture, so it sits inside title-safe whatever the source
        pic = f"{tag}pic" if shot.label_frames and shot.kind in ("video", "image") else v
        if shot.kind == "video":
            graph += normalize.video_chain(f"{idx}:{media.video.index}", pic, media, house, shot.frames, fit_mode, tag)
            graph.append(normalize.audio_chain(f"{idx}:{media.audio.index}", a, n_samples, shot.gain_db)
                         if media.audio else normalize.silence(a, n_samples))
        elif shot.kind == "image":
            graph += normalize.still_chain(f"{idx}:{media.video.index}", pic, media, house, shot.frames, fit_mode, tag)
            graph.append(normalize.silence(a, n_samples))
        elif shot.kind == "audio":
            ass = workdir / f"{tag}.ass"
            ass.write_text(text.audio_label(shot.text, shot.byline, seconds), encoding="utf-8")
            wave_h = house.height // 3
            graph += [
                f"[{idx}:{media.audio.index}]asplit=2[{tag}a][{tag}w]",
                normalize.audio_chain(f"{tag}a", a, n_samples, shot.gain_db),
                # the waveform draws the levelled sound: drawn raw, a loud record fills the band with
                # a shape that changes every frame, which QC's flash meter rightly flags
                (f"[{tag}w]aresample=48000,aformat=channel_layouts=stereo,volume={shot.gain_db:.2f}dB,"
                 f"showwaves=s={house.width}x{wave_h}:mode=cline:rate={house.rate}:colors={WAVE_COLOUR}:"
                 f"scale=sqrt:split_channels=0,format=yuva420p[{tag}wv]"),
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
        if pic != v:
            ass = workdir / f"{tag}lt.ass"
            ass.write_text(text.lower_third(shot.text, shot.byline, to_seconds(shot.label_frames, house.rate)),
                           encoding="utf-8")
            graph.append(_typeset(pic, v, ass, shot.frames))
        vlabels.append(f"[{v}]")
        alabels.append(f"[{a}]")
    if bed is not None:
        # "replace": the bed replaces the shots' own sound (their chains end in null sinks); "under":
        # it is mixed under them, ducked over speech. It fades only where the segment starts or ends,
        # so the music runs on across piece boundaries without a dip
        src = sources[bed.record_id]
        total = sum(samples)
        inputs += ["-ss", sec(bed.source_in_s), "-t", sec(to_seconds(sum(s.frames for s in shots), house.rate) + 1),
                   *ffmpeg.untrusted_input(src.link, src.demuxer)]
        graph.append(normalize.audio_chain(f"{n_inputs}:{src.media.audio.index}",
                                           "bed" if bed.mix == "replace" else "bedu", total, bed.gain_db,
                                           fades=bed_edges, after_gain=_ducking(bed, house.rate)))
        if bed.mix == "replace":
            graph += [f"{label}anullsink" for label in alabels]
        else:
            graph.append(f"{''.join(alabels)}concat=n={len(shots)}:v=0:a=1,asetpts=N/SR/TB[own]")
            # normalize=0: amix would otherwise halve both inputs; the bed is already set under the programme
            graph.append(f"[own][bedu]amix=inputs=2:duration=first:normalize=0,atrim=end_sample={total}[bed]")
        alabels = []
    # picture and sound are joined separately: a joint concat pads sound to each shot's last
    # frame duration (a GIF's last frame can claim 100 ms+), while frame and sample counts are exact
    n = len(shots)
    # fps after the exact restamp changes no frame; it sets the stream's declared rate, which a
    # looped still (the loop filter) would otherwise leave unset and the muxer would call 25 fps
    graph.append(f"{''.join(vlabels)}concat=n={n}:v=1:a=0,setpts=N/({house.rate})/TB,fps={house.rate}[vout]")
    if bed is None:
        graph.append(f"{''.join(alabels)}concat=n={n}:v=0:a=1,asetpts=N/SR/TB[aout]")
    else:
        graph.append("[bed]asetpts=N/SR/TB[aout]")
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


def _ducking(bed: Bed, rate: Fraction, ramp_s: float = 0.25) -> str:
    """A ``volume`` filter that lowers the bed by ``duck_db`` over its duck ranges, with short ramps
    (evaluated per audio frame, ~21 ms: smooth enough for a ramp of a quarter second)."""
    if bed.mix != "under" or not bed.duck:
        return ""
    depth = 1 - 10 ** (bed.duck_db / 20)
    # in each range: 1 inside, ramping to 0 over ramp_s outside it; the bed's gain is 1 - depth*max(...)
    terms = [f"clip(min((t-{float(a / rate) - ramp_s:.4f})/{ramp_s},({float(b / rate) + ramp_s:.4f}-t)/{ramp_s}),0,1)"
             for a, b in bed.duck]
    inside = terms[0]
    for term in terms[1:]:
        inside = f"max({inside},{term})"
    return f"volume='1-{depth:.4f}*{inside}':eval=frame,"


def render_piece(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                 cache: Cache, progress: Callable[[float], None] | None = None) -> RenderedPiece:
    """Render one piece into the cache (or find it there); returns where its files are."""
    key = piece_key(piece, sources, house, fit_mode)
    folder = cache.root / "pieces" / house.name / key[:2] / key
    video, audio = folder / "video.mp4", folder / "audio.wav"
    if _intact(folder):
        return RenderedPiece(piece.segment_id, key, video, audio, piece.frames, cached=True)
    with atomic_dir(folder) as tmp:
        argv = build_command(piece.shots, sources, house, fit_mode, tmp, tmp / "video.mp4", tmp / "audio.wav",
                             piece.bed, piece.bed_edges)
        seconds = float(to_seconds(piece.frames, house.rate))
        ffmpeg.run(argv, timeout_s=120 + 30 * seconds,
                   progress=(lambda t: progress(min(1.0, t / seconds))) if progress else None)
        _check(argv, tmp / "video.mp4", tmp / "audio.wav", piece.frames, samples_for(piece.frames, house.rate))
        (tmp / "done.json").write_text(json.dumps({"segment": piece.segment_id, "piece": piece.index,
                                                   "frames": piece.frames, "engine": __version__,
                                                   "files": {n: fingerprint(tmp / n) for n in PIECE_FILES}}))
    return RenderedPiece(piece.segment_id, key, video, audio, piece.frames, cached=False)


PIECE_FILES = ("video.mp4", "audio.wav")
_SAMPLE_BLOCK = 64 * 1024
_SAMPLE_BLOCKS = 16


def fingerprint(path: Path) -> dict:
    """A file's size and a checksum of sampled blocks (head, tail and 16 spread between).

    Reading ~1 MiB per file keeps a no-change rebuild cheap while catching truncation (the size),
    a rewritten header or tail, and most damage in between; a full hash of every piece would cost
    a read of the whole programme on every build.
    """
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        offsets = {0, max(0, size - _SAMPLE_BLOCK)}
        offsets |= {size * i // (_SAMPLE_BLOCKS + 1) for i in range(1, _SAMPLE_BLOCKS + 1)}
        for off in sorted(offsets):
            f.seek(off)
            h.update(f.read(_SAMPLE_BLOCK))
    return {"size": size, "sample_sha256": h.hexdigest()}


def _intact(folder: Path) -> bool:
    """A cached piece is reused only when done.json vouches for files that still match it; anything
    else (an interrupted copy, a truncated or damaged file, an older layout) is rendered again."""
    try:
        files = json.loads((folder / "done.json").read_text())["files"]
        return all(fingerprint(folder / n) == files[n] for n in PIECE_FILES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _check(argv: list[str], video: Path, audio: Path, frames: int, samples: int) -> None:
    """Refuse a render whose frame or sample count is not exact (a join would drift)."""
    info = ffmpeg.ffprobe_output(video)
    got = int(info["streams"][0].get("nb_frames", -1))
    with wave.open(str(audio)) as w:
        got_samples = w.getnframes()
    if got != frames or got_samples != samples:
        raise FfmpegError(argv, 0, "", f"rendered {got} frames / {got_samples} samples, "
                                       f"expected {frames} / {samples}")


@dataclass(frozen=True, slots=True)
class Joined:
    """What ``join`` did: whether it wrote the file, the join's key, and the levelled sound's figures."""

    rewritten: bool
    key: str
    loudness: dict | None = None  # build.json's "loudness" (levelled joins only)
    sound_encode: dict | None = None  # spliced joins: AAC frames encoded afresh and reused


def join(segments: list[RenderedPiece], house: HouseFormat, out: Path, *, title: str = "",
         chapters: tuple[master.Chapter, ...] = (), level: bool = False, verify: bool = True, splice: bool = False,
         progress: Callable[[float], None] | None = None) -> Joined:
    """Join rendered pieces into one MP4: video by stream copy, sound encoded to AAC.

    ``level`` levels the programme's sound to the delivery loudness (``master.level_programme``) and
    (``verify``) re-measures the final file; ``chapters`` are written into the MP4. ``splice`` (the
    preview's choice) levels by one gain and re-encodes only the sound that changed since the last
    join into ``out`` (``programme_sound``). Does nothing (``rewritten`` False) when ``out`` already
    holds exactly this join: a sidecar written after the file records its key, size and loudness figures.
    """
    key = key_of("join", COMPOSE_VERSION, house.key(), title, [s.key for s in segments],
                 [c.to_json(house.rate) for c in chapters], [master.level_key(), verify] if level else None)
    sidecar = out.with_name(f".{out.name}.key")
    kept_sound = out.with_name(f".{out.name}.aac")  # the spliced preview's programme AAC, for the next edit
    done: dict = {}
    try:
        done = json.loads(sidecar.read_text())
        if out.exists() and done["key"] == key and done["size"] == out.stat().st_size:
            return Joined(False, key, done.get("loudness"))
    except (OSError, ValueError, KeyError, TypeError):
        done = done if isinstance(done, dict) else {}
    frames = sum(s.frames for s in segments)
    total_samples = samples_for(frames, house.rate)
    seconds = float(to_seconds(frames, house.rate))
    loudness, layout, sound_encode = None, None, None
    meters = ([master.piece_meter(s.audio, float(to_seconds(s.frames, house.rate))) for s in segments]
              if level else [])
    if splice:
        previous = programme_sound.Layout.from_json(done.get("sound"))
        plan = (master.preview_plan(master.programme_loudness(meters), previous.gain_db if previous else None)
                if level else None)
        if plan is None or plan.mode != "limited":  # a limiter's sound cannot be spliced: level it all, below
            layout = programme_sound.Layout(tuple((s.key, samples_for(s.frames, house.rate)) for s in segments),
                                            total_samples, plan.gain_db if plan and plan.mode == "linear" else 0.0)
    with tempfile.TemporaryDirectory(prefix="remixtv-join-") as tmpdir:
        work = Path(tmpdir)
        vlist, alist, meta = work / "video.txt", work / "audio.txt", work / "chapters.txt"
        vlines, start = [], 0
        for s in segments:
            # exact cumulative durations: the concat demuxer would otherwise trust the MP4's
            # millisecond-rounded movie duration and jitter every join by up to half a millisecond
            a = round(to_seconds(start, house.rate) * 1_000_000)
            b = round(to_seconds(start + s.frames, house.rate) * 1_000_000)
            vlines.append(f"{ffmpeg.concat_entry(s.video)}duration {(b - a) / 1e6:.6f}\n")
            start += s.frames
        vlist.write_text("".join(vlines))
        alist.write_text("".join(ffmpeg.concat_entry(s.audio) for s in segments))
        meta.write_text(master.ffmetadata(chapters, house.rate), encoding="utf-8")

        def mux(tmp: Path, audio_in: list[str], audio_out: list[str], verbose: bool = False) -> str:
            argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-y", "-v", "info" if verbose else "error",
                    "-f", "concat", "-safe", "0", "-i", str(vlist), *audio_in,
                    "-f", "ffmetadata", "-i", str(meta),
                    "-map", "0:v", "-map", "1:a", "-map_metadata", "2", "-map_chapters", "2" if chapters else "-1",
                    "-c:v", "copy", *audio_out, "-metadata", f"title={title}",
                    "-movflags", "+faststart", "-movie_timescale", str(house.rate.numerator), "-f", "mp4", str(tmp)]
            return ffmpeg.run(argv, timeout_s=300 + seconds,
                              progress=(lambda t: progress(min(1.0, t / seconds))) if progress else None).stderr_tail

        with atomic_path(out) as tmp:
            if layout is not None:
                sound = work / "programme.aac"
                result = programme_sound.encode([s.audio for s in segments], layout, house, sound, work,
                                                previous=(previous, kept_sound) if previous else None,
                                                timeout_s=300 + seconds)
                mux(tmp, ["-f", "aac", "-i", str(sound)], programme_sound.mux_args(layout, house))
                sound_encode = result.to_json()
                if level:
                    loudness = master.planned_loudness(plan, meters)
            else:
                def encode(audio_filter: str) -> str:
                    # the level chain runs before the exact trim, so the sound still ends on the picture's last sample
                    return mux(tmp, ["-f", "concat", "-safe", "0", "-i", str(alist)],
                               ["-af", f"{audio_filter},apad=whole_len={total_samples},atrim=end_sample={total_samples}",
                                *house.audio_codec_args()], verbose=level)

                if level:
                    loudness = master.level_programme(meters, alist, encode, tmp, timeout_s=300 + 2 * seconds,
                                                      verify=verify)
                else:
                    encode("anull")
        if layout is not None:
            os.replace(sound, kept_sound)
        else:
            kept_sound.unlink(missing_ok=True)
    write_text_atomic(sidecar, json.dumps({"key": key, "size": out.stat().st_size, "loudness": loudness,
                                           "sound": layout.to_json() if layout else None,
                                           "sound_encode": sound_encode}))
    return Joined(True, key, loudness, sound_encode)


def render_timeline(timeline: Timeline, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                    cache: Cache, out: Path) -> Path:
    """Render every piece (serially) and join them: the engine's whole job without Prefect."""
    rendered = [render_piece(p, sources, house, fit_mode, cache) for p in pieces(timeline)]
    join(rendered, house, out, title=timeline.title, chapters=master.chapters(timeline), level=True)
    return out


def write_clip(source: Source, shot: Shot, house: HouseFormat, fit_mode: str, cache: Cache, out: Path) -> Path:
    """One record conformed to the house format as a standalone MP4, through the render path itself."""
    rendered = render_piece(Piece(source.record.record_id, 0, (shot,)), {source.record.record_id: source},
                            house, fit_mode, cache)
    join([rendered], house, out, title=source.record.title)
    return out
