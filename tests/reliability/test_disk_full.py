"""A full disk, wherever it surfaces (Python's ENOSPC, ffmpeg's "No space left on device"), is one
DiskFull line naming the output being written; /dev/full stands in for the full filesystem."""

from __future__ import annotations

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
    assert msg.startswith(f"{out}: no space left on device (") and " MB free of " in msg and "needs more than" in msg
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
