"""Analysis drives the edit: beats, black heads, shot boundaries and flashing, on real media
through a real Prefect build (issue 4), and `remixtv analyze`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.support import REPO
from tests.support.callouts import submission, write_callout
from tests.support.media import corpus, lavfi

RATE = Fraction(30000, 1001)
SONG = "outfoxing_the_fox_music_mp3_44k_stereo.mp3"
CONTRIBUTORS = [("ana", "Ana", "MX"), ("bo", "Bo", "CN"), ("cy", "Cy", "IR"), ("dee", "Dee", "EG"),
                ("eli", "Eli", "IL"), ("fox", "Fox", "FR"), ("gus", "Gus", "US")]
FLICKER = "color=c=black:s=320x240:r=30:d=6,geq=lum='255*lt(mod(T*5\\,1)\\,0.5)':cb=128:cr=128"
BLACK_HEAD = ("testsrc2=s=320x240:r=30:d=6,"
              "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='lt(t\\,2)'")

SPEC = """\
title: "RE: Beats"
callout: callout
runtime: "0:32"
{top}segments:
  - {{id: beats, type: montage, music: M1, cut_on: beats, seconds: 10, shot_seconds: 1.5,
     select: {{records: [F1, V1, V2, V3], order: listed}}}}
  - {{id: head, type: feature, record: K1, max_seconds: 3}}
  - {{id: scenes, type: montage, shot_seconds: 2, select: {{records: [S1]}}}}
  - {{id: song, type: song, record: M1, seconds: 6, select: {{records: [V1, V3], exclude_used: false}}}}
  - {{id: rest, type: fill, select: {{records: [V4]}}}}
"""


def _rows():
    return [
        submission("M1", "music", "Outfoxing", "ana", SONG),
        submission("V1", "video", "Frog", "bo", "frog_toy_h264_aac_720x480_30fps.mp4"),
        submission("V2", "animation", "Bunny", "cy", "bunny_vp8_vorbis_320x240_30fps.webm"),
        submission("V3", "video", "Chaplin", "dee", "chaplin_bw_film_h264_mp3_640x360_25fps.mp4"),
        submission("V4", "video", "Green", "dee", "greenscreen_man_h264_aac_1280x720_30fps.mp4"),
        submission("F1", "video", "Strobe", "eli", file="m/flicker.mp4"),
        submission("K1", "video", "Late start", "fox", file="m/blackhead.mp4"),
        submission("S1", "video", "Scenes", "gus", "scene_cuts_h264_yuv444_1280x272_25fps.mp4"),
    ]


@pytest.fixture(scope="module")
def callout(tmp_path_factory):
    root = tmp_path_factory.mktemp("beats")
    made = tmp_path_factory.mktemp("made")
    files = {"m/flicker.mp4": lavfi(made / "flicker.mp4", FLICKER, "-pix_fmt", "yuv420p"),
             "m/blackhead.mp4": lavfi(made / "blackhead.mp4", BLACK_HEAD, "-pix_fmt", "yuv420p")}
    write_callout(root / "callout", _rows(), CONTRIBUTORS, files)
    return root


def _build(root: Path, name: str, top: str, cache_dir: Path) -> tuple[dict, Path]:
    from flows.pipeline import build_flow

    spec = root / f"{name}.yaml"
    spec.write_text(SPEC.format(top=top))
    build = build_flow(str(spec), "preview", str(root / "out"), str(cache_dir))
    return build, root / "out" / name / "preview"


@pytest.fixture(scope="module")
def built(callout, prefect_harness, cache_dir):
    return _build(callout, "beats", "", cache_dir)


def _segment(build: dict, sid: str) -> dict:
    return next(s for s in build["segments"] if s["id"] == sid)


def _extract(episode: Path, seg: dict, dest: Path, *args: str) -> Path:
    start = seg["start_frame"] / RATE
    seconds = (seg["end_frame"] - seg["start_frame"]) / RATE
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{float(start):.6f}", "-i", str(episode),
                    "-t", f"{float(seconds):.6f}", *args, str(dest)], check=True)
    return dest


def _pcm(args: list[str]) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", *args, "-ac", "1", "-ar", "48000", "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32)


@pytest.fixture(scope="module")
def song_beats() -> np.ndarray:
    from render.analysis.audio import analyze_audio_file

    return np.array(analyze_audio_file(corpus(SONG), music_hint=True).beat_frames)


def test_a_song_segment_is_its_music_cut_on_its_beats(built, song_beats):
    build, _ = built
    seg = _segment(build, "song")
    assert seg["bed"]["record"] == "M1" and set(seg["records"]) <= {"M1", "V1", "V3"}
    assert seg["end_frame"] - seg["start_frame"] == round(6 * RATE)
    beats = song_beats - round(Fraction(seg["bed"]["source_in_s"]).limit_denominator(100000) * RATE)
    cuts = [int(c) for c in np.cumsum([s["frames"] for s in seg["shots"]])[:-1]]
    assert cuts and all(np.min(np.abs(beats - c)) <= 1 for c in cuts), (cuts, beats[:40])


def test_a_montage_cut_on_beats_cuts_within_one_frame_of_a_beat(built, song_beats, tmp_path):
    build, folder = built
    seg = _segment(build, "beats")
    assert seg["bed"]["record"] == "M1" and "M1" in build["records_used"]
    cuts = [int(c) for c in np.cumsum([s["frames"] for s in seg["shots"]])[:-1]]
    assert len(cuts) >= 5, cuts  # 10 s at about 1.5 s a shot
    # the song's beats, detected afresh from the upload, on the montage's clock
    bed_in = Fraction(seg["bed"]["source_in_s"]).limit_denominator(100000)
    beats = song_beats - round(bed_in * RATE)
    misses = [c for c in cuts if np.min(np.abs(beats - c)) > 1]
    assert not misses, f"cuts {misses} are more than one frame from a beat; beats {beats.tolist()}"
    # what plays is the song from exactly there: the episode's sound lines up with the upload's
    start = seg["start_frame"] / RATE
    seconds = float((seg["end_frame"] - seg["start_frame"]) / RATE) - 0.2
    heard = _pcm(["-ss", f"{float(start):.6f}", "-i", str(folder / "episode.mp4"), "-t", f"{seconds:.6f}"])
    original = _pcm(["-ss", f"{float(bed_in):.6f}", "-i", str(corpus(SONG)), "-t", f"{seconds:.6f}"])
    n = min(len(heard), len(original))
    spectrum = np.fft.rfft(heard[:n], 2 * n) * np.conj(np.fft.rfft(original[:n], 2 * n))
    xc = np.fft.irfft(spectrum)
    lag = int(np.argmax(np.concatenate([xc[-2400:], xc[:2401]]))) - 2400  # within +-50 ms
    assert abs(lag) <= 48, f"the montage's sound is {lag / 48:.1f} ms off the song"  # 1 ms
    # and the picture really cuts there: the shot boundaries seen in the rendered segment
    from render.analysis.pictures import analyze_input
    from render.intake.probe import read_media

    clip = _extract(folder / "episode.mp4", seg, tmp_path / "beats.mp4", "-an", "-c:v", "libx264", "-crf", "12")
    media, _ = read_media(clip)
    seen = analyze_input(["-i", str(clip)], "0:v:0", media, timeout_s=120).cuts
    for c in cuts:
        assert any(abs(c - s) <= 1 for s in seen), (c, seen)


def test_the_music_plays_under_the_montage_instead_of_the_clips_sound(built):
    build, folder = built
    seg = _segment(build, "beats")
    from render.analysis.loudness import measure

    start, end = seg["start_frame"] / RATE, seg["end_frame"] / RATE
    loud = measure(["-ss", f"{float(start) + 0.5:.6f}", "-t", f"{float(end - start) - 1:.6f}",
                    "-i", str(folder / "episode.mp4")], "0:a:0", 120)
    assert -30 < loud.integrated_lufs < -18  # the song, pre-levelled towards -24, runs through every cut


def test_flashing_material_is_left_out_with_a_warning(built):
    build, _ = built
    assert "F1" not in build["records_used"]
    warning = next(w for w in build["warnings"] if "F1" in w)
    assert "photosensitive" in warning and "allow_flashes" in warning


def test_allow_flashes_lets_it_in(callout, prefect_harness, cache_dir):
    build, _ = _build(callout, "allowed", "allow_flashes: true\n", cache_dir)
    assert "F1" in _segment(build, "beats")["records"]
    assert not any("F1" in w and "photosensitive" in w for w in build["warnings"])


def test_black_head_is_trimmed(built, tmp_path):
    build, folder = built
    seg = _segment(build, "head")
    assert seg["shots"][0]["source_in_s"] >= 2 - 1 / 30  # the first two seconds are black
    frame = _extract(folder / "episode.mp4", seg, tmp_path / "head.gray", "-frames:v", "1", "-f", "rawvideo",
                     "-pix_fmt", "gray")
    assert np.frombuffer(frame.read_bytes(), np.uint8).mean() > 40


def test_excerpts_start_on_shot_boundaries(built, cache_dir):
    build, _ = built
    shot = _segment(build, "scenes")["shots"][0]
    first = round(shot["source_in_s"] * RATE)
    # the cuts of scene_cuts...25fps.mp4 at project frames (tests/analysis/test_pictures.py checks these by eye)
    assert first in {0, 36, 91, 164, 224, 290}, first
    assert shot["frames"] == round(2 * RATE)


def test_spec_errors_for_beats_name_the_line(tmp_path, callout):
    from render.core.errors import SpecError
    from render.edit.spec import load_spec

    bad = tmp_path / "bad.yaml"
    bad.write_text('title: x\ncallout: callout\nruntime: "0:10"\nsegments:\n'
                   "  - {id: a, type: montage, cut_on: beats, select: {kinds: [video]}}\n"
                   "  - {id: b, type: montage, cut_on: bars, music: M1, select: {kinds: [video]}}\n"
                   "  - {id: c, type: feature, record: V1, allow_flashes: sometimes}\n")
    with pytest.raises(SpecError) as err:
        load_spec(bad)
    lines = [str(p) for p in err.value.problems]
    assert any(line.startswith(f"{bad}:5: segments[0].cut_on: cutting on beats needs music") for line in lines), lines
    assert any(line.startswith(f"{bad}:6: segments[1].cut_on: must be one of shots, beats") for line in lines), lines
    assert any(line.startswith(f"{bad}:7: segments[2].allow_flashes: must be true or false") for line in lines), lines


def test_analyze_cli_prints_a_summary_and_writes_analysis_json(built, callout, tmp_path, cache_dir):
    out = tmp_path / "analysis"
    env = dict(os.environ, REMIXTV_CACHE=str(cache_dir), COLUMNS="200")
    result = subprocess.run([sys.executable, "-m", "flows.cli", "analyze", str(callout / "callout"), "--out", str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((out / "analysis.json").read_text())
    records = {r["record"]: r for r in doc["records"]}
    assert abs(records["M1"]["audio"]["tempo_bpm"] - 156.6) < 4
    assert len(records["S1"]["pictures"]["shots"]) == 6
    assert records["F1"]["pictures"]["flashes"]
    assert records["K1"]["pictures"]["black"][0]["start"] == 0
    table = result.stdout
    assert "M1" in table and "BPM" in table and "flashing" in table and "LUFS" in table
