"""Call-outs written the way the site writes them, specs beside them, and an independent credits oracle."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from tests.support.media import corpus

COLUMNS = ["record_id", "file", "kind", "title", "contributors", "remix_of", "tags", "text", "released"]


def submission(record_id: str, kind: str, title: str, contributors: str, media: str = "", *, file: str | None = None,
               **columns: str) -> dict[str, str]:
    """One row of submissions.csv. ``media`` names a corpus file, submitted as ``file`` (media/<its name>
    unless given); other columns (tags, remix_of, text, released) by name."""
    row = {"record_id": record_id, "kind": kind, "title": title, "contributors": contributors,
           "file": f"media/{media}" if file is None and media else file or "", **columns}
    return row | {"corpus": media} if media else row


def write_callout(folder: Path, rows: list[dict], contributors: list[tuple[str, str, str]],
                  files: dict[str, Path] | None = None, callout_id: str = "test") -> Path:
    """Write a call-out folder: callout.yaml, the two CSVs, and the media.

    A row's media is the corpus file its ``corpus`` key names (not a CSV column), copied to its
    ``file``; ``files`` maps other paths in the folder to files to copy there (media made by a test).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "callout.yaml").write_text(
        f"id: {callout_id}\ntitle: \"RE: Testing\"\nbrief: test call-out\nopened: 2026-01-01\nclosed: 2026-02-01\n")
    columns = COLUMNS + [c for c in ("transcript",) if any(c in row for row in rows)]  # optional, when given
    with open(folder / "submissions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "yes" if c == "released" else "") for c in columns})
    with open(folder / "contributors.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["username", "credit_name", "country"])
        w.writerows(contributors)
    media = {row["file"]: corpus(row["corpus"]) for row in rows if row.get("corpus")} | dict(files or {})
    for rel, src in media.items():
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return folder


def write_project(root: Path, rows: list[dict], contributors: list[tuple[str, str, str]], spec: str,
                  files: dict[str, Path] | None = None, name: str = "spec.yaml") -> Path:
    """A call-out at ``root/callout`` and a spec naming it at ``root/name``; returns the spec's path."""
    write_callout(root / "callout", rows, contributors, files)
    (root / name).write_text(spec)
    return root / name


SIX_PIECES_CONTRIBUTORS = [("ana", "Ana", "MX"), ("bo", "Bo", "CN"), ("cy", "Cy", "IR"), ("dee", "Dee", "EG"),
                           ("eli", "Eli", "IL"), ("fox", "Fox", "FR")]
# small, short media: a fresh cache analyses every record (loudness, speech/music, shots) before rendering
SIX_PIECES_ROWS = [
    submission("V1", "video", "Frog", "ana", "frog_toy_h264_aac_720x480_30fps.mp4", tags="one"),
    submission("V2", "animation", "Bunny", "bo", "bunny_vp8_vorbis_320x240_30fps.webm", tags="one"),
    submission("V3", "video", "CC", "eli", "cc_logo_h264_aac_640x480_29.97fps.mp4", tags="one"),
    submission("V4", "video", "Theora", "bo", "theora_vorbis_160x120_15fps.ogv", tags="one"),
    submission("V5", "video", "Chaplin", "cy", "chaplin_bw_film_h264_mp3_640x360_25fps.mp4"),
    submission("V6", "video", "Carphone", "dee", "carphone_h264_176x144_29.97fps_lowquality.mp4"),
    submission("M1", "music", "Crunch", "fox", "crunching_sfx_mp3_48k_stereo.mp3"),
]
# six segments, so six pieces (a piece never spans segments), rendered two at a time
SIX_PIECES_SPEC = """\
title: "RE: Resume"
callout: callout
runtime: "0:38"
segments:
  - {id: open, type: montage, select: {kinds: [video, animation], tags: [one], limit: 4}, shot_seconds: 3}
  - {id: title, type: card, text: "RE: Resume", seconds: 3}
  - {id: chaplin, type: feature, record: V5, max_seconds: 8}
  - {id: song, type: feature, record: M1, max_seconds: 8}
  - {id: fill, type: fill}
  - {id: credits, type: credits, seconds: 5}
"""


def six_pieces(root: Path) -> Path:
    """A 38 s build of six pieces on small corpus media, for tests that stop, kill or spread builds;
    returns the spec."""
    return write_project(root, SIX_PIECES_ROWS, SIX_PIECES_CONTRIBUTORS, SIX_PIECES_SPEC)


def submissions(callout_dir: Path) -> dict[str, dict[str, str]]:
    """submissions.csv read back with csv, by record id."""
    with open(callout_dir / "submissions.csv", newline="", encoding="utf-8-sig") as f:
        return {row["record_id"]: row for row in csv.DictReader(f)}


def expected_credited(callout_dir: Path, used: list[str]) -> set[str]:
    """An independent oracle: usernames (lower-cased) of used records and, transitively, their sources."""
    table = submissions(callout_dir)
    expected, stack, seen = set(), list(used), set()
    while stack:
        rid = stack.pop()
        if rid in seen or rid not in table:
            continue
        seen.add(rid)
        expected |= {c.split(":")[0].strip().lower() for c in table[rid]["contributors"].split(";") if c.strip()}
        stack += [p.strip() for p in table[rid]["remix_of"].split(";") if p.strip()]
    return expected
