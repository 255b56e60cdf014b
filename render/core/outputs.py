"""What makes a killed build safe to run again: one build per output, and no leftovers.

Every output is written through a temporary (``render.core.cache.atomic_path``: ``.<stem>.*<suffix>.part``,
renamed into place when whole), so a build killed at any moment leaves only hidden temporaries. An
output's folder is held by one build at a time (``output_lock``), which clears a dead build's
temporaries there; ``sweep_stale`` clears the cache's once nobody can be writing them, and the lock
files in the cache's ``locks/`` that no live process holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from render.core.cache import sweep_locks
from render.core.errors import UserError

#: Leftovers of an interrupted write in the cache are removed once untouched this long: a live
#: render writes its files continuously and no ffmpeg run is allowed longer than ~32 minutes.
STALE_AFTER_S = 3600.0
#: Small files (reports, JSON) are written in well under a second; older ``.part`` files are dead.
STALE_SMALL_AFTER_S = 60.0


def _part_stem(path: Path) -> str:
    """What ``render.core.cache.atomic_path`` names its temporary files for ``path``: ``.<stem>.*<suffix>.part``."""
    return f".{path.stem}."


def _is_leftover(name: str) -> bool:
    return name.startswith(".") and (name.endswith(".part") or ".old-" in name)


def _last_touched(path: Path) -> float:
    """Newest mtime of ``path`` and, for a folder, of what is directly in it (ffmpeg writes there)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        with os.scandir(path) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_stale(cache_root: str | os.PathLike, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove what interrupted writes left in the cache (``.*.part`` temporaries, ``.*.old-*``
    folders) once untouched for ``older_than_s``, and the piece locks in ``locks/`` no live process
    holds (``render.core.cache.sweep_locks``: a killed render's); returns what was removed.

    Younger leftovers may belong to a live build on this or another machine, so they stay. They
    are harmless either way: hidden names that no reader looks up, and a rerun renders into a
    fresh temporary of its own.
    """
    now, removed = time.time(), []
    for folder, dirs, files in os.walk(cache_root):
        for name in [d for d in dirs if _is_leftover(d)] + [f for f in files if _is_leftover(f)]:
            path = Path(folder) / name
            with contextlib.suppress(OSError):
                if now - _last_touched(path) > older_than_s:
                    _remove(path)
                    removed.append(path)
        dirs[:] = [d for d in dirs if not _is_leftover(d)]
    return removed + sweep_locks(Path(cache_root) / "locks")


@contextlib.contextmanager
def output_lock(out_file: str | os.PathLike, cache_root: str | os.PathLike | None = None) -> Iterator[None]:
    """Hold ``out_file``'s folder for one build, and clear what a killed build left there.

    Under the lock no other live build can be writing ``out_file``, so every temporary of it is a
    dead build's and goes at once; other ``.part`` files in the folder (reports written in
    milliseconds) go once a minute old. With ``cache_root`` the cache is swept too (``sweep_stale``).
    """
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out_file.with_name(f".{out_file.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise UserError(f"{out_file}: another build is writing it ({holder}); wait for it to finish "
                            f"or build into another --out folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        now, mine = time.time(), _part_stem(out_file)
        for entry in out_file.parent.iterdir():
            if not _is_leftover(entry.name):
                continue
            with contextlib.suppress(OSError):
                if entry.name.startswith(mine) or now - _last_touched(entry) > STALE_SMALL_AFTER_S:
                    _remove(entry)
        if cache_root is not None:
            sweep_stale(cache_root)
        yield
    finally:
        os.close(fd)  # releases the lock; the (empty-able) lock file stays, hidden
