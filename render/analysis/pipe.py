"""Stream raw media out of ffmpeg into numpy, in constant memory, through ``ffmpeg.run``.

``ffmpeg.run`` is the only place a process starts. It writes stdout to ``stdout_path``; we
give it a named pipe (FIFO) that a reader thread drains in whole records (a video frame, or a
block of audio samples), so a 15-minute video never sits in memory or on disk.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from .. import ffmpeg

ChunkFn = Callable[[bytes], None]


def stream(argv: list[str], record_bytes: int, on_chunk: ChunkFn, *, timeout_s: float,
           records_per_chunk: int = 64, memory_bytes: int = ffmpeg.DEFAULT_MEMORY_LIMIT_BYTES) -> ffmpeg.Run:
    """Run ``argv`` (which must write raw records to ``pipe:1``) and hand whole records to ``on_chunk``.

    ``on_chunk`` receives ``bytes`` holding a whole number of records (the last chunk may be
    short, never a partial record). An exception in ``on_chunk`` stops ffmpeg (broken pipe)
    and is raised here; an ffmpeg failure raises FfmpegError as ``ffmpeg.run`` does.
    """
    folder = Path(tempfile.mkdtemp(prefix="remixtv-pipe-"))
    fifo = folder / "out"
    os.mkfifo(fifo, 0o600)
    failure: list[BaseException] = []
    want = record_bytes * max(1, records_per_chunk)

    def reader() -> None:
        with open(fifo, "rb", buffering=0) as f:
            buf = bytearray()
            try:
                while True:
                    data = f.read(want - len(buf) if len(buf) < want else want)
                    if not data:
                        break
                    buf += data
                    if len(buf) >= want:
                        whole = len(buf) - len(buf) % record_bytes
                        on_chunk(bytes(buf[:whole]))
                        del buf[:whole]
                whole = len(buf) - len(buf) % record_bytes
                if whole:
                    on_chunk(bytes(buf[:whole]))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)

    thread = threading.Thread(target=reader, daemon=True, name="remixtv-pipe")
    thread.start()
    try:
        result = ffmpeg.run(argv, timeout_s=timeout_s, memory_bytes=memory_bytes, stdout_path=fifo)
    except BaseException:
        if not thread.is_alive() or not failure:
            thread.join(10)
        if failure:
            raise failure[0] from None
        raise
    finally:
        if thread.is_alive():
            thread.join(10)
        try:
            fifo.unlink()
            folder.rmdir()
        except OSError:
            pass
    if failure:
        raise failure[0]
    return result
