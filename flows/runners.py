"""Where tasks run (this machine's thread pool, or a Dask cluster) and which failures are retried.

Flows declare a ``ThreadPool`` in their decorators; ``using(flow)`` swaps in a ``DaskTaskRunner``
when a build runs inside ``dask(address)``. Dask workers run the same task functions, so every
path they touch (the cache, the call-out, ffmpeg) must be the same on every machine.

Retries are for what can succeed a second later (storage, network, a lost worker); a bad
upload, a bad spec or a failing ffmpeg fails the same way every time and is never retried.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from render.core import ffmpeg
from render.core.errors import FfmpegError, MediaRejected, UserError

from . import progress
from .prefect_setup import heartbeats_off, local_api, temporary_api

R = TypeVar("R")

#: The CLI's ``--dask`` default comes from here.
ADDRESS_ENV = "REMIXTV_DASK_ADDRESS"

#: A task failing transiently is tried this many more times, after 2, 4, 8 s (each +-50 %).
RETRIES = 3
RETRY_BACKOFF_S = 2.0

_address: str | None = None
_log = logging.getLogger("remixtv.runners")


# --- where tasks run -------------------------------------------------------------------------

_LOCAL = re.compile(r"local(?::(\d+))?")
_REMOTE = re.compile(r"(?:(tcp|tls)://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def parse_address(text: str) -> tuple[str, int | str]:
    """``local:N`` -> ("local", N); ``tcp://host:port`` (or ``host:port``, ``tls://``) -> ("remote", address)."""
    text = text.strip()
    if m := _LOCAL.fullmatch(text):
        n = int(m.group(1)) if m.group(1) else (os.cpu_count() or 1)
        if n < 1:
            raise UserError(f"--dask {text!r}: a local cluster needs at least 1 worker (e.g. local:2)")
        return "local", n
    if (m := _REMOTE.fullmatch(text)) and 0 < int(m.group(3)) < 65536:
        return "remote", f"{m.group(1) or 'tcp'}://{m.group(2)}:{m.group(3)}"
    raise UserError(f"--dask {text!r}: expected local:N (a Dask cluster of N worker processes on this machine) "
                    f"or a scheduler address like tcp://host:8786")


class ThreadPool(ThreadPoolTaskRunner):
    """Prefect's thread pool task runner, except that a stop ends the running tasks at once.

    A flow stopped by Ctrl-C or ``kill`` (KeyboardInterrupt, Prefect's TerminationSignal) leaves
    its task runner on the way out, and the pool then waits for the tasks it is running: a piece
    of a master renders for minutes. Ending their ffmpegs first makes each of them fail with
    ``ffmpeg.Interrupted`` within moments; nothing new starts.
    """

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        from prefect.exceptions import TerminationSignal

        if exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, TerminationSignal)):
            ffmpeg.stop_all()
        super().__exit__(exc_type, exc_value, traceback)


def using(flow_obj):
    """``flow_obj`` with the task runner chosen at run time (the thread pool its decorator declares,
    or a Dask runner on the cluster of the enclosing ``dask(...)``). Called inside a flow run (a
    subflow), or with no server configured, it sends no heartbeats (see ``heartbeats_off``)."""
    runner = flow_obj
    if _address is not None:
        from prefect_dask import DaskTaskRunner

        runner = flow_obj.with_options(task_runner=DaskTaskRunner(address=_address))

    def call(*args, **kwargs):
        from prefect.context import FlowRunContext

        inside = FlowRunContext.get() is not None
        if not inside:
            local_api()
        with heartbeats_off(when=inside or temporary_api()):
            return runner(*args, **kwargs)

    return call


def opaque_arg(value):
    """A task argument Prefect hands over without walking it (``quote``): it otherwise visits every
    object inside, looking for futures (seconds a build for 30 pieces given 170 sources each). On a
    Dask cluster the argument goes as it is: prefect-dask ships a quote to the worker unopened."""
    if _address is not None:
        return value
    from prefect.utilities.annotations import quote

    return quote(value)


@contextlib.contextmanager
def dask(address: str | None, cache_root: str | os.PathLike | None = None, *,
         quiet: bool = True, wait_workers_s: float = 60) -> Iterator[str | None]:
    """Run the builds inside this block on Dask: ``local:N`` starts a LocalCluster of N worker
    processes for the block; any other address connects to a running scheduler. ``None`` does nothing.

    Every worker is checked first: it imports the same remixtv, finds ffmpeg and sees the cache
    folder (a marker written here must be readable there), so a worker on a machine without the
    shared folder is an error up front, not a failed piece later. Tasks report to the same
    Prefect API as this process: a running server (``PREFECT_API_URL``), or, when every worker is
    on this machine, the temporary one this process starts anyway.
    """
    global _address
    if not address:
        yield None
        return
    kind, value = parse_address(address)
    from distributed import Client, LocalCluster

    level = logging.ERROR if quiet else logging.INFO
    if quiet:
        logging.getLogger("distributed").setLevel(level)
    with contextlib.ExitStack() as stack:
        if kind == "local":
            # one task per worker process at a time: each task is an ffmpeg process that uses its own threads
            cluster = stack.enter_context(LocalCluster(n_workers=int(value), threads_per_worker=1, processes=True,
                                                       dashboard_address=None, silence_logs=level))
            scheduler = cluster.scheduler_address
        else:
            scheduler = str(value)
        client = None
        try:
            client = Client(scheduler, timeout=15, set_as_default=False)
            client.wait_for_workers(1, timeout=wait_workers_s)
        except (OSError, TimeoutError) as exc:
            if client is not None:
                client.close()
            raise UserError(f"--dask {address}: cannot use the Dask scheduler at {scheduler} "
                            f"({exc.__class__.__name__}: {exc}); start one with `dask scheduler` and "
                            f"workers with `dask worker {scheduler}`") from None
        with client:
            workers = _check_workers(client, address, cache_root)
        stack.enter_context(_shared_prefect_api(address, workers))
        previous, _address = _address, scheduler
        try:
            yield scheduler
        finally:
            _address = previous


def _check_workers(client, address: str, cache_root: str | os.PathLike | None) -> list[str]:
    """Ask every worker what it can see; raise a UserError listing each one that cannot work."""
    from render import __version__
    from render.core.cache import Cache

    root = Cache(Path(cache_root) if cache_root else None).root.resolve()
    token = uuid.uuid4().hex
    marker = root / f".dask-check-{token}.part"  # swept like any leftover if we die here
    marker.write_text(token)
    try:
        seen = client.run(_worker_view, str(marker), token)
    finally:
        marker.unlink(missing_ok=True)
    problems = []
    for worker, view in sorted(seen.items()):
        if view["version"] != __version__:
            problems.append(f"worker {worker} runs remixtv {view['version']}, this machine {__version__}: "
                            f"install the same version on every worker")
        if not view["ffmpeg"]:
            problems.append(f"worker {worker} has no ffmpeg on its PATH: install it (./run.sh setup)")
        if not view["cache"]:
            problems.append(f"worker {worker} cannot read the cache folder {root}: mount the same shared "
                            f"folder at the same path on every machine (see docs/machines.md)")
    if problems:
        raise UserError([f"--dask {address}: {p}" for p in problems])
    return [view["host"] for view in seen.values()]


def _worker_view(marker: str, token: str) -> dict:
    """Runs on a worker: what it needs to render pieces for us."""
    from render import __version__

    try:
        cache_ok = Path(marker).read_text() == token
    except OSError:
        cache_ok = False
    return {"version": __version__, "ffmpeg": bool(shutil.which(os.environ.get("REMIXTV_FFMPEG", "ffmpeg"))),
            "cache": cache_ok, "host": socket.gethostname()}


@contextlib.contextmanager
def _shared_prefect_api(address: str, worker_hosts: list[str]) -> Iterator[None]:
    """Make task runs on workers report to this process's Prefect API.

    Without this each worker process starts a temporary server of its own (seconds of CPU per
    worker, and the runs are scattered). The settings of the calling context travel with every
    task to the workers, so setting the URL here is enough.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    here = socket.gethostname()
    if any(host != here for host in worker_hosts):
        raise UserError(f"--dask {address}: workers on other machines need a Prefect server they can reach: "
                        f"run `prefect server start --host 0.0.0.0` on one machine and set "
                        f"PREFECT_API_URL=http://THAT-HOST:4200/api everywhere")
    # the same (singleton) temporary server this process's own client would start on first use
    from prefect.server.api.server import SubprocessASGIServer

    local_api()
    server = SubprocessASGIServer()
    server.start()  # a no-op once local_api started it
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


# --- collecting results ------------------------------------------------------------------------

def _as_completed(futures: list[PrefectFuture[R]], poll_s: float = 0.2) -> Iterator[PrefectFuture[R]]:
    """Futures as they finish, waiting in steps of ``poll_s`` so that a Ctrl-C or ``kill`` is acted on
    at once. Linux gives a process's signal to any of its threads, and Python runs the handler when
    the main thread next runs Python code: waiting without a timeout (as Prefect's ``as_completed``
    does), the main thread slept through a Ctrl-C until the next task finished, which for a master
    piece can be minutes."""
    finished: queue.SimpleQueue[PrefectFuture[R]] = queue.SimpleQueue()
    for future in futures:
        future.add_done_callback(finished.put)
    for _ in futures:
        future = None
        while future is None:
            with contextlib.suppress(queue.Empty):
                future = finished.get(timeout=poll_s)
        yield future


def gather(futures: list[PrefectFuture[R]], stage: str | None = None,
           units: Callable[[int, R], Iterable[tuple[str, float]]] | None = None) -> list[R]:
    """Results in submission order. As each task finishes, ``units(index, result)`` -> (key, done)
    pairs are reported to ``progress`` from this process: on Dask the tasks' own reports stay on
    the workers. Keys match what the tasks report locally, so on the thread pool this repeats
    the same final numbers and changes nothing."""
    index = {id(f): i for i, f in enumerate(futures)}
    for future in _as_completed(futures):
        result = future.result()
        if stage and units:
            for key, done in units(index[id(future)], result):
                progress.update(stage, key, done)
    return [f.result() for f in futures]


# --- retries -----------------------------------------------------------------------------------

# errno values that mean "try again": the device, the network or a remote filesystem hiccupped
_TRANSIENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    "EIO", "ESTALE", "EAGAIN", "EBUSY", "EINTR", "ETIMEDOUT", "ECONNRESET", "ECONNREFUSED", "ECONNABORTED",
    "EHOSTUNREACH", "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "ENETRESET", "ENOTCONN", "EPIPE", "ENOLCK",
    "EREMOTEIO") if hasattr(errno, name))

_PERMANENT = (UserError, MediaRejected, FfmpegError)


def is_transient(exc: BaseException) -> bool:
    """True when retrying could succeed: storage or network trouble, throttling, a lost worker.

    Never for remixtv's own verdicts (bad spec, bad folder, rejected media, a failing ffmpeg),
    nor for programming errors. An error may say so itself with a boolean ``transient`` attribute
    (``flows.storage.StorageError`` does: a UserError, yet a 503 from the store is worth a retry).
    A wrapper raised ``from`` a transient cause counts as transient, unless it is a verdict.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(getattr(current, "transient", None), bool):
            return current.transient
        if isinstance(current, _PERMANENT):
            return False
        if _transient_itself(current):
            return True
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return False


def _transient_itself(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    if module.startswith("distributed"):
        from distributed import KilledWorker
        from distributed.comm.core import CommClosedError

        if isinstance(exc, (KilledWorker, CommClosedError)):
            return True
    if module.startswith("botocore"):
        return _botocore_transient(exc)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _TRANSIENT_ERRNOS
    return False


def _botocore_transient(exc: BaseException) -> bool:
    """The object store's own view of "retryable" (botocore's standard retry mode lists)."""
    from botocore import exceptions as bx
    from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

    if isinstance(exc, bx.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return (code in TransientRetryableChecker._TRANSIENT_ERROR_CODES
                or code in ThrottledRetryableChecker._THROTTLED_ERROR_CODES
                or status in TransientRetryableChecker._TRANSIENT_STATUS_CODES or status == 429)
    return isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError))


def retry_condition(task, task_run, state) -> bool:
    """Prefect's ``retry_condition_fn``: retry a failed task run only for a transient error."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    transient = isinstance(exc, BaseException) and is_transient(exc)
    if transient:
        _log.warning("task %s failed transiently (%s: %s); retrying", task.name, type(exc).__name__, exc)
    return transient


#: ``@task(**RETRY)``: up to RETRIES retries, exponential backoff with jitter, transient errors only.
RETRY: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=RETRY_BACKOFF_S),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_condition,
}
