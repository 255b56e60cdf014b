"""The web version, to YouTube's recommended upload settings: MP4 with its index first and no edit
lists; H.264 High, progressive 4:2:0, a closed GOP of half the frame rate with 2 consecutive
B-frames, ~8 Mb/s VBR at 1080p30; AAC-LC 384 kb/s 48 kHz stereo; chapters at the act breaks; the
captions as an English ``mov_text`` track (the web file has no leader: they keep programme time).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from render.core import ffmpeg
from render.core.house import HouseFormat
from render.deliver.source import Programme
from render.master import chapters as chapters_mod
from render.master.programme import subtitle_args

BITRATE = "8M"
MAXRATE = "12M"  # VBR: room above the average for busy shots, bounded so players' buffers hold
BUFSIZE = "16M"
AUDIO_BITRATE = "384k"


def video_args(house: HouseFormat) -> list[str]:
    """x264 as YouTube recommends; also what the benchmark's encode floor runs."""
    gop = str(round(house.rate / 2))
    return ["-c:v", "libx264", "-preset", house.x264_preset, "-profile:v", "high", "-level:v", "4.1",
            "-pix_fmt", "yuv420p", "-b:v", BITRATE, "-maxrate", MAXRATE, "-bufsize", BUFSIZE,
            "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", "2", "-flags", "+cgop",
            "-x264-params", "open-gop=0:b-pyramid=0",
            "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"]


AUDIO_ARGS = ["-c:a", "aac", "-profile:a", "aac_low", "-b:a", AUDIO_BITRATE, "-ar", "48000", "-ac", "2"]


def argv(prog: Programme, house: HouseFormat, chapters: Sequence[chapters_mod.Chapter], work: Path, out: Path,
         title: str, captions: Path | None = None) -> list[str]:
    """The web version's command: the programme's pieces decoded once and encoded once; ``captions``
    (an SRT in programme time) as its subtitle track."""
    meta = work / "chapters.txt"
    meta.write_text(chapters_mod.ffmetadata(chapters, house.rate), encoding="utf-8")
    srt_in, srt_out = subtitle_args(captions, 3) if captions else ([], [])
    return [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *prog.inputs(work),
            "-f", "ffmetadata", "-i", str(meta), *srt_in,
            "-filter_complex", f"{prog.picture(house.rate, 'v')};{prog.sound('a')}",
            "-map", "[v]", "-map", "[a]", "-map_metadata", "2", "-map_chapters", "2" if chapters else "-1",
            *srt_out, *video_args(house), *AUDIO_ARGS, "-metadata", f"title={title}",
            # without an edit list, B-frames would start the picture 2 frames after the sound; negative
            # composition offsets (ctts version 1) start both at 0
            "-movflags", "+faststart+negative_cts_offsets", "-use_editlist", "0",
            "-video_track_timescale", str(house.rate.numerator),
            "-f", "mp4", str(out)]
