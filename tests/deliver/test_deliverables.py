"""The delivery of a short master: the network's ProRes mezzanine with its leader and timecode, the
YouTube file, and deliverables.json, measured in the files as a network's QC desk would."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from render.core.timebase import dropframe_frames, dropframe_timecode
from tests.support.callouts import write_callout
from tests.support.media import corpus, ffprobe

SPEC = """\
title: "RE: Delivery"
callout: callout
runtime: "0:20"
deliver:
  to: [network, web]
  leader: {bars: "00:59:54;00", slate: "00:59:55;00", black: "00:59:56;00", countdown: "00:59:56;15",
           pop: "00:59:58;00", programme: "01:00:00;00"}
segments:
  - {id: talk, type: montage, shot_seconds: 5, bed: M1, lower_third_seconds: 2,
     select: {records: [A1, V5], order: listed}}
  - {id: break, type: act_break, seconds: 1}
  - {id: tune, type: fill, bed: M1, select: {records: [V5], exclude_used: false}}
"""
LEADER_FRAMES = dropframe_frames("01:00:00;00") - dropframe_frames("00:59:54;00")  # 4 s of timecode
POP_FRAME = dropframe_frames("00:59:58;00") - dropframe_frames("00:59:54;00")
TAIL_FRAMES = 60
RATE = 30000 / 1001
RATE_FRACTION = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, cache_dir):
    root = tmp_path_factory.mktemp("deliver")
    write_callout(root / "callout", [
        {"record_id": "A1", "file": "m/reading.ogg", "kind": "voice", "title": "Reading", "contributors": "ana"},
        {"record_id": "V5", "file": "m/scenes.mp4", "kind": "video", "title": "Scènes", "contributors": "bo"},
        {"record_id": "M1", "file": "m/fox.mp3", "kind": "music", "title": "Outfoxing", "contributors": "cy:composer"},
    ], [("ana", "Ana", "MX"), ("bo", "Bo Chen", "CN"), ("cy", "Cy", "IR")],
        {"m/reading.ogg": corpus("librispeech_reading_vorbis_22k_mono.ogg"),
         "m/scenes.mp4": corpus("scene_cuts_h264_yuv444_1280x272_25fps.mp4"),
         "m/fox.mp3": corpus("outfoxing_the_fox_music_mp3_44k_stereo.mp3")})
    (root / "spec.yaml").write_text(SPEC)
    from flows.pipeline import build_flow

    build = build_flow(str(root / "spec.yaml"), "master", str(root / "out"), str(cache_dir))
    return build, root / "out" / "spec" / "master" / "deliver", root


def _pcm(path: Path, *args: str, channels: str = "c0") -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), *args, "-af", f"pan=mono|c0={channels}",
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).astype(np.float64)


def _frame(path: Path, index: int, fmt: str = "rgb24") -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})",
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", fmt, "-"], capture_output=True,
                         check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(1080, 1920, -1)


def _ebur128(path: Path, frames: tuple[int, int] | None = None, mix_of_four: bool = False) -> tuple[float, float]:
    """ffmpeg's ebur128 (integrated, true peak) over ``frames`` (all when None), cut by sample before
    the meter; ``mix_of_four``: on ch1-2 of a 4-channel file, the mix."""
    cut = (f"atrim=start_sample={round(frames[0] * 48000 / RATE)}:end_sample={round(frames[1] * 48000 / RATE)},"
           if frames else "")
    pan = "pan=stereo|c0=c0|c1=c1," if mix_of_four else ""
    said = subprocess.run(["ffmpeg", "-nostats", "-i", str(path), "-map", "0:a", "-af", f"{cut}{pan}ebur128=peak=true",
                           "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    summary = said[said.rindex("Summary:"):]
    return (float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1)),
            float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1)))


def test_the_mezzanine_is_prores_hq_with_drop_frame_timecode_and_four_channels_of_pcm(built):
    build, folder, _ = built
    info = ffprobe(folder / "mezzanine.mov")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    tmcd = next(s for s in info["streams"] if s.get("codec_tag_string") == "tmcd")
    assert video["codec_tag_string"] == "apch" and video["pix_fmt"] == "yuv422p10le"
    assert (video["width"], video["height"], video["r_frame_rate"]) == (1920, 1080, "30000/1001")
    assert (video["color_primaries"], video["color_transfer"], video["color_space"], video["color_range"]) == (
        "bt709", "bt709", "bt709", "tv")
    assert tmcd["tags"]["timecode"] == "00:59:54;00"  # ';': drop-frame
    assert (audio["codec_name"], audio["channels"], audio["sample_rate"], audio["bits_per_raw_sample"]) == (
        "pcm_s24le", 4, "48000", "24")
    assert int(video["nb_frames"]) == LEADER_FRAMES + build["frames"] + TAIL_FRAMES


def test_the_leader_has_bars_tone_at_minus_20_a_slate_and_a_one_frame_pop(built):
    _, folder, _ = built
    mez = folder / "mezzanine.mov"
    bars = _frame(mez, 10).astype(int)
    yellow, cyan, blue = bars[300, 548], bars[300, 754], bars[300, 1577]
    assert yellow[0] > 150 and yellow[1] > 150 and yellow[2] < 60, yellow
    assert cyan[0] < 60 and cyan[1] > 150 and cyan[2] > 150, cyan
    assert blue[2] > 150 and blue[0] < 60 and blue[1] < 60, blue
    tone = _pcm(mez, "-ss", "0.1", "-t", "0.8")
    assert abs(20 * np.log10(np.abs(tone).max()) + 20.0) < 0.1
    slate = _frame(mez, 45, "gray")[..., 0]
    assert (slate > 200).sum() > 2000  # the slate's words
    black = _frame(mez, 70, "gray")[..., 0]
    assert black.max() <= 20
    # the 2-pop: sound on exactly the one frame at 00:59:58;00, and a white flash on that frame alone
    leader = _pcm(mez, "-t", f"{LEADER_FRAMES / RATE:.6f}")
    loud = np.flatnonzero(np.abs(leader) > 0.01)
    pop = loud[loud > 48000 * 1.5]
    first, last = POP_FRAME * 48000 / RATE, (POP_FRAME + 1) * 48000 / RATE
    assert first - 1 <= pop.min() and pop.max() <= last + 1 and len(pop) > 1000
    assert 20 * np.log10(np.abs(leader[pop.min():pop.max()]).max()) == pytest.approx(-20.0, abs=0.1)
    for n, bright in ((POP_FRAME - 1, False), (POP_FRAME, True), (POP_FRAME + 1, False)):
        assert bool(_frame(mez, n, "gray").mean() > 200) is bright, n


def test_the_programme_is_at_minus_24_without_the_leader_and_ends_on_black(built):
    build, folder, _ = built
    mez = folder / "mezzanine.mov"
    start, seconds = LEADER_FRAMES / RATE, build["frames"] / RATE
    integrated, peak = _ebur128(mez, (LEADER_FRAMES, LEADER_FRAMES + build["frames"]), mix_of_four=True)
    assert abs(integrated + 24) <= 1.0 and peak <= -2.0
    tail = _frame(mez, LEADER_FRAMES + build["frames"] + 30, "gray")[..., 0]
    assert tail.max() <= 20
    after = _pcm(mez, "-ss", f"{start + seconds + 0.05:.6f}")
    assert len(after) > 48000 * 1.8 and np.abs(after).max() < 1e-4


def test_the_web_file_is_fast_start_without_edit_lists_and_has_chapters(built):
    build, folder, _ = built
    web = folder / "web.mp4"
    data = web.read_bytes()
    top, at = [], 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        top.append(kind.decode())
        at += size if size > 1 else struct.unpack(">Q", data[at + 8:at + 16])[0]
    assert top.index("moov") < top.index("mdat")
    moov_at = data.index(b"moov") - 4
    moov = data[moov_at:moov_at + struct.unpack(">I", data[moov_at:moov_at + 4])[0]]
    assert b"edts" not in moov and b"elst" not in moov
    info = ffprobe(web)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["profile"], video["pix_fmt"], int(video["nb_frames"])) == (
        "h264", "High", "yuv420p", build["frames"])
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)
    chapters = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(web)],
                                         capture_output=True, text=True, check=True).stdout)["chapters"]
    assert [c["tags"]["title"] for c in chapters] == ["talk", "tune"]
    keys = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=key_frame",
                           "-of", "csv=p=0", str(web)], capture_output=True, text=True, check=True).stdout.split()
    assert [i for i, k in enumerate(keys) if k.startswith("1")][:4] == [0, 15, 30, 45]
    integrated, _ = _ebur128(web)
    assert abs(integrated + 24) <= 1.0


def test_deliverables_json_indexes_every_file_with_its_md5(built):
    build, folder, _ = built
    index = json.loads((folder / "deliverables.json").read_text())
    assert [f["role"] for f in index["files"]] == ["mezzanine", "web", "cue-sheet", "cue-sheet"]
    for f in index["files"]:
        path = folder / f["path"]
        assert path.stat().st_size == f["size"]
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        assert f["md5"] == digest
        if f["role"] != "cue-sheet":
            assert (folder / f["md5_file"]).read_text() == f"{digest}  {f['path']}\n"
    assert build["deliver"]["index"] == "deliver/deliverables.json"


def test_a_rerun_reuses_complete_deliverables(built):
    _, folder, root = built
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.suffix in (".mov", ".mp4")}
    from flows.pipeline import build_flow

    build_flow(str(root / "spec.yaml"), "master", str(root / "out"), None, deliver="network,web")
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.suffix in (".mov", ".mp4")} == before


def test_too_little_disk_space_is_one_line_saying_how_much_and_where(tmp_path, monkeypatch):
    import shutil

    from render.core.errors import UserError
    from render.deliver import deliverables

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12 - 10**9, 10**9))
    with pytest.raises(UserError) as caught:
        deliverables._check_space(tmp_path, 36 * 10**9)
    assert caught.value.problems == [(f"not enough disk space for the delivery: it needs 36.0 GB in {tmp_path}, "
                                      f"1.0 GB is free")]


def test_the_mezzanines_encode_has_time_for_its_leader_and_tail(tmp_path, monkeypatch):
    # a 14 s programme behind the 90 s leader is 106 s of ProRes: its time limit grew with the programme
    # alone (880 s), which a loaded 2-core machine ran past
    from types import SimpleNamespace

    from render.core.house import PROFILES
    from render.deliver import deliverables
    from render.deliver.source import Programme

    house = PROFILES["master"]
    timeline = SimpleNamespace(title="RE: Kills", segments=[], frames=420)
    job, = deliverables._jobs(timeline, Programme((), "anull", 420, 672672), house, deliverables.request(("network",)))
    limits = []

    def run(argv, timeout_s, **_):
        limits.append(timeout_s)
        Path(argv[-1]).write_bytes(b"mov")

    monkeypatch.setattr(deliverables.ffmpeg, "run", run)
    job = dataclasses.replace(job, write=lambda out, work: [str(out)], check=None)
    deliverables._make(tmp_path, job, SimpleNamespace(frames=420), house)
    leader = deliverables.leader_mod.Leader()
    assert limits == [pytest.approx(600 + 20 * (leader.frames + 420 + 60) * 1001 / 30000)]  # 2 s of tail


def test_the_cue_sheet_lists_each_music_use_on_the_programme_clock(built):
    build, folder, _ = built
    segments = {s["id"]: s for s in build["segments"]}
    with open(folder / "cue_sheet.csv", newline="", encoding="utf-8") as f:
        import csv

        cues = list(csv.DictReader(f))
    start = dropframe_frames("01:00:00;00")

    assert [(c["record"], c["use"], c["in"], c["out"]) for c in cues] == [
        ("M1", "background", "01:00:00;00", dropframe_timecode(start + segments["talk"]["end_frame"])),
        ("M1", "background", dropframe_timecode(start + segments["tune"]["start_frame"]),
         dropframe_timecode(start + segments["tune"]["end_frame"]))]
    assert all(c["title"] == "Outfoxing" and c["contributors"] == "Cy (composer)" for c in cues)
    assert "Outfoxing" in (folder / "cue_sheet.html").read_text()
    index = json.loads((folder / "deliverables.json").read_text())
    assert {f["path"] for f in index["files"] if f["role"] == "cue-sheet"} == {"cue_sheet.csv", "cue_sheet.html"}


def test_one_continuous_use_is_one_cue_and_a_remix_credits_its_lineage(tmp_path):
    from render.callout.folder import load_callout
    from render.deliver import cuesheet
    from render.edit.timeline import Bed, Segment, Shot, Timeline

    callout = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "M1", "file": "m/a.mp3", "kind": "music", "title": "Remix", "contributors": "hana:producer",
         "remix_of": "J0"},
        {"record_id": "J0", "file": "m/a.mp3", "kind": "music", "title": "Upstream", "contributors": "jo:composer"},
        {"record_id": "A1", "file": "m/a.mp3", "kind": "voice", "title": "Talk", "contributors": "jo"},
    ], [("hana", "花子", "JP"), ("jo", "Jo Upstream", "NZ")],
        {"m/a.mp3": corpus("outfoxing_the_fox_music_mp3_44k_stereo.mp3")}))
    rate = RATE_FRACTION
    under = Bed("M1", mix="under")
    timeline = Timeline("T", rate, (
        Segment("a", "montage", 0, 90, (Shot("audio", 90, "A1"),), bed=under),
        Segment("b", "montage", 90, 60, (Shot("audio", 60, "A1"),), bed=under),
        Segment("c", "card", 150, 30, (Shot("card", 30),)),
        Segment("d", "feature", 180, 45, (Shot("audio", 45, "J0"),))))
    rows = cuesheet.rows(timeline, callout)
    assert [(r["record"], r["use"], r["in"], r["out"], r["duration"]) for r in rows] == [
        ("M1", "background", "00:00:00;00", "00:00:05;00", "00:00:05;00"),
        ("J0", "visual vocal", "00:00:06;00", "00:00:07;15", "00:00:01;15")]
    assert rows[0]["contributors"] == "花子 (producer)"
    assert rows[0]["remixes"] == "Upstream (J0) by Jo Upstream (composer), via M1 > J0"


def test_the_mezzanine_qc_checks_leader_timecode_and_each_act(built):
    build, folder, _ = built
    segments = {s["id"]: s for s in build["segments"]}
    index = json.loads((folder / "deliverables.json").read_text())
    report = next(f for f in index["files"] if f["role"] == "mezzanine")["qc"]
    assert report["timecode"]["passed"] and report["timecode"]["start"] == "00:59:54;00"
    assert report["bars"]["passed"] and report["black"]["passed"]
    assert all(abs(d + 20) <= 0.1 for d in report["tone"]["peak_dbfs"])
    assert report["pop"]["passed"] and report["pop"]["at"] == "00:59:58;00"
    assert [a["in"] for a in report["acts"]] == ["01:00:00;00", dropframe_timecode(
        dropframe_frames("01:00:00;00") + next(s["start_frame"] for s in build["segments"] if s["id"] == "tune"))]
    # each act measured again here, independently, on ch1-2 of the delivered file
    acts = [(0, segments["break"]["start_frame"]), (segments["tune"]["start_frame"], build["frames"])]
    for act, (a, b) in zip(report["acts"], acts):
        integrated, _ = _ebur128(folder / "mezzanine.mov", (LEADER_FRAMES + a, LEADER_FRAMES + b), mix_of_four=True)
        assert act["integrated_lufs"] == pytest.approx(integrated, abs=0.3)
        assert act["passed"] is (abs(act["integrated_lufs"] + 24) <= 1.0)
        assert act["short_term_range_lu"] >= 0
    assert index["qc_passed"] is report["passed"]


def test_drop_frame_timecode_skips_two_labels_a_minute_except_every_tenth():
    assert dropframe_frames("01:00:00;00") == 107892
    assert dropframe_frames("00:01:00;02") == 1800 and dropframe_timecode(1800) == "00:01:00;02"
    assert dropframe_timecode(17982) == "00:10:00;00"
    assert all(dropframe_frames(dropframe_timecode(n)) == n for n in range(0, 120_000, 37))
    with pytest.raises(ValueError):
        dropframe_frames("00:01:00;00")  # dropped: this label does not exist


def test_the_spec_and_the_flag_say_what_to_deliver(tmp_path):
    from render.core.errors import SpecError, UserError
    from render.deliver.deliverables import targets as delivery_targets
    from render.edit.spec import load_spec

    def spec(deliver: str):
        (tmp_path / "s.yaml").write_text(f"title: T\ncallout: c\nruntime: 10\n{deliver}\n"
                                         "segments:\n  - {id: a, type: card, text: hi, seconds: 10}\n")
        return load_spec(tmp_path / "s.yaml")

    assert spec("deliver: web, network").deliver == ("network", "web")
    loaded = spec("deliver: {to: [network], leader: {bars: '00:59:00;02'}}")
    assert loaded.deliver == ("network",) and loaded.leader == (("bars", "00:59:00;02"),)
    assert delivery_targets(loaded, "master", None) == ("network",)
    assert delivery_targets(loaded, "master", "web") == ("web",)  # the flag overrides the spec
    with pytest.raises(SpecError, match="tape is not a delivery target"):
        spec("deliver: [network, tape]")
    with pytest.raises(SpecError, match="deliver.leader.pop"):
        spec("deliver: {to: network, leader: {pop: '00:59:58'}}")
    with pytest.raises(UserError, match="build with --profile master"):
        delivery_targets(loaded, "preview", None)
    with pytest.raises(UserError, match="dvd is not a delivery target"):
        delivery_targets(loaded, "master", "web,dvd")
