"""The uploads people send every day from phones and music software: each is accepted and conformed
to exactly the shot's frames and samples, or refused with a reason that says what to send instead.

The files are made here: a HEIC by libheif (pillow-heif), an Ultra HDR JPEG in its MPF layout (a
primary picture with a smaller gain map after it), Monkey's Audio bytes, a MIDI file.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from render.callout.folder import load_callout
from render.core.cache import Cache
from render.core.house import PROFILES
from render.edit import plan
from render.intake.records import Quarantined, Source, intake_record
from render.master.programme import write_clip
from tests.support.callouts import write_callout
from tests.support.media import ffprobe

HOUSE = PROFILES["preview"]
RATE = Fraction(30000, 1001)
P3_OF_SRGB_RED = (234, 51, 35)  # sRGB's pure red, written in Display P3 numbers


def heic(path: Path, orientation: int, primaries: int) -> Path:
    """A 960x540 photo with a red square top-left (as seen) and a P3-numbered red bar bottom-right,
    stored turned with EXIF ``orientation`` (pillow-heif turns that into HEIF's ``irot``)."""
    picture = Image.new("RGB", (960, 540), (128, 128, 128))
    picture.paste((255, 0, 0), (0, 0, 160, 160))
    picture.paste(P3_OF_SRGB_RED, (640, 380, 960, 540))
    turn = {1: None, 6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180}[orientation]
    stored = picture.transpose(turn) if turn else picture
    exif = Image.Exif()
    exif[0x0112] = orientation
    pillow_heif.from_pillow(stored).save(path, exif=exif.tobytes(), quality=95, color_primaries=primaries,
                                         transfer_characteristics=13, matrix_coefficients=6, full_range_flag=1)
    return path


def ultra_hdr_jpeg(path: Path) -> Path:
    """A JPEG with a quarter-size gain map after it, indexed by an MPF segment (Android's Ultra HDR)."""
    primary = Image.new("RGB", (960, 540), (40, 90, 200))
    gain_map = Image.new("RGB", (240, 135), (128, 128, 128))
    primary.save(path, format="MPO", save_all=True, append_images=[gain_map], quality=90)
    return path


def monkeys_audio(path: Path, blocks: tuple[int, ...] = (44100, 44100, 22050), rate: int = 44100) -> Path:
    """A Monkey's Audio (3.99) file of 16-bit stereo: frames flagged as stereo silence, the one frame
    kind that needs no entropy coder (Debian's ffmpeg has a decoder for it, no encoder)."""
    frame = struct.pack("<II", 0x80000000, 3) + bytes(8)  # CRC word with its "flags follow" bit; 3: silence
    seek_len, data = 4 * len(blocks), frame * len(blocks)
    descriptor = b"MAC " + struct.pack("<HHIIIIIII", 3990, 0, 52, 24, seek_len, 0, len(data), 0, 0) + bytes(16)
    header = struct.pack("<HHIIIHHI", 2000, 0, blocks[0], blocks[-1], len(blocks), 16, 2, rate)
    first = 52 + 24 + seek_len
    seek = struct.pack(f"<{len(blocks)}I", *(first + i * len(frame) for i in range(len(blocks))))
    path.write_bytes(descriptor + header + seek + data)
    return path


def midi(path: Path) -> Path:
    """A one-note Standard MIDI File (format 0)."""
    track = bytes([0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track)
    return path


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    """Every kind in one call-out, taken in by ``intake_record``; the submissions' hashes before."""
    made = tmp_path_factory.mktemp("made")
    files = {
        "heic6": ("photo", heic(made / "IMG_0001.HEIC", 6, primaries=12)),
        "heic3": ("photo", heic(made / "IMG_0002.heic", 3, primaries=12)),
        "heic_srgb": ("photo", heic(made / "IMG_0003.heic", 1, primaries=1)),
        "uhdr": ("photo", ultra_hdr_jpeg(made / "PXL_0001.jpg")),
        "ape": ("music", monkeys_audio(made / "take.ape")),
        "midi": ("music", midi(made / "song.mid")),
    }
    rows = [{"record_id": rid, "file": f"media/{p.name}", "kind": kind, "title": rid, "contributors": "ana"}
            for rid, (kind, p) in files.items()]
    folder = write_callout(tmp_path_factory.mktemp("phone") / "callout", rows, [("ana", "Ana", "PT")],
                           {f"media/{p.name}": p for _, p in files.values()})
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (folder / "media").iterdir()}
    callout = load_callout(folder)
    cache = Cache(tmp_path_factory.mktemp("phone-cache"))
    results = {r.record_id: intake_record(callout, r, cache) for r in callout.records}
    return callout, cache, results, before


def conformed(intake, rid: str, out: Path) -> tuple[Path, int]:
    callout, cache, results, _ = intake
    src = results[rid]
    assert isinstance(src, Source), f"{rid} was quarantined: {getattr(src, 'reason', '')}"
    shot = plan.source_shot(src, callout, None)
    return write_clip(src, shot, HOUSE, "blur", cache, out), shot.frames


def assert_exact_length(clip: Path, frames: int) -> None:
    """The clip holds exactly the shot's frames, and exactly the samples those frames last."""
    streams = {s["codec_type"]: s for s in ffprobe(clip)["streams"]}
    assert int(streams["video"]["nb_frames"]) == frames
    samples = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-map", "0:a", "-f", "s16le", "-ac", "1",
                              "-ar", "48000", "-"], capture_output=True, check=True).stdout
    expected = frames * 48000 / RATE
    assert abs(len(samples) // 2 - expected) <= 1024, f"{len(samples) // 2} samples, expected {float(expected):.0f}"


def frame_rgb(clip: Path, at_s: float = 0.1) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(at_s), "-i", str(clip), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(HOUSE.height, HOUSE.width, 3).astype(int)


@pytest.mark.parametrize("rid", ["heic6", "heic3"])
def test_heic_photo_is_a_still_shown_upright_in_srgb_colour(intake, rid, tmp_path):
    src = intake[2][rid]
    assert isinstance(src, Source) and src.visual == "image", getattr(src, "reason", "")
    assert src.media.video.display_size == (960, 540)
    clip, frames = conformed(intake, rid, tmp_path / "clip.mp4")
    assert_exact_length(clip, frames)
    frame = frame_rgb(clip)
    red = (frame[..., 0] > 200) & (frame[..., 1] < 70) & (frame[..., 2] < 70)
    ys, xs = np.nonzero(red)
    top_left = red[: HOUSE.height // 3, : HOUSE.width // 3].sum()
    assert top_left > 200, f"no red square top-left (red centroid at {xs.mean():.0f}, {ys.mean():.0f})"
    # the bar's Display P3 numbers are sRGB's pure red: shown untagged they would be (234, 51, 35)
    r, g, b = bar_colour(frame)
    assert r > 240 and g < 25 and b < 25, f"the Display P3 bar shows as ({r:.0f}, {g:.0f}, {b:.0f}), not pure red"


def bar_colour(frame: np.ndarray) -> np.ndarray:
    """The mean colour inside the bottom-right bar of the test photo."""
    h, w = HOUSE.height, HOUSE.width
    return frame[int(h * 0.85):int(h * 0.9), int(w * 0.8):int(w * 0.85)].reshape(-1, 3).mean(axis=0)


def test_heic_tagged_srgb_keeps_its_numbers(intake, tmp_path):
    clip, _ = conformed(intake, "heic_srgb", tmp_path / "clip.mp4")
    assert np.abs(bar_colour(frame_rgb(clip)) - P3_OF_SRGB_RED).max() < 12


def test_ultra_hdr_jpeg_is_one_still_with_the_shots_sound(intake, tmp_path):
    src = intake[2]["uhdr"]
    assert isinstance(src, Source) and src.visual == "image" and src.media.video.width == 960
    clip, frames = conformed(intake, "uhdr", tmp_path / "clip.mp4")
    assert_exact_length(clip, frames)
    centre = frame_rgb(clip)[HOUSE.height // 2 - 10:HOUSE.height // 2 + 10, HOUSE.width // 2 - 10:HOUSE.width // 2 + 10]
    assert np.abs(centre.reshape(-1, 3).mean(axis=0) - (40, 90, 200)).max() < 14, "not the primary picture"


def test_monkeys_audio_is_accepted_as_sound(intake, tmp_path):
    src = intake[2]["ape"]
    assert isinstance(src, Source), getattr(src, "reason", "")
    assert src.visual == "audio" and src.media.audio.codec == "ape" and src.duration_s == Fraction(5, 2)
    clip, frames = conformed(intake, "ape", tmp_path / "clip.mp4")
    assert_exact_length(clip, frames)


def test_midi_is_refused_as_notes_without_sound(intake):
    q = intake[2]["midi"]
    assert isinstance(q, Quarantined)
    assert "MIDI" in q.reason and "no recorded sound" in q.reason and "WAV" in q.reason


def test_submissions_are_untouched(intake):
    callout, _, _, before = intake
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (callout.root / "media").iterdir()} == before
