"""Damage the upload fuzzer found slipping through intake into a failed build: intake now refuses it."""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

import pytest

from render.core.cache import Cache
from render.core.errors import MediaRejected
from render.intake.probe import read_media
from render.intake.records import safe_link
from tests.support.media import corpus, lavfi


def probe(path: Path, cache: Cache):
    return read_media(safe_link(cache, path, cache.content_hash(path)))[0]


@pytest.fixture
def cache(tmp_path) -> Cache:
    return Cache(tmp_path / "cache")


def test_a_png_whose_picture_data_does_not_decode_is_refused(tmp_path, cache):
    good = lavfi(tmp_path / "good.png", "testsrc=s=64x48:d=1", "-frames:v", "1")
    data = bytearray(good.read_bytes())
    idat = data.index(b"IDAT") + 4
    data[idat + 2:idat + 40] = bytes(range(38))  # the zlib stream, past its header: garbage
    crc = zlib.crc32(bytes(data[idat - 4:idat + int.from_bytes(data[idat - 8:idat - 4], "big")]))
    end = idat + int.from_bytes(data[idat - 8:idat - 4], "big")
    data[end:end + 4] = crc.to_bytes(4, "big")  # a valid chunk checksum: only the picture data is bad
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    assert probe(good, cache).is_image
    with pytest.raises(MediaRejected, match="damaged: the picture's data does not decode"):
        probe(bad, cache)


def test_a_short_clip_damaged_near_its_start_is_refused(tmp_path, cache):
    clip = tmp_path / "clip.flv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=60:d=1.5",
                    "-f", "lavfi", "-i", "sine=d=1.5", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
                    str(clip)], check=True)
    data = bytearray(clip.read_bytes())
    for at in range(len(data) // 3, len(data) // 3 + 64, 7):  # a run of bit flips inside the first frames
        data[at] ^= 0x5A
    damaged = tmp_path / "damaged.flv"
    damaged.write_bytes(bytes(data))
    assert probe(clip, cache).duration_s > 1
    with pytest.raises(MediaRejected, match="damaged: it does not decode cleanly"):
        probe(damaged, cache)


def test_a_photo_whose_header_declares_a_strip_is_refused_and_a_panorama_kept(tmp_path, cache):
    # the fuzzer's find: a JPEG's frame header saying 1x65535 still decodes, and its pan was to cross a
    # 35-million-pixel-wide picture (swscale failed for memory; the build would have stopped)
    data = bytearray(corpus("exif_orientation6_landscape_1200x1800.jpg").read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (65535).to_bytes(2, "big") + (1).to_bytes(2, "big")  # height, width
    strip = tmp_path / "strip.jpg"
    strip.write_bytes(bytes(data))
    with pytest.raises(MediaRejected, match=r"^picture is 1x65535, one side over 32 times the other: "):
        probe(strip, cache)
    panorama = lavfi(tmp_path / "panorama.png", "testsrc=s=1920x64:d=1", "-frames:v", "1")  # 30:1
    assert probe(panorama, cache).video.display_size == (1920, 64)


def test_a_clean_clip_shorter_than_ffmpegs_first_progress_report_is_kept(cache):
    assert probe(corpus("mp3_24k_stereo_0.07s.mp3"), cache).audio is not None


def test_a_photo_whose_exif_text_is_not_utf8_renders(tmp_path):
    """ffmpeg hands a photo's EXIF on as frame metadata, and QC's statistics file prints it beside the
    numbers: bytes that are not UTF-8 there must not stop the render."""
    from PIL import Image

    from render.callout.folder import CallOut
    from render.core.house import PROFILES
    from render.edit import plan
    from render.intake.records import Source
    from render.master.programme import write_clip

    exif = Image.Exif()
    exif[0x010F] = "CamXYZ"  # Make
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (320, 240), (90, 120, 200)).save(path, exif=exif)
    path.write_bytes(path.read_bytes().replace(b"CamXYZ", b"Cam\xc3r\xf0"))  # bytes that are not UTF-8
    cache = Cache(tmp_path / "cache")
    media = probe(path, cache)
    src = Source(plan_record(path), cache.content_hash(path), media=media,
                 link=safe_link(cache, path, cache.content_hash(path)))
    shot = plan.source_shot(src, CallOut(tmp_path, "t", "t", "", "", "", (), {}), None, max_frames=15)
    out = write_clip(src, shot, PROFILES["preview"], "blur", cache, tmp_path / "clip.mp4")
    assert out.stat().st_size > 0


def plan_record(path: Path):
    from render.callout.folder import Record

    return Record("P1", path.name, "photo", "Photo", (), (), (), "", True, 2)
