"""The demo call-out is a contract: the demo episode, benchmarks and other tests rely on its content.

Everything is checked by reading the written folder back with csv and ffprobe, as a consumer would.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from render.callout.demo import CHAIN, FEATURED, TAGS, demo_tables, generate_demo_callout
from render.callout.folder import CONTRIBUTOR_COLUMNS, KINDS, SUBMISSION_COLUMNS, load_callout
from render.core import ffmpeg

TIMED = ("video", "animation", "music", "voice")
STILL = ("photo", "illustration")


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def records(demo) -> dict[str, dict[str, str]]:
    return {row["record_id"]: row for row in _read(demo.root / "submissions.csv")}


@pytest.fixture(scope="session")
def contributors(demo) -> dict[str, dict[str, str]]:
    return {row["username"]: row for row in _read(demo.root / "contributors.csv")}


def _probe(path: Path) -> dict | None:
    """ffprobe's JSON for a file, or None when ffprobe cannot read it."""
    argv = [ffmpeg.FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    done = subprocess.run(argv, check=False, capture_output=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else None


@pytest.fixture(scope="session")
def probes(demo, records) -> dict[str, dict | None]:
    media = {rid: demo.root / row["file"] for rid, row in records.items() if row["file"] and row["kind"] != "text"}
    with ThreadPoolExecutor() as pool:
        return dict(zip(media, pool.map(_probe, media.values())))


def _streams(probe: dict | None, kind: str) -> list[dict]:
    return [s for s in (probe or {}).get("streams", []) if s["codec_type"] == kind]


def _rotation(stream: dict) -> int:
    return next((int(float(d["rotation"])) for d in stream.get("side_data_list", []) if "rotation" in d), 0)


def _duration(probe: dict | None) -> float:
    return float((probe or {}).get("format", {}).get("duration", 0) or 0)


def _usable(rid: str, records, probes) -> bool:
    """Released, and its media reads as something with a duration."""
    return records[rid]["released"] == "yes" and _duration(probes.get(rid)) > 0


def _moving(records, probes) -> list[str]:
    """Usable video and animation records."""
    return [rid for rid, row in records.items()
            if row["kind"] in ("video", "animation") and _usable(rid, records, probes)]


def _depths(records) -> dict[str, int]:
    """Length of the longest remix chain ending at each record (an original counts 1)."""
    depth: dict[str, int] = {}

    def of(rid: str) -> int:
        if rid not in depth:
            parents = [p for p in records[rid]["remix_of"].split(";") if p]
            depth[rid] = 1 + max((of(p) for p in parents), default=0)
        return depth[rid]

    for rid in records:
        of(rid)
    return depth


# -- the folder -------------------------------------------------------------------------------------

def test_folder_layout(demo, records):
    meta = yaml.safe_load((demo.root / "callout.yaml").read_text(encoding="utf-8"))
    assert list(meta) == ["id", "title", "brief", "opened", "closed"]
    assert meta["id"] == "demo" and meta["title"] == "RE: The Number One"
    with open(demo.root / "submissions.csv", encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == [*SUBMISSION_COLUMNS, "transcript"]
    with open(demo.root / "contributors.csv", encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == list(CONTRIBUTOR_COLUMNS)
    assert (demo.root / ".complete").is_file()
    assert [p.name for p in demo.root.parent.iterdir()] == [demo.root.name], "temp folder left behind"
    listed = {row["file"] for row in records.values() if row["file"]}
    on_disk = {p.relative_to(demo.root).as_posix() for p in (demo.root / "media").rglob("*") if p.is_file()}
    assert listed == on_disk, "every media file is listed and no intermediate file is left"


def test_the_project_reads_it_cleanly(demo):
    callout = load_callout(demo.root)
    assert len(callout.records) >= 150 and callout.warnings == ()


def test_progress_reports_every_file(demo, records):
    files = sum(1 for row in records.values() if row["file"])
    assert [done for done, _ in demo.progress] == list(range(1, files + 1))
    assert {total for _, total in demo.progress} == {files}


def test_reuse_does_not_regenerate(demo):
    before = {p: p.stat().st_mtime_ns for p in demo.root.rglob("*") if p.is_file()}
    assert generate_demo_callout(demo.root) == demo.root
    assert {p: p.stat().st_mtime_ns for p in demo.root.rglob("*") if p.is_file()} == before


# -- records and people -----------------------------------------------------------------------------

def test_counts_and_credits(records, contributors):
    assert len(records) >= 150
    assert all(re.fullmatch(r"R\d{4}", rid) for rid in records)
    credited = Counter()
    for row in records.values():
        users = [item.partition(":")[0] for item in row["contributors"].split(";")]
        assert 1 <= len(users) <= 3, row["record_id"]
        assert len(set(users)) == len(users)
        credited.update(users)
    assert len(credited) >= 120
    assert set(credited) <= set(contributors), "every credited username is in contributors.csv"
    assert sum(1 for n in credited.values() if n > 1) >= 5, "some contributors made several records"
    assert all(re.fullmatch(r"[a-z0-9_]+", user) for user in contributors)


def test_credit_names_cover_the_scripts(contributors):
    names = [row["credit_name"] for row in contributors.values()]
    text = "".join(names)

    def has(pattern: str) -> bool:
        return re.search(pattern, text) is not None

    assert "ß" in text and "Ñ" in text
    assert has("[\u0600-\u06ff]") and has("[\u0590-\u05ff]"), "Arabic and Hebrew (right to left)"
    assert has("[\u4e00-\u9fff]") and has("[\u3040-\u30ff]") and has("[\uac00-\ud7af]"), "Chinese, Japanese, Korean"
    assert has("[\u0900-\u097f]"), "Devanagari"
    assert any(unicodedata.combining(c) for c in text), "combining marks"
    assert sum(1 for name in names if any(ord(c) >= 0x1F300 for c in name)) >= 2, "emoji"
    assert all(re.fullmatch(r"[A-Z]{2}", row["country"]) for row in contributors.values())


def test_kinds_and_text_records(demo, records):
    kinds = Counter(row["kind"] for row in records.values())
    assert set(kinds) == set(KINDS)
    assert kinds["video"] >= 50 and kinds["animation"] >= 15 and kinds["music"] >= 15 and kinds["voice"] >= 15
    assert kinds["photo"] >= 15 and kinds["illustration"] >= 12 and kinds["text"] >= 12
    texts = [row for row in records.values() if row["kind"] == "text"]
    typed = [row for row in texts if not row["file"]]
    assert len(typed) >= 3 and all(row["text"].strip() for row in typed)
    uploaded = [(demo.root / row["file"]).read_bytes() for row in texts if row["file"]]
    boms = [data for data in uploaded if data[:2] in (b"\xff\xfe", b"\xfe\xff")]
    assert len(boms) == 1 and boms[0].decode("utf-16").strip()
    assert all(data.decode("utf-8").strip() for data in uploaded if data not in boms)


def test_remix_chains(records):
    for row in records.values():
        for parent in filter(None, row["remix_of"].split(";")):
            assert parent in records and parent < row["record_id"], "remixes build on earlier records"
    depth = _depths(records)
    assert [records[rid]["remix_of"] for rid in CHAIN] == ["", *CHAIN[:-1]]
    assert depth[CHAIN[-1]] >= 4 and max(depth.values()) >= 4
    assert sum(1 for d in depth.values() if d >= 3) >= 5, "several chains 3 deep"
    assert sum(1 for row in records.values() if row["remix_of"]) >= 40
    assert any(len(row["remix_of"].split(";")) == 2 for row in records.values()), "a remix of two records"


def test_some_records_are_unreleased(records):
    released = Counter(row["released"] for row in records.values())
    assert set(released) == {"yes", "no"}
    assert 0.05 <= released["no"] / len(records) <= 0.12


def test_tags(records, probes):
    counts = Counter()
    for row in records.values():
        tags = row["tags"].split(";")
        assert 1 <= len(tags) <= 3 and len(set(tags)) == len(tags) and set(tags) <= set(TAGS), row["record_id"]
        counts.update(tags)
    print("\ntags:", dict(counts.most_common()))
    one = [rid for rid in _moving(records, probes) if "one" in records[rid]["tags"].split(";")]
    assert len(one) >= 25


# -- media ------------------------------------------------------------------------------------------

def test_broken_uploads(demo, records, probes):
    by_file = {row["file"]: row for row in records.values()}

    def raw(row) -> bytes:
        return (demo.root / row["file"]).read_bytes()

    unreadable = [row for rid, row in records.items() if row["kind"] in TIMED and row["file"] and probes[rid] is None]
    truncated = [row for row in unreadable if row["file"].endswith(".mp4") and raw(row)[4:8] == b"ftyp"]
    noise = [row for row in unreadable if row["file"].endswith(".mp4") and raw(row)[4:8] != b"ftyp" and raw(row)]
    empty = [row for row in unreadable if row["file"].endswith(".mov") and not raw(row)]
    mislabelled = [row for f, row in by_file.items() if f.endswith(".jpg") and raw(row).lstrip().startswith(b"<")]
    assert len(truncated) == len(noise) == len(empty) == len(mislabelled) == 1
    broken = truncated + noise + empty + mislabelled
    assert all(row["released"] == "yes" for row in broken)
    assert [row["kind"] for row in broken] == ["video", "video", "video", "photo"]
    assert len(unreadable) == 3, "every other timed file reads"
    for rid, row in records.items():
        if row["kind"] in STILL and row not in mislabelled:
            assert _streams(probes[rid], "video")[0]["width"] > 0, rid


def test_rotation_and_orientation(records, probes):
    videos = {rid: _streams(probes[rid], "video")[0] for rid, row in records.items()
              if row["kind"] in ("video", "animation") and _streams(probes.get(rid), "video")}
    rotated = {rid: s for rid, s in videos.items() if _rotation(s)}
    assert len(rotated) >= 4
    assert all(s["width"] > s["height"] for s in rotated.values()), "stored landscape, shown turned"

    def shown(s):
        return (s["height"], s["width"]) if _rotation(s) % 180 else (s["width"], s["height"])

    assert sum(1 for s in videos.values() if shown(s)[1] > shown(s)[0]) >= 4, "portrait videos"
    assert any(shown(s)[0] == shown(s)[1] for s in videos.values()), "a square video"
    stills = [_streams(probes[rid], "video")[0] for rid, row in records.items()
              if row["kind"] in STILL and _streams(probes[rid], "video")]
    assert any(s["height"] > s["width"] for s in stills), "a portrait photo"
    assert any(s["width"] >= 4000 for s in stills), "a panorama"
    pngs = [rid for rid, row in records.items() if row["file"].endswith(".png")]
    alpha = [rid for rid in pngs if _streams(probes[rid], "video")[0]["pix_fmt"] in ("rgba", "ya8", "rgba64be")]
    assert len(alpha) == 1


def test_codecs_rates_and_formats(records, probes):
    moving = _moving(records, probes)
    codecs = Counter(_streams(probes[rid], "video")[0]["codec_name"] for rid in moving)
    rates = Counter(_streams(probes[rid], "video")[0]["r_frame_rate"] for rid in moving)
    print("\nvideo codecs:", dict(codecs), "\nframe rates:", dict(rates))
    assert len(codecs) >= 3 and {"h264", "vp8", "vp9", "mpeg4"} <= set(codecs)
    assert len(rates) >= 3 and {"15/1", "30000/1001", "60/1"} <= set(rates)
    audio_codecs = {_streams(probes[rid], "audio")[0]["codec_name"] for rid in moving if _streams(probes[rid], "audio")}
    assert {"aac", "vorbis", "opus", "mp3"} <= audio_codecs
    assert sum(1 for rid in moving if not _streams(probes[rid], "audio")) >= 3, "videos without sound"
    containers = {records[rid]["file"].rsplit(".", 1)[1].lower() for rid in moving}
    assert {"mp4", "mov", "webm", "avi"} <= containers
    sounds = [rid for rid, row in records.items() if row["kind"] in ("music", "voice")]
    assert {records[rid]["file"].rsplit(".", 1)[1] for rid in sounds} == {"mp3", "wav", "ogg", "flac", "m4a"}
    layouts = {(int(s["sample_rate"]), s["channels"]) for rid in sounds for s in _streams(probes[rid], "audio")}
    assert {rate for rate, _ in layouts} == {22050, 44100, 48000} and {ch for _, ch in layouts} == {1, 2}


def test_durations(records, probes):
    usable = [rid for rid, row in records.items() if row["kind"] in TIMED and _usable(rid, records, probes)]
    by_kind = Counter()
    for rid in usable:
        by_kind[records[rid]["kind"]] += _duration(probes[rid])
    total = sum(by_kind.values())
    print("\nusable seconds by kind:", {k: round(v) for k, v in by_kind.items()}, f"total {total / 60:.1f} min")
    assert total > 35 * 60, "the 22-minute demo episode is filled from this material"
    moving = [_duration(probes[rid]) for rid in usable if records[rid]["kind"] in ("video", "animation")]
    assert sum(1 for d in moving if 6 <= d <= 40) / len(moving) >= 0.7
    assert 2 <= sum(1 for d in moving if 60 <= d <= 90) <= 8
    for rid in usable:
        kind, seconds = records[rid]["kind"], _duration(probes[rid])
        if kind == "music":
            assert 20 <= seconds <= 60.5, rid
        elif kind == "voice":
            assert 4 <= seconds <= 20.5, rid


def test_featured_and_first_records(records, probes):
    row, probe = records[FEATURED], probes[FEATURED]
    assert row["kind"] == "video" and row["released"] == "yes"
    assert _streams(probe, "video") and _streams(probe, "audio")
    assert 20 <= _duration(probe) <= 40
    first = [f"R{n:04d}" for n in range(1, 11)]
    assert all(records[rid]["released"] == "yes" for rid in first)
    assert all(records[rid]["kind"] == "text" or _duration(probes[rid]) > 0 or _streams(probes[rid], "video")
               for rid in first)
    assert len({records[rid]["kind"] for rid in first}) >= 5


# -- determinism ------------------------------------------------------------------------------------

def test_tables_match_the_files_and_depend_on_the_seed(demo):
    tables = demo_tables()
    for name, rows in tables.items():
        with open(demo.root / name, encoding="utf-8", newline="") as f:
            assert list(csv.reader(f)) == rows, name
    assert demo_tables() == tables  # a pure function of the seed: same seed, same folder
    other = demo_tables(seed=2015)
    assert other["submissions.csv"] != tables["submissions.csv"]
    assert other["submissions.csv"][0] == tables["submissions.csv"][0]


def test_media_bytes_are_a_function_of_the_seed(demo, tmp_path):
    """Remaking uploads gives the same bytes, so a regenerated call-out hits every content-hashed cache.

    One upload per file type (the cheapest), plus every colour wash: ffmpeg's gradients source picks
    random colours unless told, and Ogg and Matroska write random stream ids unless made bit-exact.
    """
    from render.callout.demo import _plan

    _, _, jobs = _plan(2014)
    by_type: dict[str, object] = {}
    for job in sorted(jobs, key=lambda j: j.cost):
        rel = job.make.args[-1]
        by_type.setdefault(Path(rel).suffix.lower(), job)
    washes = [j for j in jobs if getattr(j.make.args[0], "source", "") == "gradients" and j.cost < 2][:3]
    chosen = list({id(j): j for j in [*by_type.values(), *washes]}.values())
    assert {".mp4", ".mov", ".webm", ".ogg", ".flac", ".m4a", ".jpg", ".png", ".webp"} <= set(by_type)
    assert washes
    for job in chosen:
        (tmp_path / job.make.args[-1]).parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda job: job.make(tmp_path), chosen))
    for job in chosen:
        rel = job.make.args[-1]
        assert (tmp_path / rel).read_bytes() == (demo.root / rel).read_bytes(), rel
