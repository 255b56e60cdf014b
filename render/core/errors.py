"""One root error for the engine; each subclass carries its evidence."""

from __future__ import annotations

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


class MediaRejected(RemixError):
    """A submission cannot be used; ``reason`` is one line a producer understands."""

    def __init__(self, reason: str, evidence: str = ""):
        self.reason = reason
        self.evidence = evidence
        super().__init__(reason)


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./:=,+" for c in arg) else repr(arg)
