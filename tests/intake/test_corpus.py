"""Intake over the whole real-world corpus as one call-out: every file ends conformed or quarantined.

A conformed clip is checked as a user would: ffprobe shows the exact house format, square
pixels, and sound and picture that end within one frame of each other.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.callouts import write_callout
from tests.support.media import CORPUS, ffprobe

FRAME_S = 1001 / 30000


def kind_of(row: dict) -> str:
    name, notes = row["file"], row["notes"].lower()
    if name.endswith((".txt", ".srt")):
        return "text"
    if name.endswith(".heic") or (row["video_codec"] and not row["duration_s"] and row["video_codec"] != "gif"):
        return "illustration" if name.endswith((".png", ".webp", ".gif", ".bmp")) else "photo"
    if row["video_codec"]:
        return "animation" if row["video_codec"] == "gif" or "animation" in notes else "video"
    return "music" if notes.startswith(("music", "song")) else "voice"


#: a 6-minute 1080p upload: conforming it whole is a fifth of this file's time and shows nothing the
#: others do not, so it is read by intake alone (``test_durations_follow_the_source``)
LONG = "long_6min_h264_aac_1920x1080_30fps_lowbitrate.mp4"


def corpus_rows() -> list[dict]:
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f, delimiter="\t"))
    return [{"record_id": f"C{i:03d}", "file": f"media/{row['file']}", "kind": kind_of(row), "title": row["file"],
             "contributors": f"user{i % 7}"} for i, row in enumerate(manifest) if row["file"] != LONG]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A FIFO outside the call-out: opening it for writing without blocking succeeds only while a
    reader has it open, so a watcher can prove nobody ever opened it."""
    outside = tmp_path_factory.mktemp("outside")
    target = outside / "secret.mp4"
    os.mkfifo(target)
    opened: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            else:
                opened.append(time.monotonic())
                os.close(fd)
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield target, opened
    stop.set()
    thread.join(1)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, prefect_harness, cache_dir, hostile):
    target, _ = hostile
    root = tmp_path_factory.mktemp("corpus-callout")
    rows = corpus_rows()
    rows += [
        {"record_id": "H1", "file": "media/playlist.mp4", "kind": "video", "title": "HLS", "contributors": "mallory"},
        {"record_id": "H2", "file": "media/list.mov", "kind": "video", "title": "concat", "contributors": "mallory"},
        {"record_id": "H3", "file": "../outside/secret.mp4", "kind": "video", "title": "escape",
         "contributors": "mallory"},
        {"record_id": "T1", "file": "media/cut_short.mp4", "kind": "video", "title": "interrupted upload",
         "contributors": "user1"},
    ]
    files = {r["file"]: CORPUS / r["file"].removeprefix("media/") for r in rows if r["record_id"].startswith("C")}
    folder = write_callout(root / "callout", rows, [(f"user{i}", f"User {i}", "") for i in range(7)]
                           + [("mallory", "Mallory", "")], files)
    (folder / "media" / "playlist.mp4").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{target}\n#EXT-X-ENDLIST\n")
    (folder / "media" / "list.mov").write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    whole = root / "whole.mp4"  # an upload cut off at 60%: index up front (faststart), media missing
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(CORPUS / LONG),
                    "-t", "30", "-c", "copy", "-movflags", "+faststart", str(whole)], check=True)
    data = whole.read_bytes()
    (folder / "media" / "cut_short.mp4").write_bytes(data[: len(data) * 6 // 10])
    from flows.pipeline import intake_callout_flow as ingest_flow

    report, clips = ingest_flow(str(folder), "preview", str(cache_dir), str(root / "clips"))
    return folder, report, clips


def test_every_corpus_file_is_conformed_or_quarantined_with_a_reason(ingested):
    _, report, clips = ingested
    quarantined = {q.record.record_id: q.reason for q in report.quarantined}
    for row in corpus_rows():
        rid = row["record_id"]
        assert (rid in clips) != (rid in quarantined), f"{row['file']}: neither or both"
        if rid in quarantined:
            assert len(quarantined[rid]) > 10, f"{row['file']}: vague reason {quarantined[rid]!r}"
    accepted = [r for r in corpus_rows() if r["record_id"] in clips]
    assert len(accepted) >= 80, f"only {len(accepted)} of the corpus accepted: {quarantined}"


def test_known_bad_files_get_specific_reasons(ingested):
    _, report, _ = ingested
    by_file = {q.record.file.removeprefix("media/"): q.reason for q in report.quarantined}
    assert by_file["cut_short.mp4"].startswith("truncated")
    assert by_file["empty_header_only_16k_mono.wav"].startswith("empty")
    corpus_files = {row["file"].removeprefix("media/") for row in corpus_rows()}
    assert set(by_file) & corpus_files == {"empty_header_only_16k_mono.wav", "tiny_1x1.gif"}


def test_speex_is_accepted(ingested):
    """Speex frames carry no channel layout; the loudness meter pins one, so the file is used."""
    _, report, clips = ingested
    speex = next(s for s in report.sources.values() if s.record.file.endswith("speex_ogg_44k_stereo.spx"))
    assert speex.media.audio.codec == "speex" and speex.record.record_id in clips


def test_conformed_clips_are_exactly_the_house_format(ingested):
    _, _, clips = ingested
    problems = []
    for rid, path in sorted(clips.items()):
        info = ffprobe(Path(path))
        v = next(s for s in info["streams"] if s["codec_type"] == "video")
        a = next(s for s in info["streams"] if s["codec_type"] == "audio")
        got = (v["codec_name"], v["profile"], v["pix_fmt"], v["width"], v["height"], v["r_frame_rate"],
               v.get("sample_aspect_ratio", "1:1"), a["codec_name"], a["sample_rate"], a["channels"])
        want = ("h264", "High", "yuv420p", 960, 540, "30000/1001", "1:1", "aac", "48000", 2)
        if got != want:
            problems.append(f"{rid}: {got}")
        if abs(float(a["duration"]) - float(v["duration"])) > FRAME_S:
            problems.append(f"{rid}: audio {a['duration']} s vs video {v['duration']} s")
    assert not problems, "\n".join(problems)


def test_hidden_playlists_are_quarantined_and_their_target_never_opened(ingested, hostile):
    _, report, clips = ingested
    _, opened = hostile
    reasons = {q.record.record_id: q.reason for q in report.quarantined}
    assert "not an accepted media format" in reasons["H1"]
    assert "not an accepted media format" in reasons["H2"]
    assert "leaves the call-out folder" in reasons["H3"]
    assert not {"H1", "H2", "H3"} & set(clips)
    assert opened == [], "something opened the file the playlist points at"


def test_durations_follow_the_source(ingested, tmp_path):
    from render.callout.folder import load_callout
    from render.core.cache import Cache
    from render.intake.records import intake_record

    _, report, clips = ingested
    folder = write_callout(tmp_path / "long", [{"record_id": "L1", "file": "media/long.mp4", "kind": "video",
                                                "title": "Long", "contributors": "x"}],
                           [("x", "X", "")], {"media/long.mp4": CORPUS / LONG})
    callout = load_callout(folder)
    long_one = intake_record(callout, callout.records[0], Cache(tmp_path / "cache"))
    assert abs(float(long_one.duration_s) - 362.767) < 0.1
    bogus = next(s for s in report.sources.values() if "bogus_duration" in s.record.file)
    assert float(bogus.duration_s) < 5  # the container claims ~143165 s


def test_ingest_cli_prints_a_table_and_writes_intake_json(ingested, tmp_path):
    import sys

    small = write_callout(tmp_path / "small", [
        {"record_id": "A", "file": "media/a.ogg", "kind": "music", "title": "Song", "contributors": "x"},
        {"record_id": "B", "file": "media/b.mid", "kind": "music", "title": "Song as notes", "contributors": "x"},
    ], [("x", "X", "")], {"media/a.ogg": CORPUS / "robin_birdsong_vorbis_22k_mono.ogg"})
    (small / "media" / "b.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60")
    result = subprocess.run([sys.executable, "-m", "flows.cli", "ingest", str(small), "--out", str(tmp_path / "o")],
                            check=False, capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    assert "accepted" in result.stdout and "quarantined" in result.stdout
    intake = json.loads((tmp_path / "o" / "intake.json").read_text())
    assert [a["record"] for a in intake["accepted"]] == ["A"]
    assert [q["record"] for q in intake["quarantined"]] == ["B"]
