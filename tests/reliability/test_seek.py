"""A render that starts a record where ffmpeg cannot seek comes out exact; an empty render is a clear error."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from fractions import Fraction

import pytest

from render.compose import store
from render.core.cache import Cache
from render.core.errors import FfmpegError
from render.core.house import PROFILES
from render.edit import plan
from render.master.programme import write_clip
from tests.support.media import corpus, ffprobe, source_of

FLV = "h264_aac_1080x720_60fps.flv"  # ffmpeg "could not seek to position 0.100": no frame after -ss 0.033


def test_a_record_started_where_ffmpeg_cannot_seek_renders_its_frames(tmp_path):
    cache = Cache(tmp_path / "cache")
    src = source_of(corpus(FLV), cache, kind="video")
    shot = plan.source_shot(src, None, None, max_frames=24, start=Fraction(1, 30), exact=True)
    assert shot is not None and shot.source_in_s > 0
    out = write_clip(src, shot, PROFILES["preview"], "blur", cache, tmp_path / "clip.mp4")
    streams = {s["codec_type"]: s for s in ffprobe(out)["streams"]}
    assert int(streams["video"]["nb_frames"]) == shot.frames == 24
    # the picture is the record's from that point: its first frame is the second of a clip from 0
    start = write_clip(src, dataclasses.replace(shot, source_in_s=Fraction(0)), PROFILES["preview"], "blur", cache,
                       tmp_path / "from0.mp4")
    assert _psnr(out, 0, start, 1) > _psnr(out, 0, start, 16) + 3


def _psnr(a, i: int, b, j: int) -> float:
    """How alike frame ``i`` of ``a`` and frame ``j`` of ``b`` are (PSNR, dB)."""
    graph = f"[0:v]select=eq(n\\,{i})[x];[1:v]select=eq(n\\,{j})[y];[x][y]psnr"
    log = subprocess.run(["ffmpeg", "-i", str(a), "-i", str(b), "-filter_complex", graph, "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    return float(re.findall(r"average:([\d.]+|inf)", log)[-1])


def test_an_empty_render_is_a_clear_ffmpeg_error(tmp_path):
    video, audio = tmp_path / "v.mp4", tmp_path / "a.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "0.033", "-t", "2", "-i", str(corpus(FLV)), "-map", "0:v",
                    "-c:v", "libx264", str(video)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "0.5",
                    str(audio)], check=True)
    with pytest.raises(FfmpegError, match="rendered 0 frames"):
        store._exact_counts(["ffmpeg"], video, audio, 24, 24024)
