"""The broadcast master: programme loudness (ATSC A/85), chapters at act breaks, faststart, QC
verdicts through the CLI, and cached pieces that were damaged on disk.

One short master (23 s, 1920x1080) of real corpus media, built once through real Prefect: a quiet
voice (an audiobook reading, -27.8 LUFS), a loud song's quieter intro (the song is -17.7 LUFS as a
whole, its intro -20.4), an act break, a stretch of black media and a card. Pre-levelling puts
each record near -24 from its whole-record loudness, which leaves this programme at about
-25.5 LUFS: the master's loudness pass (each act's gain, then the programme's) is what lands it on -24.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from fractions import Fraction

import pytest

from tests.support.callouts import submission, write_project
from tests.support.media import corpus, ebur128, ffprobe, source_of

RATE = Fraction(30000, 1001)

VOICE, SONG = "librispeech_reading_vorbis_22k_mono.ogg", "lets_go_fishin_song_vorbis_22k_mono.ogg"
ROWS = [
    submission("VO1", "voice", "Reading", "ana", VOICE),
    submission("MU1", "music", "Fishin", "bo", SONG),
    submission("BL1", "video", "Dark", "cy", "silent_black_h264_aac_320x240_10s.mp4"),
]
SPEC = """\
title: "Master test"
callout: callout
runtime: "0:23.023"
segments:
  - {id: voice, type: feature, record: VO1, seconds: 6, start: 1}
  - {id: break, type: act_break, seconds: 2}
  - {id: music, type: feature, record: MU1, seconds: 10, start: 0}
  - {id: dark, type: feature, record: BL1, seconds: 3, start: 0}
  - {id: end, type: card, text: "The End", seconds: 2}
"""
FRAMES = {"voice": (0, 180), "break": (180, 240), "music": (240, 540), "dark": (540, 630), "end": (630, 690)}


def seconds(frame: int) -> float:
    return float(frame / RATE)


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, cache_dir):
    root = tmp_path_factory.mktemp("master")
    write_project(root, ROWS, [("ana", "Ana", "MX"), ("bo", "Bo", "CN"), ("cy", "Cy", "IR")], SPEC)
    from flows.pipeline import build_flow

    report = build_flow(str(root / "spec.yaml"), "master", str(root / "out"), str(cache_dir))
    return root, root / "out" / "spec" / "master", report


def test_the_timeline_is_what_the_checks_below_assume(built):
    _, folder, report = built
    assert {s["id"]: (s["start_frame"], s["end_frame"]) for s in report["segments"]} == FRAMES
    info = ffprobe(folder / "episode.mp4")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"], int(video["nb_frames"])) == (1920, 1080, 690)


def test_master_measures_minus_24_lkfs_and_true_peak_under_minus_2_by_an_independent_meter(built):
    _, folder, report = built
    got = ebur128(folder / "episode.mp4")
    assert abs(got["I"] + 24) <= 1.0, got
    assert got["TP"] <= -2.0, got
    # a linear two-pass lands much closer than A/85's tolerance; without the pass this programme is at -25.5
    assert abs(got["I"] + 24) <= 0.5, got
    loud = json.loads((folder / "build.json").read_text())["loudness"]
    assert loud == report["loudness"]
    assert abs(loud["integrated_lufs"] - got["I"]) <= 0.2 and abs(loud["true_peak_dbtp"] - got["TP"]) <= 0.2
    assert loud["mode"] == "linear" and loud["loudnorm"]["normalization_type"] == "linear"
    # the programme needed the pass (else this test proves nothing), and the gains used are the ones it
    # needed: each act's own to -24, then the programme's for the little the acts' gains left
    assert loud["before"]["integrated_lufs"] < -25.0
    assert [(a["start_frame"], a["end_frame"]) for a in loud["acts"]] == [FRAMES["voice"], (240, 690)]
    for act in loud["acts"]:
        assert abs(act["gain_db"] - (-24 - act["before_lufs"])) <= 0.01
        assert abs(act["integrated_lufs"] + 24) <= 0.5
    assert abs(loud["gain_db"]) <= 0.5


def test_a_quiet_voice_is_not_buried_next_to_a_loud_song(built):
    _, folder, _ = built
    raw_voice = ebur128(corpus(VOICE), 1, 6)["I"]
    raw_song = ebur128(corpus(SONG), 0, 10)["I"]
    assert raw_song - raw_voice > 6  # as uploaded, the voice sits 7 LU under the song
    voice = ebur128(folder / "episode.mp4", seconds(FRAMES["voice"][0]), seconds(180))["I"]
    music = ebur128(folder / "episode.mp4", seconds(FRAMES["music"][0]), seconds(300))["I"]
    assert abs(voice - music) <= 4, (voice, music)


def test_chapters_start_at_zero_and_exactly_where_the_act_break_ends(built):
    _, folder, report = built
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters",
                          str(folder / "episode.mp4")], capture_output=True, text=True, check=True).stdout
    chapters = json.loads(out)["chapters"]
    assert [c["tags"]["title"] for c in chapters] == ["voice", "music"]
    tb = [Fraction(c["time_base"]) for c in chapters]
    starts = [int(c["start"]) * t for c, t in zip(chapters, tb)]
    ends = [int(c["end"]) * t for c, t in zip(chapters, tb)]
    assert starts == [0, FRAMES["break"][1] / RATE]  # the first frame after the act break, exactly
    assert ends == [FRAMES["break"][1] / RATE, 690 / RATE]
    assert report["act_breaks"] == [{"id": "break", "start_frame": 180, "end_frame": 240,
                                     "start": "00:00:06.006", "end": "00:00:08.008"}]


def test_the_moov_atom_comes_before_the_media_data(built):
    _, folder, _ = built
    atoms, data = [], (folder / "episode.mp4").read_bytes()
    at = 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        size = struct.unpack(">Q", data[at + 8:at + 16])[0] if size == 1 else size
        atoms.append(kind.decode())
        at += size
    assert atoms.index("moov") < atoms.index("mdat"), atoms


def test_qc_lists_the_black_stretch_but_not_the_act_break(built):
    _, folder, report = built
    qc = json.loads((folder / "qc.json").read_text())
    checks = qc["checks"]
    dark = FRAMES["dark"]
    for name in ("black", "freeze", "silence"):
        assert [(r["start"], r["end"], r["segments"]) for r in checks[name]["ranges"]] == [(*dark, ["dark"])], name
        assert checks[name]["passed"] is False
        listed = checks[name]["ranges"] + checks[name]["expected"]
        assert not any(r["start"] < FRAMES["break"][1] and r["end"] > FRAMES["break"][0] for r in listed), name
    # the card's house background is dark and still by design: listed as expected, never a failure
    assert [(r["start"], r["end"]) for r in checks["black"]["expected"]] == [FRAMES["end"]]
    assert checks["duration"]["passed"] and checks["duration"]["frames"] == 690
    assert checks["loudness"]["passed"] and checks["luma"]["passed"] and checks["flash"]["passed"]
    assert qc["passed"] is False
    assert report["qc"]["passed"] is False and report["qc"]["checks"]["black"]["passed"] is False
    assert report["qc"]["checks"]["loudness"]["passed"] is True


def test_strict_build_exits_3_on_a_qc_failure_and_0_without_strict(built, cache_dir, monkeypatch, capsys):
    root, folder, _ = built
    from flows.cli import main
    from render.core import ffmpeg

    argv = ["build", str(root / "spec.yaml"), "--profile", "master", "--out", str(root / "out"),
            "--cache", str(cache_dir)]
    assert main(argv + ["--strict"]) == 3
    err = capsys.readouterr().err
    assert re.search(r"FAIL\s+black\s+1 range: 00:00:18\.018-00:00:21\.021 \(dark\)", err), err
    qc_stamp = (folder / "qc.json").stat().st_mtime_ns
    episode_stamp = (folder / "episode.mp4").stat().st_mtime_ns
    calls: list[list[str]] = []
    real_run = ffmpeg.run
    monkeypatch.setattr(ffmpeg, "run", lambda argv, **kw: calls.append(argv) or real_run(argv, **kw))
    assert main(argv) == 0
    # nothing changed: no media work at all, and qc.json is reused as it was
    assert calls == []
    assert (folder / "qc.json").stat().st_mtime_ns == qc_stamp
    assert (folder / "episode.mp4").stat().st_mtime_ns == episode_stamp


def test_a_truncated_cached_piece_is_rendered_again(built, cache_dir):
    root, folder, _ = built
    pieces = [p for p in (cache_dir / "pieces" / "master").glob("*/*")
              if json.loads((p / "done.json").read_text())["segment"] == "music"]
    assert len(pieces) == 1
    video = pieces[0] / "video.mp4"
    intact = video.stat().st_size
    with open(video, "r+b") as f:
        f.truncate(intact // 2)
    from flows.pipeline import build_flow

    again = build_flow(str(root / "spec.yaml"), "master", str(root / "out"), str(cache_dir))
    assert again["pieces"]["rendered"] == 1 and again["pieces"]["cached"] == 4
    assert video.stat().st_size == intact
    assert int(next(s for s in ffprobe(video)["streams"])["nb_frames"]) == 300
    info = ffprobe(folder / "episode.mp4")
    assert int(next(s for s in info["streams"] if s["codec_type"] == "video")["nb_frames"]) == 690


def test_a_programme_linear_gain_cannot_level_is_limited_to_the_true_peak(tmp_path, cache_dir):
    """A voice memo whose one loud click caps its pre-levelling (-32 LUFS with a -1 dBTP peak): one gain
    to -24 would put the click 7 dB over the ceiling, so loudnorm would go dynamic; we limit instead."""
    from render.analysis import loudness
    from render.core.cache import Cache
    from render.core.house import profile
    from render.edit import plan
    from render.edit.timeline import Segment, Shot, Timeline
    from render.master import programme

    cache = Cache(cache_dir)
    src = source_of(corpus("aac_in_m4a_but_named.aac"), cache, "voice")
    shot = Shot("audio", 285, src.record.record_id, text="Memo", byline="Ana",  # 9.5 s: the click is at 8.3 s
                gain_db=plan.gain_db(loudness.measure_source(src, cache)))
    timeline = Timeline("Memo", RATE, (Segment("memo", "feature", 0, 285, (shot,)),))
    out = programme.render_timeline(timeline, {src.record.record_id: src}, profile("preview"), "blur", cache,
                                  tmp_path / "memo.mp4")
    got = ebur128(out)
    assert abs(got["I"] + 24) <= 1.0 and got["TP"] <= -2.0, got
    side = json.loads((tmp_path / ".memo.mp4.key").read_text())["loudness"]
    assert side["mode"] == "limited" and side["before"]["integrated_lufs"] < -30
    assert abs(side["integrated_lufs"] - got["I"]) <= 0.2


def test_a_preview_join_reports_the_level_pass_reading_without_decoding_the_file_again(tmp_path, cache_dir,
                                                                                       monkeypatch):
    """The preview's choice: no second decode of the programme after the join; the figures are the level
    pass's own reading of the sound it encoded, which agrees with an independent meter on the file."""
    from render.analysis import loudness
    from render.compose.pieces import pieces
    from render.compose.store import render_piece
    from render.core.cache import Cache
    from render.core.house import profile
    from render.edit import plan
    from render.edit.timeline import Segment, Shot, Timeline
    from render.master import programme

    cache, house = Cache(cache_dir), profile("preview")
    voice = source_of(corpus("librispeech_reading_vorbis_22k_mono.ogg"), cache, "voice")
    song = source_of(corpus("lets_go_fishin_song_vorbis_22k_mono.ogg"), cache, "music")
    shots = [Shot("audio", 150, s.record.record_id, text=s.record.title, byline="Ana",
                  gain_db=plan.gain_db(loudness.measure_source(s, cache))) for s in (voice, song)]
    timeline = Timeline("Preview", RATE, (Segment("a", "feature", 0, 150, (shots[0],)),
                                          Segment("b", "feature", 150, 150, (shots[1],))))
    sources = {voice.record.record_id: voice, song.record.record_id: song}
    rendered = [render_piece(p, sources, house, "blur", cache) for p in pieces(timeline)]

    def no_second_decode(*args, **kwargs):
        raise AssertionError("the preview re-measured the final file")

    monkeypatch.setattr(loudness, "measure_file", no_second_decode)
    joined = programme.join(rendered, house, tmp_path / "preview.mp4", level=True, verify=False)
    monkeypatch.undo()
    loud = joined.loudness
    assert loud["final_file_measured"] is False and loud["mode"] == "linear"
    got = ebur128(tmp_path / "preview.mp4")
    assert abs(loud["integrated_lufs"] - got["I"]) <= 0.3 and abs(got["I"] + 24) <= 1 and got["TP"] <= -2, (loud, got)
