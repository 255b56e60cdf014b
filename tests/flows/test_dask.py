"""More machines: the same build on a Dask LocalCluster of 2 worker processes gives the same episode
as the default thread pool, with pieces rendered by the workers, even when one worker dies mid-render;
retries happen only for transient failures (storage, network, a lost worker), never for bad media,
bad specs or a failing ffmpeg."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.callouts import six_pieces, write_callout
from tests.support.media import framemd5
from tests.support.processes import cli_env, descendants, finish, start_build, wait_for

# --- the Dask build ----------------------------------------------------------------------------

WRAPPER = """#!/bin/sh
# records who started each ffmpeg (pid and command line of the parent), then runs the real one
printf '%s\\t%s\\t%s\\n' "$PPID" "$(tr '\\0' ' ' < /proc/$PPID/cmdline)" "$(printf '%s ' "$@" | tr '\\n' ' ')" \\
  >> "$FFMPEG_CALLS"
exec {ffmpeg} "$@"
"""


def ffmpeg_spy(folder: Path) -> Path:
    """An ``ffmpeg`` (the name matters: it gets progress options) that logs its parent process."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = folder / "ffmpeg"
    spy.write_text(WRAPPER.format(ffmpeg=shutil.which("ffmpeg")))
    spy.chmod(0o755)
    return spy


def piece_renders(log: Path) -> list[tuple[int, str]]:
    """(parent pid, parent command line) of every ffmpeg that rendered a piece: the ones writing
    video.mp4 into a piece's temporary folder (QC and metering also read finished pieces)."""
    if not log.exists():
        return []
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.count("\t") == 2]
    return [(int(pid), cmd) for pid, cmd, args in rows if ".part/video.mp4" in args]


def rendering(log: Path) -> int | None:
    """A worker with a piece render (an ffmpeg writing into a piece's temporary folder) under way."""
    for pid, _ in piece_renders(log):
        for child in descendants(pid):
            try:
                if ".part/video.mp4" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                    return pid
            except OSError:  # it just ended
                continue
    return None


@pytest.fixture(scope="module")
def builds(tmp_path_factory, numba_warm):
    """The same spec built from empty caches at the same time, with the default runner and with
    ``--dask local:2``; the first Dask worker caught rendering a piece is SIGKILLed mid-render."""
    root = tmp_path_factory.mktemp("dask")
    spec = six_pieces(root)
    spy = ffmpeg_spy(root / "bin")
    procs = {}
    for name, extra in (("threads", ()), ("dask", ("--dask", "local:2"))):
        env = cli_env(REMIXTV_FFMPEG=str(spy), FFMPEG_CALLS=str(root / f"{name}.calls"))
        procs[name] = start_build(spec, root / f"cache-{name}", root / f"out-{name}", env, root / f"{name}.log", *extra)
    wait_for(procs["dask"], root / "dask.log", lambda: rendering(root / "dask.calls"), "a worker was rendering")
    lost = rendering(root / "dask.calls")
    os.kill(lost, signal.SIGKILL)  # the worker process, mid-task: a machine gone
    for name, proc in procs.items():
        finish(proc, root / f"{name}.log")
    return root, {name: proc.pid for name, proc in procs.items()}, lost


def test_dask_build_survives_a_lost_worker_and_gives_the_same_episode(builds):
    root, _, _ = builds
    episodes = {name: root / f"out-{name}" / "spec" / "preview" / "episode.mp4" for name in ("threads", "dask")}
    assert framemd5(episodes["dask"]) == framemd5(episodes["threads"])
    assert episodes["dask"].read_bytes() == episodes["threads"].read_bytes()
    reports = {name: json.loads((path.parent / "build.json").read_text()) for name, path in episodes.items()}
    assert reports["dask"]["pieces"] == reports["threads"]["pieces"]
    assert reports["dask"]["pieces"]["rendered"] == reports["dask"]["pieces"]["total"] >= 3
    assert reports["dask"]["credited"] == reports["threads"]["credited"]


def test_dask_pieces_are_rendered_by_worker_processes(builds):
    root, cli_pids, lost = builds
    local = piece_renders(root / "threads.calls")
    remote = piece_renders(root / "dask.calls")
    assert local and {pid for pid, _ in local} == {cli_pids["threads"]}  # threads inside the CLI process
    assert len(local) == json.loads((root / "out-threads" / "spec" / "preview" / "build.json").read_text()
                                    )["pieces"]["total"]
    workers = {pid for pid, _ in remote}
    assert cli_pids["dask"] not in workers
    assert all("spawn_main" in cmd for _, cmd in remote)  # Dask's worker processes (multiprocessing spawn)
    assert lost in workers and len(workers - {lost}) >= 1  # others finished what the lost one had
    assert len(remote) > len(local)  # the lost worker's piece was rendered again elsewhere


def test_a_lost_worker_leaves_no_ffmpeg_behind(builds):
    """The killed worker's piece render was waiting to open the pipe of its QC view, which no one
    will read now; it dies with the worker (a parent-death signal) instead of waiting forever."""
    root, _, lost = builds
    left = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # not a process, or it just ended
            continue
        if "ffmpeg" in cmd and str(root) in cmd:
            left.append((proc.name, cmd.replace("\0", " ")[:300]))
    for pid, _ in left:  # the next run's machine stays clean even when this fails
        os.kill(int(pid), signal.SIGKILL)
    assert not left, f"ffmpeg still running after worker {lost} was lost: {left}"


def test_bad_dask_addresses_are_one_line_errors(tmp_path):
    spec = six_pieces(tmp_path)
    env = cli_env()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address, said in (("nonsense", "expected local:N"), ("local:0", "at least 1 worker"),
                          (f"tcp://127.0.0.1:{port}", "cannot use the Dask scheduler")):
        done = subprocess.run([sys.executable, "-m", "flows.cli", "build", str(spec), "--cache", str(tmp_path / "c"),
                               "--out", str(tmp_path / "o"), "--dask", address], check=False, cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        assert said in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()


def test_address_forms():
    from flows.runners import parse_address

    assert parse_address("local:2") == ("local", 2)
    assert parse_address("local") == ("local", os.cpu_count())
    assert parse_address("tcp://10.0.0.5:8786") == ("remote", "tcp://10.0.0.5:8786")
    assert parse_address("render-1.lan:8786") == ("remote", "tcp://render-1.lan:8786")
    assert parse_address("tls://[::1]:8786") == ("remote", "tls://[::1]:8786")


# --- which failures are retried ----------------------------------------------------------------

def _raised(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - collecting the real instance is the point
        return exc
    raise AssertionError(f"{fn} did not raise")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _s3_unreachable():
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{_closed_port()}", region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test",
                      config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2))
    s3.list_buckets()


def _client_error(status: int, code: str):
    from botocore.exceptions import ClientError

    # what botocore raises from an S3 error response: the parsed body and the HTTP metadata
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutObject")


def _timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=0.05) as client:
            client.recv(1)  # the server never sends


def _chained(outer, inner):
    def fn():
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    return _raised(fn)


def examples(tmp_path: Path) -> list[tuple[str, BaseException, bool]]:
    from botocore.exceptions import NoCredentialsError
    from distributed.comm.core import CommClosedError

    from flows.storage import StorageError
    from render.callout.folder import load_callout
    from render.core import ffmpeg
    from render.core.errors import UserError
    from render.edit.spec import load_spec
    from render.intake.records import resolve_file

    (tmp_path / "bad.yaml").write_text("title: x\nruntime: soon\nsegments: []\n")
    callout = load_callout(write_callout(tmp_path / "callout", [{"record_id": "E1", "file": "../outside.mp4",
                                                                 "kind": "video", "title": "E", "contributors": "a"}],
                                         [("a", "A", "MX")]))
    return [
        ("ffmpeg failed", _raised(lambda: ffmpeg.run([ffmpeg.FFMPEG, "-v", "error", "-i", str(tmp_path / "none.mp4"),
                                                      "-f", "null", "-"], timeout_s=30)), False),
        ("bad spec", _raised(lambda: load_spec(tmp_path / "bad.yaml")), False),
        ("missing call-out", _raised(lambda: load_callout(tmp_path / "nowhere")), False),
        ("rejected media", _raised(lambda: resolve_file(callout, callout.records[0])), False),
        ("missing file", _raised(lambda: open(tmp_path / "missing.bin", "rb")), False),
        ("disk full", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), False),
        ("a bug", _raised(lambda: int("x")), False),
        ("refused", _raised(lambda: socket.create_connection(("127.0.0.1", _closed_port()), timeout=2)), True),
        ("timed out", _raised(_timeout), True),
        ("NFS I/O error", OSError(errno.EIO, os.strerror(errno.EIO), "/mnt/cache/pieces"), True),
        ("NFS stale handle", OSError(errno.ESTALE, os.strerror(errno.ESTALE), "/mnt/cache/pieces"), True),
        ("object store down", _raised(_s3_unreachable), True),
        ("S3 SlowDown", _client_error(503, "SlowDown"), True),
        ("S3 InternalError", _client_error(500, "InternalError"), True),
        ("throttled", _client_error(400, "ThrottlingException"), True),
        ("S3 NoSuchKey", _client_error(404, "NoSuchKey"), False),
        ("S3 AccessDenied", _client_error(403, "AccessDenied"), False),
        ("no credentials", NoCredentialsError(), False),
        ("storage, transient", StorageError("s3://b/x: 503 from the store", transient=True), True),
        ("storage, refused", StorageError("s3://b/x: no such bucket", transient=False), False),
        ("lost connection to a worker", CommClosedError("in <TCP (closed)>: Stream is closed"), True),
        ("a wrapper over a reset", _chained(RuntimeError("upload failed"), ConnectionResetError(104, "reset")), True),
        ("a verdict over a reset", _chained(UserError("call-out folder unreadable"), ConnectionResetError()), False),
    ]


def test_only_transient_errors_are_retried(tmp_path):
    from flows.runners import is_transient

    wrong = [(name, type(exc).__name__) for name, exc, transient in examples(tmp_path)
             if is_transient(exc) != transient]
    assert not wrong


def test_a_lost_worker_is_transient():
    """A worker process that dies under a task: the real KilledWorker from a real cluster."""
    import dask
    from distributed import Client, KilledWorker, LocalCluster

    from flows.runners import is_transient

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        lost = _raised(lambda: client.submit(os._exit, 1).result(timeout=120))
    assert isinstance(lost, KilledWorker)
    assert is_transient(lost)


def test_a_failing_ffmpeg_is_never_retried(prefect_harness, monkeypatch, tmp_path):
    from flows import pipeline
    from flows.runners import RETRIES
    from render.core import ffmpeg
    from render.core.errors import FfmpegError

    failed = _raised(lambda: ffmpeg.run([ffmpeg.FFMPEG, "-v", "error", "-i", str(tmp_path / "gone.mp4"), "-f", "null",
                                         "-"], timeout_s=30))
    calls = []

    def render(*args, **kwargs):
        calls.append(1)
        raise failed

    monkeypatch.setattr(pipeline.store, "render_piece", render)
    assert RETRIES >= 2
    run_piece(pipeline, FfmpegError, tmp_path)
    assert len(calls) == 1


def test_transient_failures_are_retried_until_the_limit(prefect_harness, monkeypatch, tmp_path):
    from flows import pipeline
    from flows.runners import RETRIES

    calls = []

    def render(*args, **kwargs):
        calls.append(1)
        raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), "/mnt/cache/pieces")

    monkeypatch.setattr(pipeline.store, "render_piece", render)
    run_piece(pipeline, OSError, tmp_path)
    assert len(calls) == 1 + RETRIES


def test_retries_stop_at_the_first_permanent_failure(prefect_harness, monkeypatch, tmp_path):
    from flows import pipeline
    from render.core.errors import FfmpegError

    calls = []
    failures = [ConnectionResetError(errno.ECONNRESET, "reset by peer"), OSError(errno.EIO, "I/O error"),
                FfmpegError(["ffmpeg"], 1, "Invalid data found when processing input")]

    def render(*args, **kwargs):
        calls.append(1)
        raise failures[len(calls) - 1]

    monkeypatch.setattr(pipeline.store, "render_piece", render)
    run_piece(pipeline, FfmpegError, tmp_path)
    assert len(calls) == 3


def run_piece(pipeline, expected: type[BaseException], cache: Path) -> None:
    """The pipeline's real render-piece task, without its retry delays, in a flow; it must raise ``expected``."""
    from prefect import flow

    from render.compose.pieces import Piece

    task = pipeline.render_piece_task.with_options(retry_delay_seconds=0)

    @flow
    def one_piece():
        return task(Piece("open", 0, ()), {}, "preview", "blur", str(cache))

    with pytest.raises(expected):
        one_piece()


def test_a_transient_failure_that_outlasts_the_retries_says_run_again(monkeypatch, capsys):
    from flows import cli

    for var in ("PREFECT_LOGGING_LEVEL", "PREFECT_SERVER_LOGGING_LEVEL"):  # main() sets them
        monkeypatch.setenv(var, os.environ.get(var, "WARNING"))

    def lost(args):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    monkeypatch.setattr(cli.validate, "run", lost)
    assert cli.main(["validate", "spec.yaml"]) == 4
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "run the same command again" in said[0] and "ConnectionResetError" in said[0]

    def bug(args):
        raise KeyError("segments")

    monkeypatch.setattr(cli.validate, "run", bug)
    with pytest.raises(KeyError):  # a programming error keeps its traceback
        cli.main(["validate", "spec.yaml"])


def test_a_worker_that_cannot_render_is_refused_up_front(tmp_path):
    """Each worker is asked what it sees before any task runs: here a real worker without ffmpeg."""
    from distributed import Client, LocalCluster

    from flows.runners import _check_workers
    from render.core.errors import UserError

    no_ffmpeg = {"REMIXTV_FFMPEG": str(tmp_path / "no-ffmpeg")}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL, env=no_ffmpeg) as cluster, Client(cluster) as client, \
            pytest.raises(UserError) as refused:
        _check_workers(client, "tcp://render-0:8786", tmp_path / "cache")
    assert len(refused.value.problems) == 1
    assert "has no ffmpeg on its PATH" in refused.value.problems[0]
    assert not list((tmp_path / "cache").glob(".dask-check-*"))  # the marker is gone again
