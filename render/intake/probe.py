"""ffprobe JSON -> frozen MediaInfo: what a submission really contains."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from render.core import ffmpeg
from render.core.errors import FfmpegError, MediaRejected

IMAGE_DEMUXERS = {"png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe"}
#: Decoders that keep a WebM's alpha channel (stored as side data the native decoders skip).
ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
#: Telecine shows as a repeated field in 2 of every 5 frames; true interlaced video repeats none.
#: Static shots hide repeats (both fields match), so film with still moments lands below 0.4.
TELECINE_REPEAT_SHARE = Fraction(1, 10)
TELECINE_SAMPLE_SECONDS = 10
_OVER_PIXELS = re.compile(r"Picture size (\d+)x(\d+) (?:exceeds specified max pixel count|is invalid)")
_REPEATED = re.compile(r"Repeated Fields: Neither:\s*(\d+)\s*Top:\s*(\d+)\s*Bottom:\s*(\d+)")


@dataclass(frozen=True, slots=True)
class VideoStream:
    index: int
    codec: str
    width: int
    height: int
    sar: Fraction
    rotation_cw: int  # degrees clockwise to turn the stored picture upright (0, 90, 180, 270)
    fps: Fraction | None
    pix_fmt: str
    field_order: str
    color_transfer: str
    frame_count: int | None
    alpha_tagged: bool = False  # WebM ``alpha_mode=1``: the alpha plane needs ``alpha_decoder``
    telecined: bool = False  # interlaced flags, but the fields pair up into film frames (3:2 pulldown)

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as a viewer sees them: SAR applied, rotation applied."""
        w = max(1, round(self.width * self.sar))
        return (self.height, w) if self.rotation_cw in (90, 270) else (w, self.height)

    @property
    def interlaced(self) -> bool:
        return self.field_order in ("tt", "bb", "tb", "bt")

    @property
    def hdr(self) -> bool:
        return self.color_transfer in ("smpte2084", "arib-std-b67")

    @property
    def has_alpha(self) -> bool:
        return (self.alpha_tagged or "a" in self.pix_fmt.replace("gray", "").split("p")[0]
                or self.pix_fmt in ("pal8",))

    @property
    def alpha_decoder(self) -> str:
        """The decoder to force on input so the alpha plane survives ("" when the default one does)."""
        return ALPHA_DECODERS.get(self.codec, "") if self.alpha_tagged else ""


@dataclass(frozen=True, slots=True)
class AudioStream:
    index: int
    codec: str
    sample_rate_hz: int
    channels: int
    layout: str


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What one file holds. ``duration_s`` is None for a still image."""

    demuxer: str
    duration_s: Fraction | None
    size_bytes: int
    video: VideoStream | None
    audio: AudioStream | None
    is_image: bool  # a still picture (single frame), not a moving one
    exif_orientation: int = 1

    @property
    def media_type(self) -> str:
        """``video`` (moving picture, maybe with sound), ``image``, or ``audio``."""
        if self.video is not None:
            return "image" if self.is_image else "video"
        return "audio"


def _fraction(text: str | None) -> Fraction | None:
    try:
        value = Fraction(text) if text else None
    except (ValueError, ZeroDivisionError):
        return None
    return value if value else None


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(-float(side["rotation"])) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(float(tag)) % 360 if tag else 0


def parse(data: dict) -> MediaInfo:
    """Build MediaInfo from ffprobe JSON (``-show_format -show_streams``, optionally frames)."""
    fmt = data.get("format") or {}
    demuxer = fmt.get("format_name", "")
    streams = data.get("streams") or []
    video = audio = None
    is_image = demuxer.split(",")[0] in IMAGE_DEMUXERS
    for s in streams:
        kind = s.get("codec_type")
        disposition = s.get("disposition") or {}
        if kind == "video" and video is None and not disposition.get("attached_pic"):
            if not s.get("width") or not s.get("height"):
                continue
            rate = _fraction(s.get("avg_frame_rate")) or _fraction(s.get("r_frame_rate"))
            if rate and rate > 240:  # timebase-like values (90000/1) mean "variable": ask r_frame_rate
                rate = _fraction(s.get("r_frame_rate"))
                rate = rate if rate and rate <= 240 else None
            nb = s.get("nb_frames")
            video = VideoStream(
                index=int(s["index"]), codec=s.get("codec_name", "?"),
                width=int(s["width"]), height=int(s["height"]),
                sar=_fraction(s.get("sample_aspect_ratio", "1:1").replace(":", "/")) or Fraction(1),
                rotation_cw=_rotation(s), fps=rate, pix_fmt=s.get("pix_fmt", ""),
                field_order=s.get("field_order", "progressive"), color_transfer=s.get("color_transfer", ""),
                frame_count=int(nb) if str(nb or "").isdigit() else None,
                alpha_tagged=str((s.get("tags") or {}).get("alpha_mode", (s.get("tags") or {}).get("ALPHA_MODE", "")))
                == "1" and s.get("codec_name") in ALPHA_DECODERS,
            )
        elif kind == "audio" and audio is None and int(s.get("channels") or 0) > 0:
            audio = AudioStream(
                index=int(s["index"]), codec=s.get("codec_name", "?"),
                sample_rate_hz=int(s.get("sample_rate") or 0), channels=int(s["channels"]),
                layout=s.get("channel_layout", ""),
            )
    duration = _duration(fmt, streams)
    if video is not None and demuxer in ("gif", "gif_pipe"):
        is_image = (video.frame_count or 0) <= 1 and duration in (None, Fraction(0))
    exif = 1
    for frame in data.get("frames") or []:
        value = (frame.get("tags") or {}).get("Orientation")
        if value and value.strip().isdigit():
            exif = int(value.strip())
            break
    return MediaInfo(
        demuxer=demuxer,
        duration_s=None if is_image else duration,
        size_bytes=int(fmt.get("size") or 0),
        video=video, audio=audio, is_image=is_image, exif_orientation=exif,
    )


def _duration(fmt: dict, streams: list[dict]) -> Fraction | None:
    """The playable length: stream durations win over a container's (which can be bogus)."""
    per_stream = [d for s in streams if s.get("codec_type") in ("video", "audio")
                  and not (s.get("disposition") or {}).get("attached_pic")
                  if (d := _fraction(s.get("duration"))) is not None]
    container = _fraction(fmt.get("duration"))
    if per_stream:
        longest = max(per_stream)
        if container is None or container > longest * 2 + 1:
            return longest
        return max(container, longest) if container <= longest + 1 else longest
    return container


def measure_duration(link: Path, demuxer: str, timeout_s: float = 600) -> tuple[Fraction | None, str]:
    """Decode the whole file to learn its real length (for containers that do not say, or lie).

    Returns the length (None if nothing decodes) and what the decoder complained about.
    """
    argv = [ffmpeg.FFMPEG, "-v", "error", "-nostdin", *ffmpeg.untrusted_input(link, demuxer), "-f", "null", "-"]
    last = [0.0]
    try:
        result = ffmpeg.run(argv, timeout_s=timeout_s, progress=lambda s: last.__setitem__(0, max(last[0], s)))
    except FfmpegError as exc:
        return None, exc.stderr_tail
    seconds = Fraction(last[0]).limit_denominator(1_000_000) if last[0] > 0 else None
    return seconds, result.stderr_tail.strip()


def _decodes(link: Path, info: MediaInfo, at_s: float) -> bool:
    """True when a second of the file from ``at_s`` decodes to at least one frame, with the decoder
    the render will use (``libvpx`` for WebM alpha)."""
    stream = f"0:{info.video.index}" if info.video else f"0:{info.audio.index}"
    decoder = ["-c:v", info.video.alpha_decoder] if info.video and info.video.alpha_decoder else []
    argv = [ffmpeg.FFMPEG, "-v", "error", "-nostdin", *(["-ss", f"{at_s:.3f}"] if at_s > 0 else []), *decoder,
            *ffmpeg.untrusted_input(link, info.demuxer.split(",")[0]), "-map", stream, "-t", "1", "-f", "framecrc", "-"]
    try:
        out = ffmpeg.run(argv, timeout_s=60).stdout
    except FfmpegError:
        return False
    return any(line and not line.startswith(b"#") for line in out.splitlines())


def _ends_early(link: Path, info: MediaInfo) -> bool:
    """True when nothing decodes in the last second of the stated length."""
    return not _decodes(link, info, float(info.duration_s) - 1.5)


DEFAULT_MAX_PIXELS = 120_000_000
SHORT_S = 2  # media this short (stated) is decoded whole at intake
#: the longest picture (or video) side over the shortest that is shown: a wider picture pans across
#: the frame, and a 32:1 one already pans across 34,560 pixels at 1080p. Beyond that it is a strip no
#: frame can show, or a header whose sizes are damaged (1x65535 made a 35-million-pixel-wide pan)
MAX_ASPECT = 32


def _probe(link: Path, max_pixels: int, timeout_s: float = 60) -> dict:
    """ffprobe JSON of a submission (and its first frame), refusing to decode pictures over ``max_pixels``.

    The cap goes to the decoders, so a decompression bomb (a small file declaring a huge picture)
    is refused from its header without allocating the picture; ``MediaRejected`` says how big it is.
    """
    argv = [ffmpeg.FFPROBE, "-v", "error", "-max_pixels", str(max_pixels), "-print_format", "json",
            "-show_format", "-show_streams", "-show_frames", "-read_intervals", "%+#1",
            "-protocol_whitelist", ffmpeg.SUBMISSION_PROTOCOLS, "-format_whitelist", ",".join(ffmpeg.SUBMISSION_DEMUXERS),
            f"file:{link}"]
    try:
        result = ffmpeg.run(argv, timeout_s=timeout_s, memory_bytes=2048 << 20)
    except FfmpegError as exc:
        _refuse_oversized(exc.stderr_tail, max_pixels, str(exc))
        raise
    _refuse_oversized(result.stderr_tail, max_pixels, result.stderr_tail)
    try:
        return json.loads(result.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise FfmpegError(argv, 0, result.stderr_tail, f"unreadable ffprobe output: {exc}") from None


def _refuse_oversized(stderr: str, max_pixels: int, evidence: str) -> None:
    for m in _OVER_PIXELS.finditer(stderr):
        w, h = int(m.group(1)), int(m.group(2))
        if w * h > max_pixels:
            raise MediaRejected(over_pixel_limit(w, h, max_pixels), evidence)


def over_pixel_limit(width: int, height: int, max_pixels: int) -> str:
    """The quarantine reason for a picture larger than the cap."""
    return (f"picture is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
            f"{max_pixels / 1e6:g} megapixel limit")


def detect_telecine(link: Path, demuxer: str, stream_index: int, timeout_s: float = 120) -> bool:
    """True when interlaced-flagged video is really film with 3:2 pulldown (fields repeat in a cadence).

    ffmpeg's ``idet`` counts frames whose top or bottom field repeats the previous frame's; the
    first ``TELECINE_SAMPLE_SECONDS`` are enough to see the cadence.
    """
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-v", "info", "-t", str(TELECINE_SAMPLE_SECONDS),
            *ffmpeg.untrusted_input(link, demuxer), "-map", f"0:{stream_index}", "-vf", "idet", "-f", "null", "-"]
    m = _REPEATED.search(ffmpeg.run(argv, timeout_s=timeout_s).stderr_tail)
    if not m:
        return False
    neither, top, bottom = (int(g) for g in m.groups())
    frames = neither + top + bottom
    return frames >= 10 and Fraction(top + bottom, frames) >= TELECINE_REPEAT_SHARE


def read_media(link: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[MediaInfo, dict]:
    """Probe a submission through its safe link; raise MediaRejected when it is not media we accept.

    Pictures over ``max_pixels`` are refused before anything decodes them. Returns the MediaInfo
    and a JSON document that ``from_document`` turns back into it (for caching).
    """
    with open(link, "rb") as f:
        head = f.read(12)
    if head.startswith(b"MThd") or (head.startswith(b"RIFF") and head[8:12] == b"RMID"):
        raise MediaRejected("a MIDI file: it holds notes for an instrument to play, no recorded sound; upload the "
                            "music rendered to an audio file instead (WAV, MP3, FLAC, AAC, ...)")
    try:
        data = _probe(link, max_pixels)
    except FfmpegError as exc:
        tail = exc.stderr_tail.strip().splitlines()
        last = tail[-1] if tail else exc.reason
        if "not on whitelist" in exc.stderr_tail:
            raise MediaRejected("not an accepted media format (" + last.split("'")[0].strip() + ")", str(exc)) from None
        raise MediaRejected(f"unreadable: {last.split(': ', 1)[-1]}", str(exc)) from None
    info = parse(data)
    if info.video is None and info.audio is None:
        raise MediaRejected("no audio or video stream in the file", str(data.get("format", {})))
    if info.video and info.video.width * info.video.height > max_pixels:
        raise MediaRejected(over_pixel_limit(info.video.width, info.video.height, max_pixels))
    if info.video and max(info.video.display_size) > MAX_ASPECT * min(info.video.display_size):
        w, h = info.video.display_size
        raise MediaRejected(f"picture is {w}x{h}, one side over {MAX_ASPECT} times the other: a strip no frame "
                            "can show, or a header with damaged sizes; upload it cropped nearer to 16:9")
    if info.is_image and not any(f.get("media_type") == "video" for f in data.get("frames") or []):
        # a picture whose header reads but whose data does not (a damaged PNG's zlib stream)
        raise MediaRejected("damaged: the picture's data does not decode", str(data.get("format", {})))
    measured = None
    demuxer = info.demuxer.split(",")[0]
    if not info.is_image and (info.duration_s is None or info.duration_s <= 0):
        measured, _ = measure_duration(link, demuxer)
        if not measured:
            raise MediaRejected("empty: the file holds no playable audio or video", str(data.get("format", {})))
    elif not info.is_image and (info.duration_s <= SHORT_S or _ends_early(link, info)):
        # an interrupted upload decodes with errors where it was cut; a container that merely
        # states a wrong length (fragmented MP4s do) decodes cleanly to its real end. A short file
        # is decoded whole (it costs little): damage near its start can leave nothing to cut from
        # a seek point, which no look at its end would show
        decoded, complaints = measure_duration(link, demuxer)
        # (a clip shorter than ffmpeg's first progress report shows no decoded length: only what the
        # decoder complained about counts for it)
        if complaints or (not decoded and info.duration_s > SHORT_S):
            what = (f"truncated: the file ends before its stated {float(info.duration_s):.1f} s"
                    if info.duration_s > SHORT_S else "damaged: it does not decode cleanly")
            raise MediaRejected(what + (f" ({complaints.splitlines()[-1][:120]})" if complaints else ""), complaints)
        measured = decoded if info.duration_s > SHORT_S else None
    if info.video and info.video.alpha_decoder and not _decodes(link, info, 0):
        raise MediaRejected(f"damaged: its picture does not decode with {info.video.alpha_decoder}, the decoder "
                            "that keeps its transparency")
    telecined = bool(info.video and info.video.interlaced and not info.is_image
                     and detect_telecine(link, demuxer, info.video.index))
    document = {"ffprobe": data, "measured": str(measured) if measured else None, "telecined": telecined}
    return from_document(document), document


def from_document(document: dict) -> MediaInfo:
    """MediaInfo from a document written by ``read_media``."""
    info = parse(document["ffprobe"])
    if document.get("measured"):
        info = replace(info, duration_s=Fraction(document["measured"]))
    if document.get("telecined") and info.video:
        info = replace(info, video=replace(info.video, telecined=True))
    return info
