"""NLE exports of a short programme (a card, a crossfaded montage under a ducked bed with lower thirds,
a feature, a dip to an end card), read back with OpenTimelineIO and its adapters and compared clip by
clip with build.json; the MLT export rendered by melt, an independent renderer, matches episode.mp4."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.callouts import write_callout
from tests.support.media import corpus, lavfi

RATE = Fraction(30000, 1001)
CLIPS = {"RED": 440, "BLUE": 1320, "GREEN": 660}  # record: tone Hz (pictures: testsrc2, moving)
SPEC = """\
title: "RE: Exports"
callout: callout
runtime: "22.022"
segments:
  - {id: open, type: card, text: "Exports", seconds: 3}
  - {id: mix, type: montage, shot_seconds: 5, transition: {type: crossfade, seconds: 1}, bed: M1,
     lower_third_seconds: 2, select: {records: [RED, BLUE], order: listed}}
  - {id: talk, type: feature, record: GREEN, seconds: 6, start: 0.5}
  - {id: end, type: card, text: "The End", seconds: 3, transition_in: "dip 1s"}
"""
FORMATS = ("otio", "otioz", "fcp7xml", "edl", "mlt")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, prefect_harness, cache_dir):
    root = tmp_path_factory.mktemp("exports")
    media = root / "media"
    media.mkdir()
    files = {}
    for n, (rid, hz) in enumerate(CLIPS.items()):
        files[f"m/{rid.lower()}.mp4"] = lavfi(
            media / f"{rid.lower()}.mp4",
            f"testsrc2=s=320x180:r=30000/1001:d=9,hue=h={n * 120}[out0];sine=f={hz}:d=9,volume=0.5[out1]",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest")
    files["m/fox.mp3"] = corpus("outfoxing_the_fox_music_mp3_44k_stereo.mp3")
    write_callout(root / "callout", [
        *({"record_id": rid, "file": f"m/{rid.lower()}.mp4", "kind": "video", "title": rid.title(),
           "contributors": "ana"} for rid in CLIPS),
        {"record_id": "M1", "file": "m/fox.mp3", "kind": "music", "title": "Outfoxing", "contributors": "cy"},
    ], [("ana", "Ana", "MX"), ("cy", "Cy", "IR")], files)
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    from flows.export import export_flow
    from flows.pipeline import build_flow

    build = build_flow(str(spec), "preview", str(root / "out"), str(cache_dir), export=("otio", "edl"))
    out = root / "export"
    paths = {fmt: Path(export_flow(str(spec), fmt, str(out), cache_root=str(cache_dir))) for fmt in FORMATS}
    paths["original"] = Path(export_flow(str(spec), "otio", str(root / "original"), media="original",
                                         cache_root=str(cache_dir), start_frame=107892))
    return build, root / "out" / "spec" / "preview" / "episode.mp4", paths, root


def _v1_expected(build: dict) -> list[dict]:
    """The shots V1 holds (black is a gap), with their programme frames."""
    out = []
    for seg in build["segments"]:
        at = seg["start_frame"]
        for shot in seg["shots"]:
            if shot["kind"] != "black":
                out.append({**shot, "at": at, "segment": seg["id"]})
            at += shot["frames"]
    return out


def _clips(track) -> list[tuple[int, int, int]]:
    """(programme frame, source in frame, frames) of every clip in the track."""
    return [(round(c.range_in_parent().start_time.value), round(c.source_range.start_time.value),
             round(c.source_range.duration.value)) for c in track.find_clips(shallow_search=True)]


def test_the_otio_timeline_is_the_cut(exported):
    build, _, paths, _ = exported
    tl = otio.adapters.read_from_file(str(paths["otio"]))
    frames = build["frames"]
    assert tl.global_start_time.rate == 30000 / 1001 and tl.global_start_time.value == 0
    assert [t.name for t in tl.tracks] == ["Picture", "Graphics", "Sound", "Music", "Music raw"]
    for track in tl.tracks:  # every track exactly the programme's length, at the house rate
        assert track.duration().value == frames and track.duration().rate == 30000 / 1001, track.name
    v1, v2, a1, a2, a3 = tl.tracks
    expected = _v1_expected(build)
    got = _clips(v1)
    assert [(g[0], g[2]) for g in got] == [(e["at"], e["frames"]) for e in expected]
    for clip, e in zip(v1.find_clips(shallow_search=True), expected):
        meta = clip.metadata["remixtv"]
        assert meta["kind"] == e["kind"] and meta["segment"] == e["segment"]
        if e["record"]:  # conformed media: frame N of the clip is source time N / rate
            assert meta["record"] == e["record"] and meta["contributors"][0]["credit_name"] == "Ana"
            lead = clip.media_reference.metadata["remixtv"]["lead_frames"]  # a pre-roll held, as we render it
            assert clip.source_range.start_time.value - lead == round(Fraction(e["source_in_s"]).limit_denominator(
                100000) * RATE)
            assert meta["released"] is True and "gain_db" in meta
        avail = clip.media_reference.available_range
        assert avail.start_time <= clip.source_range.start_time
        assert clip.source_range.end_time_exclusive() <= avail.end_time_exclusive()
        assert Path(otio.url_utils.filepath_from_url(clip.media_reference.target_url)).is_file()
    transitions = [t for t in v1 if isinstance(t, otio.schema.Transition)]
    want = [s["transition"] for s in expected if s.get("transition", {}).get("kind") == "crossfade"]
    assert [(t.in_offset.value, t.out_offset.value) for t in transitions] == \
        [(w["frames"] // 2, w["frames"] - w["frames"] // 2) for w in want]
    for t in transitions:  # centred on the cut where build.json has it
        assert round(t.range_in_parent().start_time.value + t.in_offset.value) in [w["cut_frame"] for w in want]
    # the lower thirds over the montage's shots, the shots' sound, the bed as mixed and raw (muted)
    labelled = [e for e in expected if e.get("lower_third_frames")]
    assert [(g[0], g[2]) for g in _clips(v2)] == [(e["at"], e["lower_third_frames"]) for e in labelled]
    assert all(c.media_reference.target_url.endswith(".mov") for c in v2.find_clips())
    assert [c.metadata["remixtv"]["record"] for c in a1.find_clips()] == \
        [e["record"] for e in expected if e["kind"] == "video"]
    mix = next(s for s in build["segments"] if s["id"] == "mix")
    for track, enabled in ((a2, True), (a3, False)):
        assert _clips(track) == [(mix["start_frame"], 0, mix["end_frame"] - mix["start_frame"])]
        assert track.enabled is enabled
    assert a2.find_clips()[0].metadata["remixtv"]["ducked"] is True
    names = {m.name: round(m.marked_range.start_time.value) for m in tl.tracks.markers}
    assert {s["id"]: s["start_frame"] for s in build["segments"]}.items() <= names.items()
    assert any(n.startswith("dip") for n in names)
    otioz = otio.adapters.read_from_file(str(paths["otioz"]))
    assert _clips(otioz.tracks[0]) == got and otioz.duration().value == frames


def test_a_build_writes_exports_beside_the_episode(exported):
    build, episode, paths, _ = exported
    beside = episode.parent / "export"
    assert build["exports"] == ["export/spec.otio", "export/spec.edl"]
    # the same cut as `remixtv export` writes: the same clips on the same tracks, the same EDL events
    ours, theirs = otio.adapters.read_from_file(str(beside / "spec.otio")), otio.adapters.read_from_file(
        str(paths["otio"]))
    assert [[(c.name, c.range_in_parent()) for c in t.find_clips()] for t in ours.tracks] == \
        [[(c.name, c.range_in_parent()) for c in t.find_clips()] for t in theirs.tracks]
    events = [[ln for ln in p.read_text().splitlines() if ln[:3].isdigit()] for p in (beside / "spec.edl", paths["edl"])]
    assert events[0] and events[0] == events[1]
    assert all((beside / "media" / Path(c.media_reference.target_url).name).exists()
               for c in ours.find_clips() if c.media_reference.target_url)


def test_original_media_points_at_the_uploads(exported):
    build, _, paths, root = exported
    tl = otio.adapters.read_from_file(str(paths["original"]))
    assert tl.global_start_time.to_timecode(tl.global_start_time.rate, True) == "01:00:00;00"  # after a leader
    v1 = tl.video_tracks()[0]
    expected = _v1_expected(build)
    for clip, e in zip(v1.find_clips(shallow_search=True), expected):
        if not e["record"]:
            continue
        path = Path(otio.url_utils.filepath_from_url(clip.media_reference.target_url))
        assert path == (root / "callout" / "m" / f"{e['record'].lower()}.mp4").resolve()
        avail = clip.media_reference.available_range  # the upload's own rate and length (9 s at 30000/1001)
        assert avail.duration.rate == 30000 / 1001 and avail.duration.value == 270
        assert clip.metadata["remixtv"]["gain_applied"] is False
        assert clip.source_range.start_time.value == round(Fraction(e["source_in_s"]).limit_denominator(
            100000) * RATE)
    assert all(t.duration().value == build["frames"] for t in tl.tracks)


def test_fcp7_xml_reads_back_linked(exported):
    build, _, paths, _ = exported
    xml = paths["fcp7xml"].read_text()
    tl = otio.adapters.read_from_file(str(paths["fcp7xml"]), adapter_name="fcp_xml")
    v1 = tl.video_tracks()[0]
    expected = _v1_expected(build)
    assert [(g[0], g[2]) for g in _clips(v1)] == [(e["at"], e["frames"]) for e in expected]
    assert [round(t.in_offset.value) for t in v1 if isinstance(t, otio.schema.Transition)] == [15]
    assert tl.video_tracks()[0].duration().value == build["frames"]
    # every shot with its own sound: its picture and sound items link to each other
    from xml.etree import ElementTree as ET

    root = ET.fromstring(xml)
    items = {i.get("id"): i for i in root.iter("clipitem")}
    video = [i for i in root.find(".//media/video").iter("clipitem")]
    linked = [i for i in video if i.find("link") is not None]
    assert len(linked) == sum(e["kind"] == "video" for e in expected) == 3
    for item in linked:
        refs = [items[link.findtext("linkclipref")] for link in item.findall("link")]
        assert {link.findtext("mediatype") for link in item.findall("link")} == {"video", "audio"}
        assert all(r.findtext("start") == item.findtext("start") for r in refs)


def test_fcp7_link_writes_the_files_real_timecode(exported):
    from render.deliver.exports import fcp7

    _, _, paths, _ = exported
    xml = fcp7.link(paths["fcp7xml"].read_text(), timecode_of=lambda p: "01:00:00;00" if "RED" in p.name else None)
    red = re.search(r"<pathurl>[^<]*RED\.mp4</pathurl>.*?<timecode>.*?</timecode>", xml, re.DOTALL).group(0)
    assert "<string>01:00:00;00</string>" in red and "<frame>107892</frame>" in red
    blue = re.search(r"<pathurl>[^<]*BLUE\.mp4</pathurl>.*?<timecode>.*?</timecode>", xml, re.DOTALL).group(0)
    assert "<string>00:00:00:00</string>" in blue


def test_the_edl_is_the_picture_track_with_record_reels(exported):
    build, _, paths, _ = exported
    text = paths["edl"].read_text()
    tl = otio.adapters.read_from_file(str(paths["edl"]), adapter_name="cmx_3600", rate=30000 / 1001)
    assert len(tl.tracks) == 1
    reels = re.findall(r"^\d{3}\s+(\S+)\s+V\s", text, re.MULTILINE)
    assert {"RED", "BLUE", "GREEN"} <= set(reels) and all(len(r) <= 8 for r in reels)
    assert re.search(r"^\d{3}\s+BLUE\s+V\s+D\s+030\s", text, re.MULTILINE)  # the crossfade from RED, all 30 frames
    assert round(tl.tracks[0].duration().value) == build["frames"]


def _ssim(a: Path, b: Path, tmp: Path) -> dict[int, float]:
    """SSIM of every frame of ``a`` against ``b``, both at 480x270 (ffmpeg's ssim filter, one pass)."""
    stats = tmp / "ssim.txt"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(a), "-i", str(b), "-lavfi",
                    f"[0:v]scale=480:270[a];[1:v]scale=480:270[b];[a][b]ssim=stats_file={stats}", "-f", "null", "-"],
                   check=True)
    found = re.findall(r"n:(\d+) .*All:([\d.]+)", stats.read_text())
    return {int(n) - 1: float(v) for n, v in found}


def _pcm(path: Path, rate: int = 8000) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).astype(np.float64)


def test_melt_renders_the_mlt_export_as_we_rendered_the_episode(exported, tmp_path):
    build, episode, paths, _ = exported
    out = tmp_path / "melt.mp4"
    subprocess.run(["melt", "-quiet", str(paths["mlt"]), "-consumer", f"avformat:{out}", "vcodec=libx264",
                    "preset=ultrafast", "acodec=pcm_s16le", "f=mov"], check=True, capture_output=True, timeout=600)
    ssim, figures = _ssim(out, episode, tmp_path), {}
    for e in _v1_expected(build):
        mid = e["at"] + e["frames"] // 2
        figures[f"{e['segment']}:{e['record'] or e['kind']}@{mid}"] = ssim[mid]
    dip = next(h["transition"]["cut_frame"] for s in build["segments"] for h in s["shots"]
               if h.get("transition", {}).get("kind") == "dip")
    figures[f"dip: out of the cut@{dip - 1}"] = ssim[dip - 1]  # down to black as we dip
    for h in (h for s in build["segments"] for h in s["shots"] if h.get("transition", {}).get("kind") == "crossfade"):
        cut = h["transition"]["cut_frame"]  # half of each picture, borrowed from the handles either side
        figures[f"crossfade: the cut@{cut}"] = ssim[cut]
    print("SSIM at each shot's middle frame:", json.dumps(figures))
    assert all(v >= 0.9 for v in figures.values()), figures
    # the sound: the lag that best lines melt's up with ours, from the cross-correlation of the two
    ours, theirs = _pcm(episode), _pcm(out)
    n = min(len(ours), len(theirs))
    ours, theirs = ours[:n], theirs[:n]
    spectrum = np.fft.rfft(ours, 2 * n) * np.conj(np.fft.rfft(theirs, 2 * n))
    xc = np.fft.irfft(spectrum)
    window = 4000  # half a second either way
    lags = np.concatenate([xc[-window:], xc[:window + 1]])
    lag = int(np.argmax(lags)) - window
    corr = float(lags.max() / np.sqrt(np.dot(ours, ours) * np.dot(theirs, theirs)))
    print(f"sound: melt vs episode lag {lag} samples at 8 kHz ({lag / 8000 * 1000:.1f} ms), correlation {corr:.2f}")
    assert abs(lag) <= 8000 / float(RATE) and corr > 0.5


def test_bad_input_is_one_line(tmp_path, capsys):
    from flows.cli import main

    assert main(["export", str(tmp_path / "x.yaml"), "--format", "fcpx"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "otio, otioz, fcp7xml, edl, mlt" in err[0]
    (tmp_path / "bad.yaml").write_text("title: x\ncallout: nowhere\nruntime: 1:00\nsegments:\n  - {id: a, type: nope}\n")
    assert main(["export", str(tmp_path / "bad.yaml"), "--format", "otio"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'bad.yaml'}:" in err and "nope" in err
