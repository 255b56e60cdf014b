"""Rotation metadata and EXIF orientation: the conformed picture is upright.

Each test picture has a red square in the top-left corner of the picture as it should be seen;
its pixels are stored turned, with metadata saying how to turn them back. After conforming, the
red square must be top-left in the output frame.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from render.callout.folder import CallOut
from render.core.cache import Cache
from render.core.house import PROFILES
from render.edit import plan
from render.master import programme
from tests.support.media import source_of

HOUSE = PROFILES["preview"]


def red_centroid(clip: Path, at_s: float = 1.0) -> tuple[float, float]:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(at_s), "-i", str(clip), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    frame = np.frombuffer(raw, np.uint8).reshape(HOUSE.height, HOUSE.width, 3).astype(int)
    red = (frame[..., 0] > 170) & (frame[..., 1] < 90) & (frame[..., 2] < 90)
    assert red.sum() > 200, "the red marker is missing from the frame"
    ys, xs = np.nonzero(red)
    return xs.mean() / HOUSE.width, ys.mean() / HOUSE.height


def conform(path: Path, kind: str, cache: Cache, out: Path) -> Path:
    src = source_of(path, cache, kind)
    callout = CallOut(path.parent, "t", "t", "", "", "", (), {})
    shot = plan.source_shot(src, callout, None)
    return programme.write_clip(src, shot, HOUSE, "blur", cache, out)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Cache:
    return Cache(tmp_path_factory.mktemp("upright-cache"))


# (stored pixels = upright picture turned by this filter, rotate tag that turns them back)
ROTATIONS = {90: ("transpose=clock", "90"), 180: ("hflip,vflip", "180"), 270: ("transpose=cclock", "270")}


@pytest.mark.parametrize("degrees", sorted(ROTATIONS))
def test_rotated_phone_video_plays_upright(degrees, tmp_path, cache):
    turn, tag = ROTATIONS[degrees]
    upright = "color=c=gray:s=640x360:r=30:d=3,drawbox=x=0:y=0:w=120:h=120:color=red:t=fill"
    stored = tmp_path / "stored.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{upright},{turn}",
                    "-c:v", "libx264", "-preset", "ultrafast", str(tmp_path / "raw.mp4")], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "raw.mp4"), "-c", "copy",
                    "-metadata:s:v:0", f"rotate={tag}", str(stored)], check=True)
    x, y = red_centroid(conform(stored, "video", cache, tmp_path / "clip.mp4"))
    assert x < 0.2 and y < 0.25, f"red marker at ({x:.2f}, {y:.2f}) of the frame, expected top-left"


@pytest.mark.parametrize("orientation,transpose", [(3, Image.Transpose.ROTATE_180),
                                                   (6, Image.Transpose.ROTATE_90),
                                                   (8, Image.Transpose.ROTATE_270)])
def test_exif_oriented_photo_shows_upright(orientation, transpose, tmp_path, cache):
    picture = Image.new("RGB", (960, 540), (128, 128, 128))
    picture.paste((255, 0, 0), (0, 0, 160, 160))
    stored = picture.transpose(transpose)  # what the camera wrote; EXIF says how to turn it back
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    stored.save(path, exif=exif, quality=95)
    x, y = red_centroid(conform(path, "photo", cache, tmp_path / "clip.mp4"), at_s=0.1)
    assert x < 0.25 and y < 0.3, f"red marker at ({x:.2f}, {y:.2f}) of the frame, expected top-left"
