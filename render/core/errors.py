"""One root error for the engine; each subclass carries its evidence."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path


class RemixError(Exception):
    """Root of every error remixtv raises on purpose."""


class UserError(RemixError):
    """A mistake the user can fix (bad spec, bad folder, bad flag).

    The CLI prints ``str(error)`` one problem per line and exits 1, never a traceback.
    """

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """One problem in a YAML spec: ``file:line: path: message``."""

    file: Path
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class SpecError(UserError):
    """Every problem found in a spec, in file order."""

    def __init__(self, problems: list[SpecProblem]):
        self.spec_problems = sorted(problems, key=lambda p: (str(p.file), p.line))
        super().__init__([str(p) for p in self.spec_problems])


class FfmpegError(RemixError):
    """ffmpeg or ffprobe failed; keeps the command and the tail of stderr."""

    def __init__(self, argv: list[str], returncode: int | None, stderr_tail: str, reason: str = ""):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.reason = reason or f"exit code {returncode}"
        super().__init__(
            f"{argv[0]} failed ({self.reason})\n  command: {' '.join(_quote(a) for a in argv)}\n"
            f"  stderr (tail):\n    " + "\n    ".join(stderr_tail.splitlines()[-12:])
        )


class DiskFull(UserError):
    """A write ran out of space (ENOSPC from Python, or ffmpeg's "No space left on device"): one line
    naming where, what is free there and what the write needed, never a traceback."""

    def __init__(self, path: Path, free: int, total: int, needed: int):
        self.path, self.free, self.total, self.needed = Path(path), free, total, needed
        # what the write held when the disk filled is a floor for what it needs, once it is worth saying
        need = f"more than {_mb(free + needed)}" if needed >= 100_000 else "more space than that"
        super().__init__(f"{path}: no space left on device ({_mb(free)} free of {_mb(total)}); writing it needs "
                         f"{need} there: free space (or point --cache/--out at a bigger disk) and run the "
                         f"same command again, everything finished so far is kept")

    @staticmethod
    def caused(exc: BaseException) -> bool:
        """Whether ``exc`` is a write that found the disk full (a DiskFull inside an outer write too: the
        outer one is named, the one a user knows)."""
        return isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
            isinstance(exc, FfmpegError) and "No space left on device" in exc.stderr_tail)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class MediaRejected(RemixError):
    """A submission cannot be used; ``reason`` is one line a producer understands."""

    def __init__(self, reason: str, evidence: str = ""):
        self.reason = reason
        self.evidence = evidence
        super().__init__(reason)


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./:=,+" for c in arg) else repr(arg)
