"""A progress channel from tasks to whoever is watching (the CLI's bars, or nobody).

Flows stay free of UI: tasks report ``(stage, key, units done)``; the CLI installs a sink that
draws rich progress bars. The default sink drops everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Sink:
    """Receives progress. Subclass and install with ``install``."""

    def start(self, stage: str, total: float, label: str) -> None: ...

    def update(self, stage: str, key: str, done: float) -> None: ...

    def finish(self, stage: str) -> None: ...


_sink: Sink = Sink()
_lock = threading.Lock()


def install(sink: Sink) -> None:
    global _sink
    _sink = sink


def start(stage: str, total: float, label: str) -> None:
    with _lock:
        _sink.start(stage, total, label)


def update(stage: str, key: str, done: float) -> None:
    with _lock:
        _sink.update(stage, key, done)


def finish(stage: str) -> None:
    with _lock:
        _sink.finish(stage)


def callback(stage: str, key: str, scale: float) -> Callable[[float], None]:
    """A ``fraction -> None`` callback that reports ``fraction * scale`` units for ``key``."""
    return lambda fraction: update(stage, key, fraction * scale)
