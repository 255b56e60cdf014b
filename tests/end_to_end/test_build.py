"""A whole build on a small call-out of real corpus media, through real Prefect and ffmpeg."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from tests.support.callouts import expected_credited, submission, write_project
from tests.support.media import ffprobe

CONTRIBUTORS = [
    ("ana", "Ana Lucía Pérez", "MX"), ("bo", "Bo Chen 陈波", "CN"), ("cy", "Cyrus Tehrani", "IR"),
    ("dee", "مريم الحسيني", "EG"), ("eli", "אלי כהן", "IL"), ("fox", "François Ölçer", "FR"),
    ("gus", "Gus 🎺 Miller", "US"), ("hana", "花子", "JP"), ("ivy", "Ivy Unreleased", "GB"),
    ("jo", "Jo Upstream", "NZ"), ("kim", "Kim Nobody", "KR"),
]


def rows():
    """Every kind, remix chains (a cycle, a self-reference, a missing source), an unreleased record,
    a file that is not what its name says and a path that leaves the folder."""
    return [
        submission("V1", "video", "Frog", "ana:director;bo", "frog_toy_h264_aac_720x480_30fps.mp4", tags="one"),
        submission("V2", "video", "Sideways", "cy", "iphone_portrait_h264_aac_568x320_rot90.mov",
                   file="media/IMG_0001.MOV", remix_of="V1", tags="one"),
        submission("V3", "animation", "Bunny", "dee:animator", "bunny_vp8_vorbis_320x240_30fps.webm", remix_of="V2;V3",
                   tags="one"),
        submission("V4", "video", "Green", "eli", "greenscreen_man_h264_aac_1280x720_30fps.mp4", tags="lawn"),
        submission("P1", "photo", "Elva", "fox", "elva_photo_3072x1780.jpg"),
        submission("P2", "illustration", "Logo", "gus", "firefox_logo_rgba_1200x900.png"),
        submission("M1", "music", "Piano", "hana:composer", "piano_music_pcm_s16_44k_stereo.wav", remix_of="J0"),
        submission("J0", "music", "Upstream", "jo", "brahms_hungarian_dance_strings_vorbis_22k_mono.ogg",
                   remix_of="M1;NOPE"),
        submission("A1", "voice", "Speech", "bo:narrator", "jfk_speech_flac_44k_stereo_s32.flac"),
        submission("T1", "text", "Note", "hana", text="One is the loneliest number."),
        submission("U1", "video", "Unreleased", "ivy", "chaplin_bw_film_h264_mp3_640x360_25fps.mp4", tags="one",
                   released="no"),
        submission("B1", "video", "Broken", "kim", "README.md", file="media/broken.mp4", tags="one"),
        submission("E1", "video", "Escape", "kim", file="../outside.mp4"),
    ]

SPEC = """\
title: "RE: Testing"
callout: callout
runtime: "1:00"
pool_cents: 100001
segments:
  - {id: open, type: montage, select: {kinds: [video, animation], tags: [one], limit: 5}, shot_seconds: 2}
  - {id: title, type: card, text: "RE: Testing", seconds: 3}
  - {id: green, type: feature, record: V4, max_seconds: 8}
  - {id: fill, type: fill}
  - {id: credits, type: credits, seconds: 12}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, cache_dir):
    root = tmp_path_factory.mktemp("e2e")
    write_project(root, rows(), CONTRIBUTORS, SPEC)
    from flows.pipeline import build_flow

    report = build_flow(str(root / "spec.yaml"), "preview", str(root / "out"), str(cache_dir))
    return root, root / "out" / "spec" / "preview", report


def test_episode_is_the_house_format_and_lands_on_the_runtime(built):
    _, folder, report = built
    info = ffprobe(folder / "episode.mp4")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (video["width"], video["height"], video["r_frame_rate"]) == (960, 540, "30000/1001")
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)
    frames = round(60 * Fraction(30000, 1001))
    assert int(video["nb_frames"]) == frames == report["frames"]
    assert abs(float(info["format"]["duration"]) - 60) < 0.05
    assert abs(float(audio["duration"]) - float(video["duration"])) < 1 / 30
    assert (folder / "episode.mp4").stat().st_mode & 0o444 == 0o444  # readable like any output, not 0600


def test_build_json_segments_are_contiguous_and_exact(built):
    _, folder, _ = built
    build = json.loads((folder / "build.json").read_text())
    segs = build["segments"]
    assert [s["id"] for s in segs] == ["open", "title", "green", "fill", "credits"]
    assert segs[0]["start_frame"] == 0 and segs[-1]["end_frame"] == build["frames"]
    assert all(a["end_frame"] == b["start_frame"] for a, b in zip(segs, segs[1:]))
    assert segs[1]["end_frame"] - segs[1]["start_frame"] == round(3 * Fraction(30000, 1001))
    assert segs[2]["records"] == ["V4"]


def test_unreleased_broken_and_escaping_records_never_appear(built):
    _, folder, _ = built
    build = json.loads((folder / "build.json").read_text())
    assert not {"U1", "B1", "E1"} & set(build["records_used"])
    intake = json.loads((folder / "intake.json").read_text())
    reasons = {q["record"]: q["reason"] for q in intake["quarantined"]}
    assert "release" in reasons["U1"]
    assert "unreadable" in reasons["B1"] or "format" in reasons["B1"]
    assert "leaves the call-out folder" in reasons["E1"]


def test_credits_name_every_contributor_of_used_records_and_their_ancestors_and_nobody_else(built):
    root, folder, _ = built
    used = json.loads((folder / "build.json").read_text())["records_used"]
    expected = expected_credited(root / "callout", used)
    credits = json.loads((folder / "credits.json").read_text())
    assert sorted(p["username"] for p in credits["people"]) == sorted(expected)
    names = {u: n for u, n, _ in CONTRIBUTORS}
    txt = (folder / "credits.txt").read_text()
    for username in expected:
        assert names[username] in txt
    for username in set(names) - expected:
        assert names[username] not in txt
    assert {"jo", "cy", "ana"} <= expected  # upstream of what the cut uses
    assert not {"ivy", "kim"} & expected  # unreleased, broken


def test_cached_rebuild_renders_nothing(built, cache_dir):
    root, folder, _ = built
    from flows.pipeline import build_flow

    again = build_flow(str(root / "spec.yaml"), "preview", str(root / "out"), str(cache_dir))
    assert again["pieces"]["rendered"] == 0 and again["pieces"]["cached"] == again["pieces"]["total"]
    assert again["episode_rewritten"] is False  # nothing changed: no media work at all


def test_ledger_splits_the_pool_exactly_among_the_credited(built):
    _, folder, _ = built
    import csv as _csv

    with open(folder / "ledger.csv", newline="", encoding="utf-8") as f:
        rows = list(_csv.DictReader(f))
    credited = {p["username"].lower() for p in json.loads((folder / "credits.json").read_text())["people"]}
    amount = next(k for k in rows[0] if "cents" in k)
    assert sum(int(r[amount]) for r in rows) == 100001
    assert {r["username"].lower() for r in rows} == credited
