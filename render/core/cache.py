"""Content-addressed cache and atomic output.

Everything derived from a submission is keyed by the SHA-256 of the source bytes plus the
house-format version plus the parameters that matter, so the same upload is processed once
across builds and call-outs, and an edited upload is never served stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from render.core.errors import DiskFull

_UMASK = os.umask(0)
os.umask(_UMASK)


def default_root() -> Path:
    """``$REMIXTV_CACHE``, else ``$XDG_CACHE_HOME/remixtv``, else ``~/.cache/remixtv``."""
    env = os.environ.get("REMIXTV_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "remixtv"


def _default(o):
    if isinstance(o, Fraction):
        return str(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot key {type(o).__name__}")


def key_of(*parts) -> str:
    """A stable hex key for JSON-able parts (Fractions and Paths allowed)."""
    blob = json.dumps(parts, sort_keys=True, default=_default, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class Cache:
    """A folder of derived files: ``<root>/<kind>/<key>...``."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else default_root()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str, name: str) -> Path:
        folder = self.root / kind / name[:2]
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def content_hash(self, path: Path) -> str:
        """SHA-256 of a file's bytes, memoised by (path, size, mtime, inode) so unchanged files are not re-read."""
        st = path.stat()
        memo = self.path("hashes", key_of(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino))
        if memo.exists():
            value = memo.read_text().strip()
            if len(value) == 64:
                return value
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        write_text_atomic(memo, h.hexdigest())
        return h.hexdigest()

    def read_json(self, kind: str, key: str) -> dict | None:
        """A cached JSON document, or None if missing or corrupt (then it is rebuilt)."""
        p = self.path(kind, key + ".json")
        try:
            return json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def write_json(self, kind: str, key: str, data: dict) -> None:
        write_text_atomic(self.path(kind, key + ".json"), json.dumps(data, default=_default, ensure_ascii=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that readers see the old file or the new one, never half of it."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold ``path``'s hidden lock file (``.<name>.lock`` beside it) for the block: one writer of
    ``path`` at a time across processes sharing the folder; others wait their turn."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock; the empty lock file stays (removing it would race a waiter)


@contextlib.contextmanager
def _disk_full_named(path: Path, tmp: Path) -> Iterator[None]:
    """Every output is written through ``atomic_path``/``atomic_dir``, so this is the one place a full
    disk becomes ``DiskFull``: it names the output and what its temporary held when space ran out."""
    try:
        yield
    except Exception as exc:
        if not DiskFull.caused(exc):
            raise
        # the blocks it holds, not its length (a file ffmpeg seeked in can be longer than what it holds)
        written = sum(f.stat().st_blocks * 512 for f in [tmp, *tmp.rglob("*")] if f.is_file()) if tmp.exists() else 0
        usage = shutil.disk_usage(path.parent)
        raise DiskFull(path, usage.free, usage.total, written) from exc


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        with _disk_full_named(path, tmp):
            yield tmp
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        with _disk_full_named(path, tmp):
            yield tmp
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

