"""A full disk, wherever it surfaces (Python's ENOSPC, ffmpeg's "No space left on device"), is one
DiskFull line naming the output being written; /dev/full stands in for the full filesystem."""

from __future__ import annotations

import os
import subprocess

import pytest

from render.core import ffmpeg
from render.core.cache import atomic_dir, atomic_path, write_text_atomic
from render.core.errors import DiskFull, UserError


def test_python_running_out_of_space_names_the_output(tmp_path):
    out = tmp_path / "reports" / "qc.json"
    with pytest.raises(DiskFull) as caught, atomic_path(out) as tmp:
        tmp.write_text("x" * 5000)
        with open("/dev/full", "w") as full:
            full.write("x")
            full.flush()
    msg = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in msg
    assert msg.startswith(f"{out}: no space left on device (") and " MB free of " in msg and "writing it needs" in msg
    assert not out.exists() and list(out.parent.iterdir()) == []  # no temporary left either


def test_ffmpeg_running_out_of_space_inside_a_piece_names_the_outer_folder(tmp_path):
    piece = tmp_path / "pieces" / "ab" / "abcdef"
    with pytest.raises(DiskFull) as caught, atomic_dir(piece) as tmp:
        write_text_atomic(tmp / "note.json", "{}")
        ffmpeg.run([ffmpeg.FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=d=1:s=64x64", "-f", "rawvideo",
                    "-y", "/dev/full"], timeout_s=60)
    assert str(caught.value).startswith(f"{piece}: no space left on device")
    assert not piece.exists() and list(piece.parent.iterdir()) == []


def test_other_failures_pass_through(tmp_path):
    with pytest.raises(PermissionError), atomic_path(tmp_path / "x.txt"):
        raise PermissionError(13, "denied")


@pytest.mark.skipif(os.geteuid() != 0, reason="a small filesystem is a tmpfs mount, which needs root")
@pytest.mark.parametrize("short_kb", [4, 12, 200])
def test_a_disk_that_fills_as_ffmpeg_writes_the_trailer_leaves_no_broken_file(tmp_path, short_kb):
    # with the index reserved up front (the join's -moov_size), ffmpeg exits 0 when only its trailer's
    # writes fail ("Error writing trailer ...: No space left on device"; a disk a few KB short of the
    # file), leaving an MP4 without its index: the runner must not take that for success
    source = tmp_path / "source.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=640x360:d=4", "-c:v", "libx264",
                    "-crf", "8", "-preset", "ultrafast", str(source)], check=True)
    small = tmp_path / "small"
    small.mkdir()
    size_k = source.stat().st_size // 1024 - short_kb
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs", str(small)], check=True)
    try:
        out = small / "episode.mp4"
        with pytest.raises(DiskFull, match="no space left on device"), atomic_path(out) as tmp:
            ffmpeg.run([ffmpeg.FFMPEG, "-v", "error", "-i", str(source), "-c", "copy", "-moov_size", "65536",
                        "-f", "mp4", "-y", str(tmp)],
                       timeout_s=120)
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
