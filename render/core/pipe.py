"""Stream raw media out of ffmpeg into numpy, in constant memory, through ``ffmpeg.run``.

``ffmpeg.run`` is the only place a process starts. Raw records (video frames, blocks of audio
samples) reach Python through a named pipe (FIFO) that a reader thread drains in whole records,
so a 15-minute video never sits in memory or on disk. The FIFO is either the process's stdout
(``stream``) or one output among others of a bigger command (``reading``: the render writes its
QC view of the picture beside the encode).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from render.core import ffmpeg

ChunkFn = Callable[[bytes], None]


def _keep_freed_memory() -> None:
    """Serve the meters' chunk-sized arrays from the heap and keep freed ones there.

    Raw media arrives in chunks of megabytes, and each meter makes float copies of a chunk (tens of
    megabytes). glibc gives blocks that large their own mappings and returns them to the kernel when
    freed, so every chunk page-faulted fresh, zeroed memory in again: analysing 40 of the demo's
    uploads took 925 000 page faults and 3.3 s of system time; from the heap, 17 000 and 0.8 s.
    The setting is process-wide (it is glibc's), so it is made where raw media is streamed.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: its defaults stand
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 256 << 20)
    libc.mallopt(m_trim_threshold, 512 << 20)


_keep_freed_memory()


@contextlib.contextmanager
def reading(record_bytes: int, on_chunk: ChunkFn, *, records_per_chunk: int = 64) -> Iterator[Path]:
    """A FIFO to give ffmpeg as an output (or as stdout); whole records written to it go to ``on_chunk``.

    ``on_chunk`` receives ``bytes`` holding a whole number of records (the last chunk may be short,
    never a partial record). An exception in ``on_chunk`` stops the writer (broken pipe) and is
    raised when the block ends; so is the block's own exception, first.
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
    def drain() -> None:
        while thread.is_alive():  # until the reader has had every record and its end of file
            _release(fifo)
            thread.join(0.2)

    try:
        try:
            yield fifo
        except BaseException:
            drain()
            if failure:  # the reader's error is why the writer failed (broken pipe)
                raise failure[0] from None
            raise
        drain()
        if failure:
            raise failure[0]
    finally:
        with contextlib.suppress(OSError):
            fifo.unlink()
            folder.rmdir()


def _release(fifo: Path) -> None:
    """Give a reader waiting to open the FIFO its end of file (no writer ever opened it: ffmpeg failed
    first); a reader already reading loses nothing."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # ENXIO: no reader waiting any more
    os.close(fd)


def stream(argv: list[str], record_bytes: int, on_chunk: ChunkFn, *, timeout_s: float,
           records_per_chunk: int = 64, memory_bytes: int = ffmpeg.DEFAULT_MEMORY_LIMIT_BYTES) -> ffmpeg.Run:
    """Run ``argv`` (which must write raw records to ``pipe:1``) and hand whole records to ``on_chunk``
    (see ``reading``); an ffmpeg failure raises FfmpegError as ``ffmpeg.run`` does."""
    with reading(record_bytes, on_chunk, records_per_chunk=records_per_chunk) as fifo:
        return ffmpeg.run(argv, timeout_s=timeout_s, memory_bytes=memory_bytes, stdout_path=fifo)
