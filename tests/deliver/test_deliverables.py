"""The delivery of a short master: the network's ProRes mezzanine with its CEA-608 captions and the
XDCAM HD422 MXF, with their leader, timecode and M&E, the dialogue, music and effects stems, the YouTube
file with its subtitle track, and deliverables.json, measured in the files as a network's QC desk would;
and the master levelled act by act."""

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

from render.core.timebase import dropframe_frames, dropframe_timecode, samples_for
from tests.support.callouts import write_callout
from tests.support.media import corpus, ffprobe

SPEC = """\
title: "RE: Delivery"
callout: callout
runtime: "0:20"
deliver:
  to: [network, xdcam, web]
  leader: {bars: "00:59:54;00", slate: "00:59:55;00", black: "00:59:56;00", countdown: "00:59:56;15",
           pop: "00:59:58;00", programme: "01:00:00;00"}
segments:
  - {id: talk, type: montage, shot_seconds: 5, bed: M1, lower_third_seconds: 2,
     select: {records: [A1, T1], order: listed, exclude_used: false}}
  - {id: hello, type: feature, record: A1, start: 6, seconds: 3, transition_in: crossfade 0.5s}
  - {id: break, type: act_break, seconds: 1}
  - {id: tune, type: fill, bed: M1, select: {records: [V5], exclude_used: false}}
"""
SPEECH_AT = 3.0  # T1, the talking phone clip: pink-noise ambience, then a reading over it from 3 s
LEADER_FRAMES = dropframe_frames("01:00:00;00") - dropframe_frames("00:59:54;00")  # 6 s of timecode
POP_FRAME = dropframe_frames("00:59:58;00") - dropframe_frames("00:59:54;00")
TAIL_FRAMES = 60
RATE = 30000 / 1001
RATE_FRACTION = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, cache_dir):
    root = tmp_path_factory.mktemp("deliver")
    talking = root / "talk.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=9",
                    "-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.05:d=9:r=48000",
                    "-i", str(corpus("librispeech_reading2_vorbis_22k_mono.ogg")), "-filter_complex",
                    (f"[2:a]aresample=48000,adelay={SPEECH_AT * 1000:.0f},apad[sp];"
                     "[1:a][sp]amix=inputs=2:duration=first:normalize=0[a]"),
                    "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", str(talking)], check=True)
    write_callout(root / "callout", [
        {"record_id": "A1", "file": "m/reading.ogg", "kind": "voice", "title": "Reading", "contributors": "ana"},
        {"record_id": "V5", "file": "m/scenes.mp4", "kind": "video", "title": "Scènes", "contributors": "bo"},
        {"record_id": "M1", "file": "m/fox.mp3", "kind": "music", "title": "Outfoxing", "contributors": "cy:composer"},
        {"record_id": "T1", "file": "m/talk.mp4", "kind": "video", "title": "Talk", "contributors": "bo"},
    ], [("ana", "Ana", "MX"), ("bo", "Bo Chen", "CN"), ("cy", "Cy", "IR")],
        {"m/reading.ogg": corpus("librispeech_reading_vorbis_22k_mono.ogg"),
         "m/scenes.mp4": corpus("scene_cuts_h264_yuv444_1280x272_25fps.mp4"),
         "m/fox.mp3": corpus("outfoxing_the_fox_music_mp3_44k_stereo.mp3"), "m/talk.mp4": talking})
    (root / "spec.yaml").write_text(SPEC)
    from flows.pipeline import build_flow

    build = build_flow(str(root / "spec.yaml"), "master", str(root / "out"), str(cache_dir))
    return build, root / "out" / "spec" / "master" / "deliver", root


def _acts(build: dict) -> list[tuple[int, int]]:
    """The test programme's two acts, in programme frames: talk, then (after the break) tune."""
    segments = {s["id"]: s for s in build["segments"]}
    return [(0, segments["break"]["start_frame"]), (segments["tune"]["start_frame"], build["frames"])]


def _pcm(path: Path, *args: str, channels: str = "c0") -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), *args, "-af", f"pan=mono|c0={channels}",
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).astype(np.float64)


def _frame(path: Path, index: int, fmt: str = "rgb24") -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})",
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", fmt, "-"], capture_output=True,
                         check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(1080, 1920, -1)


def _ebur128(path: Path, frames: tuple[int, int] | None = None, mix_of_four: bool = False,
             mono_tracks: bool = False) -> tuple[float, float]:
    """ffmpeg's ebur128 (integrated, true peak) over ``frames`` (all when None), cut by sample before
    the meter; ``mix_of_four``: on ch1-2 of a 4-channel file, the mix; ``mono_tracks``: on the first
    two mono tracks (an MXF's), the mix."""
    cut = (f"atrim=start_sample={round(frames[0] * 48000 / RATE)}:end_sample={round(frames[1] * 48000 / RATE)},"
           if frames else "")
    pick = ("[0:a:0][0:a:1]amerge=inputs=2," if mono_tracks else
            "[0:a]pan=stereo|c0=c0|c1=c1," if mix_of_four else "[0:a]")
    said = subprocess.run(["ffmpeg", "-nostats", "-i", str(path), "-filter_complex",
                           f"{pick}{cut}ebur128=peak=true[m]", "-map", "[m]", "-f", "null", "-"],
                          capture_output=True, text=True, check=True).stderr
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
    assert float(video["start_time"]) == float(audio["start_time"]) == 0  # picture and sound start together
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
    assert [f["role"] for f in index["files"]] == ["mezzanine", "xdcam", "stem-dx", "stem-mx", "stem-fx", "web",
                                                   "cue-sheet", "cue-sheet", "captions-scc", "captions-srt",
                                                   "captions-vtt"]
    for f in index["files"]:
        path = folder / f["path"]
        assert path.stat().st_size == f["size"]
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        assert f["md5"] == digest
        if f["role"] in ("mezzanine", "web"):
            assert (folder / f["md5_file"]).read_text() == f"{digest}  {f['path']}\n"
        if f["role"].startswith("captions-"):  # the captions beside the episode, as they are
            assert path.read_bytes() == (folder.parent / f["path"]).read_bytes()
            assert f["captions"] == build["captions"]["captions"] > 0
    assert build["deliver"]["index"] == "deliver/deliverables.json"
    files = {f["role"]: f for f in index["files"]}
    assert files["captions-scc"]["start_timecode"] == "01:00:00;00"
    # the caption tracks, as ffprobe reads them from each file
    assert [(s["codec"], s["tag"], s["language"]) for s in files["mezzanine"]["streams"] if s["type"] == "subtitle"
            ] == [("eia_608", "c608", "eng")]
    assert [(s["codec"], s["tag"], s["language"]) for s in files["web"]["streams"] if s["type"] == "subtitle"
            ] == [("mov_text", "tx3g", "eng")]
    assert files["mezzanine"]["captions"] == {"track": "c608", "language": "eng", "from": "captions.scc",
                                              "captions": build["captions"]["captions"]}
    assert files["web"]["captions"]["track"] == "mov_text" and files["web"]["captions"]["from"] == "captions.srt"


def _packets(path: Path) -> list[tuple[float, int]]:
    """(time in s, bytes) of each packet of the file's subtitle stream."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "s", "-show_entries", "packet=pts_time,size",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return [(float(p["pts_time"]), int(p["size"])) for p in json.loads(out)["packets"]]


def _packet_md5s(path: Path) -> list[str]:
    """The MD5 of each caption packet's bytes, as ffmpeg demuxes them."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:s:0", "-c", "copy", "-f", "framemd5",
                          "-"], capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]


def _words(text: str) -> list[str]:
    """The words of caption text, without the font, position and hard-space marks ffmpeg's 608 reader adds."""
    return re.sub(r"[^a-z' ]", " ", re.sub(r"<[^>]*>|\{[^}]*\}|\\h", " ", text).lower()).split()


def _srt_words(text: str) -> list[str]:
    return _words(" ".join(line for line in text.splitlines() if not re.match(r"^\d+$|^\d\d:", line)))


def test_the_mezzanine_carries_the_scc_as_cea_608_on_the_programme_s_frames(built):
    build, folder, _ = built
    episode = folder.parent
    doc = json.loads((episode / "captions.json").read_text())
    assert doc["start_timecode"] == "01:00:00;00" and build["captions"]["start_timecode"] == "01:00:00;00"
    programme = dropframe_frames("01:00:00;00")
    # captions.scc is on the leader's programme clock: each caption is sent one code word a frame from
    # its line's timecode, and goes up on the frame after its last (EOC), its programme frame
    lines = [line.split("\t") for line in (episode / "captions.scc").read_text().splitlines() if "\t" in line]
    shows = [(dropframe_frames(tc), len(words.split())) for tc, words in lines if "942f" in words]
    assert [at + n - programme for at, n in shows] == [c["start_frame"] for c in doc["cues"]]
    mez = folder / "mezzanine.mov"
    info = ffprobe(mez)
    # the one pass adds the captions beside the picture, the sound and the timecode, which stay as they were
    assert [(s["codec_type"], s["codec_tag_string"]) for s in info["streams"]] == [
        ("video", "apch"), ("audio", "in24"), ("subtitle", "c608"), ("data", "tmcd")]
    c608 = info["streams"][2]
    assert c608["codec_name"] == "eia_608" and c608["tags"]["language"] == "eng"
    # every line of the SCC is one packet, stream-copied, at its timecode's frame after the leader
    packets = _packets(mez)
    assert len(packets) == len(lines)
    frame = 1 / RATE
    for (seconds, _), (tc, _) in zip(packets, lines):
        assert abs(seconds - (LEADER_FRAMES + dropframe_frames(tc) - programme) / RATE) < frame / 2, (seconds, tc)
    n = shows[0][1]
    assert abs(packets[0][0] + n * frame - (LEADER_FRAMES + doc["cues"][0]["start_frame"]) / RATE) < frame / 2
    assert _packet_md5s(mez) == _packet_md5s(episode / "captions.scc")
    # ffmpeg's 608 decoder reads the captions' words back out of the mezzanine
    said = subprocess.run(["ffmpeg", "-v", "error", "-i", str(mez), "-map", "0:s:0", "-f", "srt", "-"],
                          capture_output=True, text=True, check=True).stdout
    assert _srt_words(said) == _srt_words((episode / "captions.srt").read_text()) != []


def test_the_web_file_carries_the_captions_as_an_english_subtitle_track(built):
    build, folder, _ = built
    web = folder / "web.mp4"
    info = ffprobe(web)
    subs = [s for s in info["streams"] if s["codec_type"] == "subtitle"]
    assert [(s["codec_name"], s["tags"]["language"]) for s in subs] == [("mov_text", "eng")]
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    cues = json.loads((folder.parent / "captions.json").read_text())["cues"]
    shown = [t for t, size in _packets(web) if size > 2]  # 2 bytes: an empty sample between captions
    # programme time (no leader), on the picture's clock (its first frame's time is where the programme starts)
    starts = [t - float(video["start_time"]) for t in shown]
    assert len(starts) == len(cues) == build["captions"]["captions"]
    assert all(abs(t - c["start_frame"] / RATE) < 0.5 / RATE for t, c in zip(starts, cues)), (starts, cues)
    said = subprocess.run(["ffmpeg", "-v", "error", "-i", str(web), "-map", "0:s:0", "-f", "srt", "-"],
                          capture_output=True, text=True, check=True).stdout
    assert _srt_words(said) == _srt_words((folder.parent / "captions.srt").read_text())


def test_qc_json_reports_the_captions(built):
    _, folder, _ = built
    qc = json.loads((folder.parent / "qc.json").read_text())
    doc = json.loads((folder.parent / "captions.json").read_text())
    assert qc["captions"] == {
        "file": "captions.json", "captions": len(doc["cues"]), "speech_seconds": doc["speech_seconds"],
        "unreviewed": doc["unreviewed"], "checks": {c["check"]: c["verdict"] for c in doc["qc"]},
        "passed": all(c["verdict"] == "pass" for c in doc["qc"])}
    assert qc["captions"]["unreviewed"] == ["A1", "T1"] and qc["captions"]["speech_seconds"]["recognition"] > 1
    assert set(qc["checks"]) == {"duration", "loudness", "black", "freeze", "silence", "luma", "flash"}


def test_new_words_remake_the_mezzanine_and_the_web_file_and_nothing_else_does(tmp_path):
    from render.compose.store import RenderedPiece
    from render.core.house import profile
    from render.deliver import deliverables
    from render.deliver.captions.files import Written
    from render.deliver.source import Programme
    from render.edit.timeline import Segment, Shot, Timeline

    timeline = Timeline("T", RATE_FRACTION, (Segment("a", "card", 0, 30, (Shot("card", 30),)),))
    piece = RenderedPiece("a", "piece-key", tmp_path / "v.mp4", tmp_path / "a.wav", 30, True)
    prog = Programme((piece,), "anull", 30, 48048)
    request = deliverables.request(("network", "web"))
    for name, text in (("captions.scc", "Scenarist_SCC V1.0\n"), ("captions.srt", "1\n"), ("captions.vtt", "WEBVTT\n")):
        (tmp_path / name).write_text(text)
    written = Written(tmp_path / "captions.scc", tmp_path / "captions.srt", tmp_path / "captions.vtt",
                      "01:00:00;00", 1)

    def keys(captions=written) -> dict[str, str]:  # the files that carry captions (the stems do not)
        return {j.name: j.key for j in deliverables._jobs(timeline, prog, profile("master"), request, captions)
                if j.name in ("mezzanine.mov", "web.mp4")}

    first = keys()
    assert keys() == first
    (tmp_path / "captions.scc").write_text("Scenarist_SCC V1.0\n\n01:00:00;00\t942c 942c\n")
    assert keys()["mezzanine.mov"] != first["mezzanine.mov"] and keys()["web.mp4"] == first["web.mp4"]
    (tmp_path / "captions.srt").write_text("2\n")
    assert keys()["web.mp4"] != first["web.mp4"]
    assert set(keys(None).values()).isdisjoint(keys().values())
    assert deliverables.programme_timecode(request) == "01:00:00;00"
    assert deliverables.programme_timecode(deliverables.request(("web",))) == "00:00:00;00"


def test_a_rerun_reuses_complete_deliverables(built):
    _, folder, root = built
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.suffix in (".mov", ".mxf", ".mp4")}
    from flows.pipeline import build_flow

    build_flow(str(root / "spec.yaml"), "master", str(root / "out"), None, deliver="network,xdcam,web")
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.suffix in (".mov", ".mxf", ".mp4")} == before
    assert len(before) == 3


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
    job = next(j for j in deliverables._jobs(timeline, Programme((), "anull", 420, 672672), house,
                                             deliverables.request(("network",))) if j.role == "mezzanine")
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
    index = json.loads((folder / "deliverables.json").read_text())
    report = next(f for f in index["files"] if f["role"] == "mezzanine")["qc"]
    tc = report["timecode"]
    assert tc["passed"] and tc["start"] == "00:59:54;00" and tc["drop_frame"]
    assert tc["programme_first_frame"] == "01:00:00;00" and tc["breaks"] == [] and tc["timecode_runs"] == 1
    assert tc["frames"] == tc["expected_frames"] == LEADER_FRAMES + build["frames"] + TAIL_FRAMES
    assert tc["last_frame"] == dropframe_timecode(dropframe_frames("00:59:54;00") + tc["frames"] - 1)
    assert report["bars"]["passed"] and report["black"]["passed"]
    assert all(abs(d + 20) <= 0.1 for d in report["tone"]["peak_dbfs"])
    assert report["pop"]["passed"] and report["pop"]["at"] == "00:59:58;00"
    assert [a["in"] for a in report["acts"]] == ["01:00:00;00", dropframe_timecode(
        dropframe_frames("01:00:00;00") + next(s["start_frame"] for s in build["segments"] if s["id"] == "tune"))]
    # each act measured again here, independently, on ch1-2 of the delivered file: each within 1 dB of -24
    for act, (a, b) in zip(report["acts"], _acts(build), strict=True):
        integrated, _ = _ebur128(folder / "mezzanine.mov", (LEADER_FRAMES + a, LEADER_FRAMES + b), mix_of_four=True)
        assert abs(integrated + 24) <= 1.0, (act, integrated)
        assert act["integrated_lufs"] == pytest.approx(integrated, abs=0.3)
        assert act["passed"] and 0 < act["short_term_range_lu"] < 20
    assert report["passed"] and index["qc_passed"]


def test_the_master_levels_each_act_with_a_gain_that_steps_inside_the_act_break(built):
    build, folder, root = built
    loud = build["loudness"]
    acts = loud["acts"]
    segments = {s["id"]: s for s in build["segments"]}
    # the voice act is ~7 LU louder than the clip act (one gain for both put them at -21.4 and -29.1):
    # the quiet act gets that much more gain
    assert [(a["start_frame"], a["end_frame"]) for a in acts] == _acts(build)
    assert acts[0]["before_lufs"] - acts[1]["before_lufs"] > 5
    assert acts[1]["gain_db"] - acts[0]["gain_db"] == pytest.approx(acts[0]["before_lufs"] - acts[1]["before_lufs"],
                                                                     abs=0.02)
    assert acts[0]["gain_from_s"] == 0
    gap = (segments["break"]["start_frame"] / RATE, segments["break"]["end_frame"] / RATE)
    assert gap[0] < acts[1]["gain_from_s"] < gap[1]
    # the episode (AAC) act by act, as build.json reports it and as measured here, and the whole
    episode = root / "out" / "spec" / "master" / "episode.mp4"
    for act, (a, b) in zip(acts, _acts(build), strict=True):
        integrated, _ = _ebur128(episode, (a, b))
        assert abs(integrated + 24) <= 1.0 and act["integrated_lufs"] == pytest.approx(integrated, abs=0.3)
        assert 0 < act["short_term_range_lu"] < 20
    integrated, peak = _ebur128(episode)
    assert abs(integrated + 24) <= 1.0 and peak <= -2.0
    assert abs(loud["integrated_lufs"] + 24) <= 1.0 and loud["true_peak_dbtp"] <= -2.0
    # the deliverables re-apply the same gains: the mezzanine's acts read as the episode's
    mezzanine = next(f for f in json.loads((folder / "deliverables.json").read_text())["files"]
                     if f["role"] == "mezzanine")["qc"]["acts"]
    assert [m["integrated_lufs"] for m in mezzanine] == pytest.approx([a["integrated_lufs"] for a in acts], abs=0.3)


def test_act_gains_step_on_a_piece_boundary_inside_a_short_break(tmp_path):
    """Two tone pieces either side of a 2-frame silent break: every sample of the first piece gets the
    first act's gain, every sample of the second the second's (the step falls inside the break)."""
    from render.master.level import act_chain

    n_tone, n_break = 48000 + 77, 3203  # odd sizes: the pieces' frames do not line up with 1024-sample blocks
    listing = tmp_path / "list.txt"
    entries = []
    for i, (src, n) in enumerate([("sine=f=440:r=48000", n_tone), ("anullsrc=r=48000:cl=mono", n_break),
                                  ("sine=f=440:r=48000", n_tone)]):
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"{src},atrim=end_sample={n}",
                        "-c:a", "pcm_f32le", str(tmp_path / f"p{i}.wav")], check=True)
        entries.append(f"file '{tmp_path / f'p{i}.wav'}'\n")
    listing.write_text("".join(entries))
    middle = (n_tone + n_break / 2) / 48000
    chain = act_chain([(0.0, -3.0), (middle, 5.0)])
    raw = _pcm_of(["-f", "concat", "-safe", "0", "-i", str(listing)], "anull")
    got = _pcm_of(["-f", "concat", "-safe", "0", "-i", str(listing)], chain)
    assert len(raw) == len(got) == 2 * n_tone + n_break
    loud = np.abs(raw) > 1e-3
    first, second = loud & (np.arange(len(raw)) < n_tone), loud & (np.arange(len(raw)) >= n_tone + n_break)
    assert np.allclose(got[first] / raw[first], 10 ** (-3 / 20), rtol=1e-5)
    assert np.allclose(got[second] / raw[second], 10 ** (5 / 20), rtol=1e-5)


def _pcm_of(inputs: list[str], chain: str) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", *inputs, "-af", chain, "-f", "f32le", "-acodec", "pcm_f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).astype(np.float64)


def _tiny_mov(path: Path, start: str, setpts: str = "N") -> Path:
    """120 small frames at 30000/1001 with a timecode track starting at ``start``; ``setpts`` stamps them."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=64x36:r=30000/1001:d=4.004",
                    "-vf", f"settb=1001/30000,setpts={setpts}", "-fps_mode", "passthrough", "-c:v", "mpeg4",
                    "-timecode", start, "-video_track_timescale", "30000", str(path)], check=True)
    return path


def test_the_timecode_check_fails_a_wrong_start_and_a_break_in_the_frames(tmp_path):
    from render.deliver import qc
    from render.deliver.leader import Leader

    # a 30-frame leader, 30 frames of programme, the 60-frame tail: 120 frames
    ld = Leader(bars="00:59:59;00", slate="00:59:59;05", black="00:59:59;10", countdown="00:59:59;15",
                pop="00:59:59;20", programme="01:00:00;00")
    good = qc.timecode(_tiny_mov(tmp_path / "good.mov", "00:59:59;00"), ld, 30, RATE_FRACTION)
    assert good["passed"] and good["programme_first_frame"] == "01:00:00;00" and good["frames"] == 120
    wrong = qc.timecode(_tiny_mov(tmp_path / "wrong.mov", "00:59:58;00"), ld, 30, RATE_FRACTION)
    assert not wrong["passed"] and wrong["start"] == "00:59:58;00" and wrong["programme_first_frame"] == "00:59:59;00"
    non_drop = qc.timecode(_tiny_mov(tmp_path / "ndf.mov", "00:59:59:00"), ld, 30, RATE_FRACTION)
    assert not non_drop["passed"] and not non_drop["drop_frame"]
    # frame 50 stamped one frame late: the count is right, the timecode has a hole
    broken = qc.timecode(_tiny_mov(tmp_path / "gap.mov", "00:59:59;00", "N+gte(N\\,50)"), ld, 30, RATE_FRACTION)
    assert not broken["passed"] and broken["frames"] == 120
    assert broken["breaks"] == [{"after_frame": 49, "at": "01:00:00;20"}]
    short = qc.timecode(_tiny_mov(tmp_path / "short.mov", "00:59:59;00"), ld, 31, RATE_FRACTION)
    assert not short["passed"] and short["expected_frames"] == 121


def test_the_xdcam_file_is_mpeg2_422_at_50_mbps_in_mxf_op1a_with_the_same_leader_and_sound(built):
    build, folder, _ = built
    mxf = folder / "xdcam.mxf"
    info = ffprobe(mxf)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert info["format"]["format_name"] == "mxf"
    assert info["format"]["tags"]["operational_pattern_ul"] == "060e2b34.04010101.0d010201.01010900"  # OP1a
    assert info["format"]["tags"]["timecode"] == "00:59:54;00"
    assert (video["codec_name"], video["profile"], video["level"], video["pix_fmt"]) == (
        "mpeg2video", "4:2:2", 2, "yuv422p")  # 422P@HL
    assert (video["width"], video["height"], video["r_frame_rate"], video["field_order"]) == (
        1920, 1080, "30000/1001", "progressive")
    assert video["bit_rate"] == "50000000"
    assert [(a["codec_name"], a["channels"], a["sample_rate"], a["bits_per_raw_sample"]) for a in audio] == [
        ("pcm_s24le", 1, "48000", "24")] * 4
    # constant 50 Mb/s: the video packets' bytes over the file's length, and GOPs of 15 frames
    packets = [p.split(",") for p in subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts,size,flags", "-of", "csv=p=0",
         str(mxf)], capture_output=True, text=True, check=True).stdout.split()]
    frames = LEADER_FRAMES + build["frames"] + TAIL_FRAMES
    assert len(packets) == frames
    mbps = sum(int(size) for _, size, _ in packets) * 8 / (frames / RATE) / 1e6
    assert 49.0 <= mbps <= 50.5, mbps
    assert sorted(int(pts) for pts, _, flags in packets if "K" in flags)[:4] == [0, 15, 30, 45]
    # the same leader: bars, the tone and the pop on its one frame; the programme's mix is the mezzanine's
    bars = _frame(mxf, 10).astype(int)
    assert bars[300, 548][0] > 150 and bars[300, 548][2] < 60  # yellow
    for n, bright in ((POP_FRAME - 1, False), (POP_FRAME, True), (POP_FRAME + 1, False)):
        assert bool(_frame(mxf, n, "gray").mean() > 200) is bright, n
    for a, b in _acts(build):
        span = (LEADER_FRAMES + a, LEADER_FRAMES + b)
        assert _ebur128(mxf, span, mono_tracks=True)[0] == pytest.approx(
            _ebur128(folder / "mezzanine.mov", span, mix_of_four=True)[0], abs=0.05)
    index = json.loads((folder / "deliverables.json").read_text())
    entry = next(f for f in index["files"] if f["role"] == "xdcam")
    report = entry["qc"]
    assert entry["path"] == "xdcam.mxf" and entry["file_timecode"] == "00:59:54;00"
    assert report["timecode"]["passed"] and report["timecode"]["programme_first_frame"] == "01:00:00;00"
    assert report["timecode"]["timecode_runs"] is None  # MXF: one timecode component, no tmcd track
    assert all(report[k]["passed"] for k in ("bars", "tone", "pop", "black"))
    assert all(a["passed"] for a in report["acts"]) and report["passed"]


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
    assert spec("deliver: [web, xdcam]").deliver == ("xdcam", "web")
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


def _channels(path: Path, count: int) -> np.ndarray:
    """Every sample of a file's sound as float64 ``(n, count)``, channels untouched."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-f", "f32le", "-c:a", "pcm_f32le",
                          "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).astype(np.float64).reshape(-1, count)


def _dbfs(x: np.ndarray, peak: bool = False) -> float:
    level = np.abs(x).max() if peak else np.sqrt(np.mean(np.square(x)))
    return 20 * np.log10(max(float(level), 1e-12))


@pytest.fixture(scope="module")
def sound(built):
    """The mezzanine's programme (ch1-2 the mix, ch3-4 the M&E) and the three stems, sample-aligned."""
    build, folder, _ = built
    lead = samples_for(LEADER_FRAMES, RATE_FRACTION)
    n = samples_for(build["frames"], RATE_FRACTION)
    mez = _channels(folder / "mezzanine.mov", 4)[lead:lead + n]
    stems = {s: _channels(folder / f"stem-{s}.wav", 2) for s in ("dx", "mx", "fx")}
    return mez[:, :2], mez[:, 2:], stems


def _at(build: dict, seconds_from: float, seconds_to: float) -> slice:
    return slice(round(seconds_from * 48000), round(seconds_to * 48000))


def test_the_stems_are_24_bit_stereo_wavs_exactly_as_long_as_the_programme(built):
    build, folder, _ = built
    index = json.loads((folder / "deliverables.json").read_text())
    for stem in ("dx", "mx", "fx"):
        audio = ffprobe(folder / f"stem-{stem}.wav")["streams"]
        assert [(a["codec_name"], a["channels"], a["sample_rate"], a["bits_per_sample"]) for a in audio] == [
            ("pcm_s24le", 2, "48000", 24)]
        assert int(audio[0]["duration_ts"]) == samples_for(build["frames"], RATE_FRACTION)  # the picture's samples
        entry = next(f for f in index["files"] if f["role"] == f"stem-{stem}")
        assert entry["path"] == f"stem-{stem}.wav" and entry["streams"][0]["samples"] == int(audio[0]["duration_ts"])


def test_the_stems_sum_to_the_mix_and_the_m_and_e_is_music_and_effects(built, sound):
    build, folder, _ = built
    mix, me, stems = sound
    assert len(mix) == len(stems["dx"]) == samples_for(build["frames"], RATE_FRACTION)
    assert _dbfs(mix) > -40
    assert _dbfs(stems["dx"] + stems["mx"] + stems["fx"] - mix, peak=True) < -60
    assert _dbfs(me - stems["mx"] - stems["fx"], peak=True) < -120  # the M&E is MX + FX, to the last bit
    index = json.loads((folder / "deliverables.json").read_text())
    assert index["stems"]["sum_residual"]["passed"] and index["stems"]["sum_residual"]["peak_dbfs"] < -60


def test_a_voice_is_dialogue_only_and_the_m_and_e_carries_the_bed(built, sound):
    build, _, _ = built
    mix, me, stems = sound
    seg = {s["id"]: s for s in build["segments"]}
    # "hello" is a voice record alone (its first half second crossfades from the talk under its bed)
    hello = _at(build, seg["hello"]["start_frame"] / RATE + 1, seg["hello"]["end_frame"] / RATE)
    assert _dbfs(mix[hello]) > -35
    assert _dbfs(stems["dx"][hello] - mix[hello], peak=True) < -80
    assert _dbfs(stems["mx"][hello], peak=True) < -100 and _dbfs(stems["fx"][hello], peak=True) < -100
    assert _dbfs(me[hello], peak=True) < -100
    # "tune" is a clip without sound over the bed: the M&E is the whole mix there
    tune = _at(build, seg["tune"]["start_frame"] / RATE + 0.5, seg["tune"]["end_frame"] / RATE - 0.5)
    assert _dbfs(me[tune]) > -45 and abs(_dbfs(me[tune]) - _dbfs(mix[tune])) < 0.01
    assert _dbfs(stems["dx"][tune], peak=True) < -100


def test_a_clips_sound_is_effects_until_its_speech_then_dialogue(built, sound):
    build, _, _ = built
    _, me, stems = sound
    talk = next(s for s in build["segments"] if s["id"] == "talk")
    shot = talk["shots"][1]
    assert shot["record"] == "T1" and shot["sound"] == "clip" and shot["speech"]
    start = talk["shots"][0]["frames"] / RATE  # T1's first frame on the programme clock
    speech = start + SPEECH_AT - shot["source_in_s"]
    assert shot["speech"][0][0] == pytest.approx((SPEECH_AT - shot["source_in_s"]) * RATE, abs=1)
    into_hello = next(s for s in build["segments"] if s["id"] == "hello")["shots"][0]["transition"]["frames"]
    # the talk runs on into the handle the crossfade into "hello" borrows past T1's out point
    assert shot["speech"][-1][1] == shot["frames"] + into_hello - into_hello // 2
    before, after = _at(build, start + 0.05, speech - 0.15), _at(build, speech + 0.15, start + shot["frames"] / RATE)
    assert _dbfs(stems["fx"][before]) > -60 and _dbfs(stems["dx"][before], peak=True) < -100  # the ambience
    assert _dbfs(stems["dx"][after]) > -35 and _dbfs(stems["fx"][after], peak=True) < -100  # the talk (and its ambience)
    assert _dbfs(me[after]) < _dbfs(stems["dx"][after]) - 10  # the bed, ducked under the talk


def test_limited_stems_ride_the_mixs_limiter_so_they_still_sum_to_it(tmp_path):
    """A programme levelled with a limiter: each stem gets the gain the limiter gave the mix, sample by
    sample; limited on its own, a stem would not (the sum then misses the mix by more than the mix)."""
    import soundfile

    from render.compose.store import RenderedPiece, RenderedStems
    from render.core.house import profile
    from render.deliver import stems
    from render.deliver.source import programme

    house = profile("master")
    rng = np.random.default_rng(7)
    pieces, piece_stems = [], []
    for k, frames in enumerate((61, 90)):
        t = np.arange(samples_for(frames, RATE_FRACTION)) / 48000
        dx = 0.45 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 3 * t) > 0.6)  # loud words
        parts = [np.round(np.stack([x, 0.8 * x], 1) * 32767).astype(np.int16)
                 for x in (dx, 0.3 * np.sin(2 * np.pi * 110 * t + k), 0.05 * rng.standard_normal(len(t)))]
        paths = []
        for name, x in zip(("dx", "mx", "fx", "mix"), [*parts, sum(p.astype(np.int32) for p in parts)]):
            paths.append(tmp_path / f"{name}{k}.wav")
            soundfile.write(paths[-1], x.astype(np.int16), 48000, subtype="PCM_16")
        pieces.append(RenderedPiece("s", f"p{k}", tmp_path / "unused.mp4", paths[3], frames, True))
        piece_stems.append(RenderedStems(f"p{k}", ("d", "m", "f"), tuple(paths[:3]), True))
    prog = programme(pieces, {"mode": "limited", "gain_db": 12.0, "limiter_ceiling_dbtp": -2.5}, house, piece_stems)

    def levelled(*inputs: str, graph: str) -> np.ndarray:
        out = subprocess.run(["ffmpeg", "-v", "error", *inputs, "-filter_complex", graph, "-map", "[o]",
                              "-f", "f32le", "-c:a", "pcm_f32le", "-"], capture_output=True, check=True).stdout
        return np.frombuffer(out, np.float32).astype(np.float64).reshape(-1, 2)

    mix = levelled(*prog.mix_input(tmp_path), graph=prog.sound("o", 0))
    assert _dbfs(mix, peak=True) < -2.0  # 12 dB onto peaks at -6 dBFS: the limiter did the work
    delivered, alone = [], []
    for stem in ("dx", "mx", "fx"):
        subprocess.run(stems.argv(prog, stem, tmp_path, tmp_path / f"{stem}.wav"), check=True)
        delivered.append(soundfile.read(tmp_path / f"{stem}.wav")[0])
        alone.append(levelled(*prog.stem_input(tmp_path, stem), graph=prog.sound("o", 0)))
    assert [len(x) for x in delivered] == [prog.samples] * 3
    assert _dbfs(sum(delivered) - mix, peak=True) < -100
    assert _dbfs(sum(alone) - mix, peak=True) > -20
    # the mix that rides with a stem through the limiter (the mezzanine's ch1-2) is the mix limited alone
    rode = levelled(*prog.mix_input(tmp_path), *prog.stem_input(tmp_path, "dx"),
                    graph=";".join([*prog.levelled("0:a", "1:a", "o", "s"), "[s]anullsink"]))
    assert np.array_equal(rode, mix)


def test_the_stems_change_no_piece_key_and_key_their_own_render():
    from dataclasses import replace

    from render.compose import store
    from render.compose.pieces import Piece
    from render.core.house import profile
    from render.edit.timeline import Shot

    house = profile("master")
    talk = Piece("s", 0, (Shot("video", 90, "T1", sound="clip", speech=((30, 90),)),))
    heard = replace(talk, shots=(replace(talk.shots[0], speech=((40, 90),)),))
    assert store.piece_key(talk, {}, house, "blur") == store.piece_key(heard, {}, house, "blur")
    assert store.piece_key(talk, {}, house, "blur") == store.piece_key(
        replace(talk, shots=(Shot("video", 90, "T1"),)), {}, house, "blur")  # as a build without stems keys it
    assert store.stem_key(talk, {}, house, "blur", "dx") != store.stem_key(heard, {}, house, "blur", "dx")
    assert store.stem_key(talk, {}, house, "blur", "dx") != store.stem_key(talk, {}, house, "blur", "fx")
