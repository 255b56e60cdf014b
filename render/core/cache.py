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
    ``path`` at a time across processes sharing the folder; others wait their turn. The lock file
    goes on release; one a killed holder left is removed by ``sweep_locks``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    fd = _locked(lock, wait=True)
    try:
        yield
    finally:
        _release(lock, fd)


def sweep_locks(folder: Path) -> list[Path]:
    """Remove the lock files of ``held`` in ``folder`` that no process holds (a holder killed before
    it could remove its own); returns what was removed. One being held is never touched."""
    removed = []
    for lock in Path(folder).glob(".*.lock") if Path(folder).is_dir() else ():
        with contextlib.suppress(OSError):
            fd = _locked(lock, wait=False, create=False)
            if fd is not None:
                _release(lock, fd)
                removed.append(lock)
    return removed


def _locked(lock: Path, wait: bool, create: bool = True) -> int | None:
    """An open, exclusively locked descriptor of the file named ``lock``; None when another process
    holds it (``wait`` False) or it does not exist (``create`` False).

    A lock file is removed by whoever holds it, so a process that waited on it may wake up holding a
    file that no longer has the name: the lock counts only if the name still leads to the file locked,
    otherwise it tries again on the file that has the name now."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
        except FileNotFoundError:
            if create:
                raise
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            mine, named = os.fstat(fd), os.stat(lock)
            if (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino):
                return fd
        except BlockingIOError:
            os.close(fd)
            return None
        except FileNotFoundError:
            if not create:
                os.close(fd)
                return None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _release(lock: Path, fd: int) -> None:
    """Remove the lock file while still holding it (a waiter then finds it gone and takes the new
    name), then let go."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
    finally:
        os.close(fd)


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

