"""How remixtv sets Prefect up: one place for every command (``session``) and for library callers.

Quiet and local by default: no telemetry; logs only when asked (``-v``) or for a service; with no
server configured (``PREFECT_API_URL``), a temporary API server that lives and dies with this
process, and no flow-run heartbeats (nobody is left to read them); the Dask cluster, when asked for.

Nothing here imports Prefect at module level: Prefect reads its settings when it is first imported,
so commands enter ``session`` before they import a flow where they can.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

#: Environment defaults, applied when ``flows`` is imported (a user's own settings win).
DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    # The ephemeral server's start-up (8-14 s here) can pass Prefect's 20 s default on a loaded 2-core
    # machine (a nightly build next to an editor's session); waiting longer beats failing the build.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def defaults() -> None:
    """Set ``DEFAULTS`` where the environment does not say otherwise."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


#: The loggers Prefect's own logging.yml sets from each setting.
_LOGGERS = {"PREFECT_LOGGING_LEVEL": ("prefect", "prefect.extra", "prefect.client", "prefect.infrastructure"),
            "PREFECT_SERVER_LOGGING_LEVEL": ("prefect.server", "uvicorn", "fastapi")}


def logging_levels(verbose: bool = False, service: bool = False) -> None:
    """Prefect's log levels for a command: its logs with ``verbose``, every run's INFO for a ``service``
    (its journal should say what every run did), else none.

    Prefect logs a failed flow with a traceback; for user mistakes the CLI prints its own one-liners.
    The settings are read when Prefect is first imported (and by the servers it starts); its loggers
    are set here too, for when it already was.
    """
    levels = {"PREFECT_LOGGING_LEVEL": "INFO" if verbose or service else "CRITICAL",
              "PREFECT_SERVER_LOGGING_LEVEL": "WARNING" if verbose else "CRITICAL"}
    for setting, level in levels.items():
        os.environ[setting] = level
        for name in _LOGGERS[setting]:
            logging.getLogger(name).setLevel(level)
    if not verbose:
        # Prefect's event and log senders log under their class names, outside the "prefect" tree:
        # a stopped build otherwise ends on "Still processing items: 6 items remaining..."
        for name in ("EventsWorker", "APILogWorker"):
            logging.getLogger(name).setLevel(logging.ERROR)


def temporary_api() -> bool:
    """True when flow runs report to the temporary server of this process: no ``PREFECT_API_URL`` in
    the environment (``runners.dask`` points the settings, not the environment, at that same server)."""
    return not os.environ.get("PREFECT_API_URL")


@contextlib.contextmanager
def session(verbose: bool = False, *, dask: str | None = None, cache_root: str | None = None,
            service: bool = False) -> Iterator[None]:
    """Prefect for one command, set up the one way every command uses.

    Logging first (``logging_levels``, before Prefect is imported); then the Dask cluster of ``dask``
    (``runners.dask``: checked before the server starts, which is slower to fail); then, with no
    server configured, the temporary local API (``local_api``) with heartbeats off. A ``service``
    (``nightly serve``) works against the configured server alone: it starts no temporary one and
    keeps its heartbeats.
    """
    logging_levels(verbose, service)
    from . import runners

    with runners.dask(dask, cache_root, quiet=not verbose):
        if service:
            yield
            return
        local_api()
        with heartbeats_off(when=temporary_api()):
            yield


def local_api() -> None:
    """Start the temporary Prefect API server now, in a session of its own (once per process).

    Prefect starts the same server on first use, but in our process group, so a Ctrl-C in the
    terminal reached it too: it shut down at once, and the flow engine then spent minutes
    retrying to tell it that the interrupted runs had crashed (a Ctrl-C'd build was still
    hanging after 2 minutes). In its own session it hears only us: Prefect stops it when we
    exit, and a parent-death signal stops it if we are killed outright. Every Prefect client in
    this process finds it as the ephemeral server it would have started (same singleton), so
    nothing else changes.
    """
    import threading

    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return  # a server of the user's, or none allowed (Prefect then says so itself)
    # the parent-death signal is sent when the starting *thread* ends: only the main thread lasts
    if threading.current_thread() is not threading.main_thread():
        return
    _own_session_server().start()  # a no-op once running


def _own_session_server():
    import subprocess
    import sys

    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    from render.core import ffmpeg

    class OwnSessionServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            # SubprocessASGIServer's own command and environment (Prefect 3.8), plus the session
            env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                   "PREFECT__SERVER_FINAL": "1",
                   **get_current_settings().to_environment_variables(exclude_unset=True)}
            argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                    "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "error", "--lifespan", "on"]
            # TERM, not KILL: uvicorn closes its database cleanly
            return subprocess.Popen(ffmpeg.dies_with_caller(argv, "TERM"), env=env, start_new_session=True)

    return OwnSessionServer()


@contextlib.contextmanager
def heartbeats_off(when: bool = True) -> Iterator[None]:
    """Flow runs started inside this block send no heartbeats (if ``when``).

    A heartbeat tells a Prefect server that the process running a flow is alive, so it can mark
    the run crashed when it dies. Prefect 3.8 ends each heartbeat thread by joining it while it
    sleeps in 1 s steps: every flow run pays up to a second at its end, 3-4 s of a build that has
    nothing to render. A subflow runs in its parent's process, so the parent's heartbeat already
    says whether it lives; and with the ephemeral server, which dies with the process, nobody is
    left to read one at all.
    """
    if not when:
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


