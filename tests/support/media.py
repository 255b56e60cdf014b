"""Test media: the real corpus beside the repo, media made with ffmpeg, and independent readings of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

CORPUS = Path(os.environ.get("REMIXTV_CORPUS", REPO.parent / "shared" / "corpus"))


def corpus(name: str) -> Path:
    """A file of the corpus (../shared/corpus, or $REMIXTV_CORPUS); the test fails if it is missing."""
    path = CORPUS / name
    if not path.exists():
        pytest.fail(f"test media {path} is missing: ../shared/corpus must sit beside the repo")
    return path


def lavfi(dest: Path, graph: str, *args: str) -> Path:
    """Make test media from one of ffmpeg's lavfi sources."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, *args, str(dest)], check=True)
    return dest


def ffprobe(path: Path) -> dict:
    """ffprobe's JSON for a file: its format and every stream."""
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def ebur128(path: Path, start: float | None = None, seconds: float | None = None) -> dict[str, float]:
    """ffmpeg's own BS.1770 meter (true peak on) over a file or a stretch of it: the independent reading."""
    window = (["-ss", f"{start:.6f}"] if start is not None else []) + (["-t", f"{seconds:.6f}"] if seconds else [])
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", *window, "-i", str(path), "-vn",
                          "-af", "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True,
                         check=True).stderr
    summary = err[err.rfind("Summary:"):]
    return {"I": float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1)),
            "LRA": float(re.search(r"LRA:\s+(-?[\d.]+) LU", summary).group(1)),
            "TP": float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))}


def framemd5(path: Path) -> list[str]:
    """Every decoded video frame's and audio packet's MD5 (the lines after the header); a subtitle
    track (the captions) has no frames to hash, and is compared with the file's bytes."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-map", "0:a?", "-f", "framemd5",
                          "-"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def source_of(path: Path, cache, kind: str = "music"):
    """A Source the way intake makes one (content hash, neutral link, probed media)."""
    from render.callout.folder import Record
    from render.intake.probe import read_media
    from render.intake.records import Source, safe_link

    digest = cache.content_hash(path)
    link = safe_link(cache, path, digest)
    media, _ = read_media(link)
    record = Record(path.stem[:20], path.name, kind, path.stem, (), (), (), "", True, 2)
    return Source(record, digest, media=media, link=link)
