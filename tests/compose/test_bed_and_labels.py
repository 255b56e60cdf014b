"""A music bed under a segment, ducked under speech, and lower-third attribution, measured in
the rendered episode (issue 5)."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from tests.support.callouts import submission, write_project
from tests.support.media import corpus

RATE = Fraction(30000, 1001)
SPEC = """\
title: "RE: Beds"
callout: callout
runtime: "0:10"
segments:
  - {id: talk, type: montage, shot_seconds: 5, bed: M1, lower_third_seconds: 3,
     select: {records: [A1, V5], order: listed}}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, cache_dir):
    root = tmp_path_factory.mktemp("beds")
    write_project(root, [
        submission("A1", "voice", "Reading", "ana", "librispeech_reading_vorbis_22k_mono.ogg"),
        submission("V5", "video", "Scènes", "bo", "scene_cuts_h264_yuv444_1280x272_25fps.mp4"),
        submission("M1", "music", "Outfoxing", "cy", "outfoxing_the_fox_music_mp3_44k_stereo.mp3"),
    ], [("ana", "Ana", "MX"), ("bo", "Bo Chen", "CN"), ("cy", "Cy", "IR")], SPEC)
    from flows.pipeline import build_flow

    build = build_flow(str(root / "spec.yaml"), "preview", str(root / "out"), str(cache_dir))
    return build, root / "out" / "spec" / "preview"


def _pcm(args: list[str]) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", *args, "-ac", "1", "-ar", "48000", "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).astype(np.float64)


def test_the_bed_plays_under_the_segment_and_ducks_under_speech(built):
    build, folder = built
    seg = build["segments"][0]
    bed = seg["bed"]
    assert bed["record"] == "M1" and bed["mix"] == "under" and "M1" in build["records_used"]
    assert bed["duck"] and bed["duck"][0][0] < 30  # the reading starts talking straight away
    speech_end = max(b for _, b in bed["duck"])
    assert speech_end <= 150  # nothing to duck under the silent video that follows
    heard = _pcm(["-i", str(folder / "episode.mp4")])
    music = _pcm(["-ss", f"{bed['source_in_s']:.6f}", "-i", str(corpus("outfoxing_the_fox_music_mp3_44k_stereo.mp3")),
                  "-t", "10.1"])
    n = min(len(heard), len(music))
    heard, music = heard[:n], music[:n]

    def level(a_s: float, b_s: float) -> float:
        """How much of the song is in the mix over [a, b): its least-squares gain (speech is uncorrelated)."""
        gains = []
        for w in range(int(a_s * 4), int(b_s * 4)):  # quarter-second windows
            m, h = music[w * 12000:(w + 1) * 12000], heard[w * 12000:(w + 1) * 12000]
            if np.dot(m, m) > 1e-3:
                gains.append(np.dot(h, m) / np.dot(m, m))
        return float(np.median(gains))

    ducks = [(a / RATE, b / RATE) for a, b in bed["duck"]]
    talk = level(float(ducks[0][0]) + 0.3, float(ducks[0][1]) - 0.3)
    quiet = level(5.5, 9.5)  # the silent video: the bed at its set level (the programme's own gain aside)
    assert quiet > 0.01
    assert -14 < 20 * np.log10(talk / quiet) < -10, (talk, quiet)  # ducked 12 dB under speech


def _luma(folder, seconds: float) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{seconds:.4f}", "-i", str(folder / "episode.mp4"),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(540, 960)


def test_a_lower_third_names_the_record_inside_title_safe_for_its_time(built):
    build, folder = built
    shot = build["segments"][0]["shots"][1]
    assert shot["record"] == "V5" and shot["lower_third_frames"] == round(3 * RATE)
    # bottom-left, inside the 10% title-safe margins (960x540 preview: x >= 96, y <= 486)
    box = (slice(380, 486), slice(96, 480))
    during, after = _luma(folder, 5 + 1.5), _luma(folder, 5 + 4.2)
    lit_during = int((during[box] > 200).sum())
    lit_after = int((after[box] > 200).sum())
    assert lit_during > 400 and lit_during > 5 * max(lit_after, 1), (lit_during, lit_after)
    below = (slice(487, 540), slice(0, 960))  # the band ends at title-safe: nothing typeset under it
    assert abs(int((during[below] > 200).sum()) - int((after[below] > 200).sum())) < 50
    credits = json.loads((folder / "credits.json").read_text())
    assert {"ana", "bo", "cy"} == {p["username"] for p in credits["people"]}  # the bed is credited too
