"""The only module that starts ffmpeg or ffprobe.

Commands are plain argv lists built as data by the rest of the engine (we chose
argv-as-data over a graph-builder library: ffmpeg-python is unmaintained, and a
list of strings is what tests assert and what error messages show). This module
adds what every call needs: a timeout, a memory limit, a protocol allow-list for
untrusted inputs, progress parsing, and errors that keep the command and stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from render.core.errors import FfmpegError

FFMPEG = os.environ.get("REMIXTV_FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("REMIXTV_FFPROBE", "ffprobe")

#: Demuxers a submission may be read with. Decided by probing content (never by
#: extension); playlists (hls, concat), devices, lavfi, tty and subtitle formats are absent.
SUBMISSION_DEMUXERS = (
    "mov", "mp4", "m4a", "3gp", "matroska", "webm", "avi", "flv", "mpegts", "mpeg", "ogg",
    "wav", "w64", "aiff", "caf", "mp3", "aac", "flac", "amr", "asf", "ac3", "eac3", "wv", "ape",
    "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe", "gif", "gif_pipe",
)

#: Protocols a submission may use: plain local files only (no http, no nested concat/subfile).
SUBMISSION_PROTOCOLS = "file"

DEFAULT_MEMORY_LIMIT_BYTES = int(os.environ.get("REMIXTV_FFMPEG_MEMORY_MB", "6144")) * 1024 * 1024

ProgressFn = Callable[[float], None]

#: util-linux's setpriv (Essential in Debian) starts each command with a parent-death signal, so an
#: ffmpeg whose caller dies (a Dask worker lost mid-render, a killed build) is killed with it instead
#: of running on, orphaned, in its own session. A preexec_fn could do the same, but it runs Python
#: in the child of a threaded process, which can deadlock; setpriv sets it and execs, same pid.
_SETPRIV = shutil.which("setpriv")


class Interrupted(KeyboardInterrupt):
    """This process is stopping (Ctrl-C, ``kill``): raised instead of a result, and never a verdict
    on the media (it is no ``Exception``, so nothing that handles a failed ffmpeg catches it)."""


#: Every ffmpeg this process runs, so a stop can end them at once: each runs in a session of its
#: own (out of reach of the terminal's Ctrl-C) and a task pool waits for its running tasks.
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()
_stopping = threading.Event()


def stop_all() -> None:
    """Kill every ffmpeg this process is running and refuse to start more: the process is stopping."""
    with _running_lock:
        _stopping.set()
        for proc in list(_running):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)


def dies_with_caller(argv: Sequence[str], signal: str = "KILL") -> list[str]:
    """``argv`` started so that the kernel sends it ``signal`` if the thread starting it dies."""
    return [_SETPRIV, "--pdeathsig", signal, *argv] if _SETPRIV else list(argv)


def untrusted_input(link: Path, demuxer: str | None = None) -> list[str]:
    """Input options that open a submission safely (local file only, allowed demuxers only).

    ``link`` is a neutral-named symlink to the submission (see ``intake.safe_link``), so
    probing sees content, never a lying extension or an image2 filename pattern.
    """
    opts = ["-protocol_whitelist", SUBMISSION_PROTOCOLS, "-format_whitelist", ",".join(SUBMISSION_DEMUXERS)]
    if demuxer:
        opts += ["-f", demuxer]
    return opts + ["-i", f"file:{link}"]


def concat_entry(path: Path) -> str:
    """A ``file`` line of a concat-demuxer listing, quoted for any path."""
    return "file '" + str(path.resolve()).replace("'", "'\\''") + "'\n"


@dataclass(frozen=True, slots=True)
class Run:
    """A finished command: its argv, stderr tail and wall time."""

    argv: tuple[str, ...]
    stderr_tail: str
    seconds: float
    stdout: bytes = b""


def run(
    argv: list[str],
    *,
    timeout_s: float,
    progress: ProgressFn | None = None,
    memory_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
    stdout_path: Path | None = None,
) -> Run:
    """Run an ffmpeg-family command; raise FfmpegError with evidence on failure.

    For ffmpeg, ``progress`` receives the output time in seconds as it advances.
    """
    argv = list(argv)
    if progress is not None and Path(argv[0]).name.startswith("ffmpeg"):
        argv = [argv[0], "-progress", "pipe:1", "-nostats", *argv[1:]]
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=40)
    binary = shutil.which(argv[0])
    if binary is None:
        raise _missing(argv)
    out_file = open(stdout_path, "wb") if stdout_path else None  # closed by _start or _wait
    proc = _start(argv, binary, out_file)
    _limit_memory(proc, memory_bytes)
    stdout_chunks: list[bytes] = []
    readers = _read_outputs(proc, tail, progress, stdout_chunks)
    _wait(proc, argv, timeout_s, tail, readers[0], out_file)
    for reader in readers:
        reader.join(5)
    _check_exit(proc, argv, tail, memory_bytes)
    return Run(tuple(argv), "\n".join(tail), time.monotonic() - started, b"".join(stdout_chunks))


def _missing(argv: list[str]) -> FfmpegError:
    return FfmpegError(argv, None, "", f"{argv[0]} is not installed (run ./run.sh setup)")


def _start(argv: list[str], binary: str, out_file) -> subprocess.Popen:
    """Start the command in a session of its own, registered for ``stop_all``."""
    try:
        with _running_lock:  # so stop_all sees every process started before it
            if _stopping.is_set():
                raise Interrupted(f"not started, stopping: {argv[0]}")
            proc = subprocess.Popen(
                dies_with_caller([binary, *argv[1:]]),
                stdin=subprocess.DEVNULL,
                stdout=out_file or subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # own process group, so a timeout kills the whole tree
            )
            _running.add(proc)
    except BaseException as exc:
        if out_file:
            out_file.close()
        if isinstance(exc, FileNotFoundError):
            raise _missing(argv) from None  # removed since the lookup above
        raise
    return proc


def _limit_memory(proc: subprocess.Popen, memory_bytes: int) -> None:
    try:
        # set from outside: a preexec_fn would run Python in the child of a threaded process (deadlock-prone)
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ProcessLookupError, PermissionError):
        pass  # already exited, or not ours to limit


def _read_outputs(proc: subprocess.Popen, tail: deque[str], progress: ProgressFn | None,
                  stdout_chunks: list[bytes]) -> list[threading.Thread]:
    """Threads that keep stderr's tail and read stdout (progress lines, or the output itself);
    the stderr reader first."""

    def read_stderr() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            tail.append(raw.decode("utf-8", "replace").rstrip())

    def read_stdout() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if progress is not None and raw.startswith(b"out_time_us="):
                value = raw.split(b"=", 1)[1].strip()
                if value.isdigit():
                    progress(int(value) / 1e6)
            elif progress is None:
                stdout_chunks.append(raw)

    readers = [threading.Thread(target=read_stderr, daemon=True)]
    readers[0].start()
    if proc.stdout is not None:
        readers.append(threading.Thread(target=read_stdout, daemon=True))
        readers[1].start()
    return readers


def _wait(proc: subprocess.Popen, argv: list[str], timeout_s: float, tail: deque[str],
          stderr_reader: threading.Thread, out_file) -> None:
    """Wait for the command; on a timeout or an interrupt its whole process group goes."""
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        stderr_reader.join(2)
        raise FfmpegError(argv, None, "\n".join(tail), f"timed out after {timeout_s:.0f} s") from None
    except BaseException:  # Ctrl-C while this thread waits: the process goes with us
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        raise
    finally:
        with _running_lock:
            _running.discard(proc)
        if out_file:
            out_file.close()


#: ffmpeg exits 0 when the last write of a file fails (a disk that fills as the trailer goes out):
#: the file is broken (no moov), and only these lines on stderr tell
_UNFINISHED = ("Error writing trailer", "Error closing file")


def _check_exit(proc: subprocess.Popen, argv: list[str], tail: deque[str], memory_bytes: int) -> None:
    if proc.returncode != 0 and _stopping.is_set():
        raise Interrupted(f"stopped: {argv[0]}")
    if proc.returncode == 0 and any(m in line for line in tail for m in _UNFINISHED):
        raise FfmpegError(argv, 0, "\n".join(tail), "exit code 0, but its output was not finished")
    if proc.returncode != 0:
        reason = f"exit code {proc.returncode}"
        if proc.returncode < 0:
            reason = f"killed by signal {-proc.returncode} (memory limit {memory_bytes >> 20} MiB?)"
        raise FfmpegError(argv, proc.returncode, "\n".join(tail), reason)


def ffprobe_output(path: Path, *entries: str, timeout_s: float = 120) -> dict:
    """ffprobe one of our own outputs (trusted) and return its JSON (format + streams)."""
    argv = [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", *entries, str(path)]
    return json.loads(run(argv, timeout_s=timeout_s).stdout or b"{}")
