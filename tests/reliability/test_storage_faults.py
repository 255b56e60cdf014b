"""A real SeaweedFS stopped (SIGKILL, its data kept) in the middle of a build's download of an upload, and
while the build publishes: the build retries, then stops in one line; no reader ever sees a partial file
under its final name (in the staging area) or build.json beside a missing or short file (in the bucket);
with the server back, the same command fetches the upload whole and completes the publish.

The fast version of ``reliability.storage_faults`` (which lets the retries ride out a 60 s outage): the
server here stays down, and the client makes one attempt per request and Prefect retries without waiting,
so the stop comes in seconds rather than after the retries' minute of backoff."""

from __future__ import annotations

import hashlib
import json
import random
import re
import struct
import threading
from pathlib import Path

import pytest

from flows import storage
from reliability.builds import Poller
from reliability.storage_faults import ACCESS, SECRET, Weed, published_files, reader_problems
from tests.support.callouts import submission, write_callout
from tests.support.media import ffprobe

REAL_CLIENT = storage.client
CALLOUT, OUTPUT = "s3://callouts/faults", "s3://outputs/faults"
PREFIX = "faults/ep/preview"  # where OUTPUT holds the build of ep.yaml
PADDING = 8 << 20  # more than loopback holds in flight: a server killed as the body starts cuts it short
SPEC = """\
title: "RE: Storage Faults"
callout: s3://callouts/faults
runtime: "0:09"
segments:
  - {id: title, type: card, text: "RE: Storage Faults", seconds: 2}
  - {id: phone, type: feature, record: V1, max_seconds: 3}
  - {id: credits, type: credits, seconds: 4}
"""


class Faults:
    """The build's S3 clients, watched: every request is recorded, and the server is killed when the
    armed request (operation and key ending) comes. Until then, one attempt per request: botocore's
    backoff against a server that stays down would add half a minute (the rerun has the real retries)."""

    def __init__(self, weed: Weed):
        self.weed, self.armed, self.calls, self.fired = weed, None, [], threading.Event()

    def client(self, endpoint=None, *, max_attempts=storage.MAX_ATTEMPTS):
        s3 = REAL_CLIENT(endpoint, max_attempts=max_attempts if self.armed is None else 1)
        s3.meta.events.register("before-parameter-build.s3", self._record)
        s3.meta.events.register("after-call.s3.GetObject", self._fire)  # the body has not been read yet
        s3.meta.events.register("before-call.s3.PutObject", self._fire)
        return s3

    def _record(self, params, model, context, **_) -> None:
        context["remixtv-key"] = params.get("Key", "")
        self.calls.append((model.name, context["remixtv-key"], self.fired.is_set()))

    def _fire(self, model, context, **_) -> None:
        op, key = self.armed or ("", "")
        if model.name == op and context.get("remixtv-key", "").endswith(key) and not self.fired.is_set():
            self.weed.kill()
            self.fired.set()

    def after_fault(self, op: str) -> list[str]:
        return [key for name, key, after in self.calls if name == op and after]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The server, the call-out in its bucket (its one video padded to 8 MiB), and a spec naming it."""
    root = tmp_path_factory.mktemp("storage-faults")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            mp.setenv(name, str(root / "none"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_ACCESS_KEY_ID", ACCESS)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        weed = Weed(root / "weed")
        weed.start()
        mp.setenv(storage.ENDPOINT_ENV, weed.endpoint)
        try:
            callout = write_callout(root / "callout", [submission(
                "V1", "video", "Car phone", "ana", "carphone_h264_176x144_29.97fps_lowquality.mp4")],
                [("ana", "Ana Lucía Pérez", "MX")], callout_id="faults")
            video = callout / "media" / "carphone_h264_176x144_29.97fps_lowquality.mp4"
            with open(video, "ab") as f:  # a top-level 'free' box: the same video, a phone-sized upload
                f.write(struct.pack(">I4s", PADDING + 8, b"free") + random.Random(1).randbytes(PADDING))
            s3 = REAL_CLIENT(max_attempts=1)
            for path in sorted(p for p in callout.rglob("*") if p.is_file()):
                s3.upload_file(str(path), "callouts", f"faults/{path.relative_to(callout).as_posix()}")
            (root / "ep.yaml").write_text(SPEC)
            yield weed, root, video
        finally:
            weed.kill()


def _build(root: Path, capsys) -> tuple[int, list[str]]:
    from flows.cli import main

    capsys.readouterr()
    code = main(["build", str(root / "ep.yaml"), "--out", OUTPUT, "--cache", str(root / "cache")])
    return code, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and "━" not in ln]


def _published(s3) -> dict[str, int]:
    return {o["Key"].removeprefix(f"{PREFIX}/"): o["Size"]
            for o in s3.list_objects_v2(Bucket="outputs", Prefix=f"{PREFIX}/").get("Contents", [])}


def test_a_store_stopped_mid_download_stops_the_build_in_one_line_and_the_rerun_fetches_the_upload_whole(
        store, prefect_harness, monkeypatch, capsys):
    weed, root, video = store
    faults = Faults(weed)
    monkeypatch.setattr(storage, "client", faults.client)
    staged = storage.staging_folder(root / "cache", CALLOUT, s3=REAL_CLIENT())
    name = f"media/{video.name}"
    size = video.stat().st_size

    def partial_under_final_name() -> list[str]:
        path = staged / name
        return [f"{path}: {path.stat().st_size} bytes of {size}"] if path.exists() and path.stat().st_size != size \
            else []

    faults.armed = ("GetObject", name)
    with Poller(partial_under_final_name) as reader:
        code, said = _build(root, capsys)
    assert faults.fired.is_set()
    assert code == 1 and len(said) == 1, said
    # the download cut short names its object, unless one in flight beside it failed first
    assert re.match(rf"{CALLOUT}/\S+: cannot reach {weed.endpoint} while downloading \(", said[0]), said
    assert faults.after_fault("GetObject").count(f"faults/{name}") == 2  # tried twice more, then stopped
    assert reader.looks > 100 and reader.problems == []
    assert not (staged / name).exists()
    assert [p.name for p in staged.rglob("*") if p.name.endswith(".part")] == []  # no temporary left either

    weed.start()
    faults.calls, faults.armed = [], None
    code, said = _build(root, capsys)
    assert code == 0, said
    assert f"faults/{name}" in [key for op, key, _ in faults.calls if op == "GetObject"]
    assert hashlib.sha256((staged / name).read_bytes()).digest() == hashlib.sha256(video.read_bytes()).digest()
    build = json.loads(REAL_CLIENT().get_object(Bucket="outputs", Key=f"{PREFIX}/build.json")["Body"].read())
    assert build["records_used"] == ["V1"]  # the upload fetched whole is in the episode


def test_a_store_stopped_while_publishing_never_shows_build_json_early_and_the_rerun_publishes(
        store, prefect_harness, monkeypatch, capsys):
    weed, root, _ = store
    s3 = REAL_CLIENT(weed.endpoint, max_attempts=1)
    for o in s3.list_objects_v2(Bucket="outputs", Prefix=f"{PREFIX}/").get("Contents", []):
        s3.delete_object(Bucket="outputs", Key=o["Key"])  # as if never published: everything goes up again
    faults = Faults(weed)
    monkeypatch.setattr(storage, "client", faults.client)
    monkeypatch.setattr(storage, "publish_task", storage.publish_task.with_options(retry_delay_seconds=0))
    outbox = storage.outbox(root / "cache", f"{OUTPUT}/ep/preview", s3=s3)

    faults.armed = ("PutObject", "/episode.mp4")
    with Poller(lambda: reader_problems(s3, PREFIX, outbox)) as reader:
        code, said = _build(root, capsys)
    assert faults.fired.is_set()
    assert code == 1 and len(said) == 1, said
    assert f"cannot reach {weed.endpoint} while" in said[0] and said[0].startswith(OUTPUT), said
    assert len(faults.after_fault("ListObjectsV2")) == 2  # Prefect's two retries, each stopped at its first request
    assert reader.looks > 20 and reader.problems == []

    weed.start()
    listed, files = _published(s3), published_files(outbox)
    assert listed and "build.json" not in listed and "episode.mp4" not in listed
    assert all(files[n] == size for n, size in listed.items())  # what went up before the stop went up whole

    faults.calls, faults.armed = [], None
    with Poller(lambda: reader_problems(s3, PREFIX, outbox)) as reader:
        code, said = _build(root, capsys)
    assert code == 0, said
    sent = [key.removeprefix(f"{PREFIX}/") for op, key, _ in faults.calls if op == "PutObject"]
    assert "episode.mp4" in sent and sent[-1] == "build.json"
    assert set(listed) - {"review/index.html"} - set(sent)  # what went up before the stop is not sent again
    assert reader.problems == []
    assert _published(s3) == published_files(outbox)
    episode = root / "published.mp4"
    s3.download_file("outputs", f"{PREFIX}/episode.mp4", str(episode))
    assert episode.read_bytes() == (outbox / "episode.mp4").read_bytes()
    video = next(s for s in ffprobe(episode)["streams"] if s["codec_type"] == "video")
    assert int(video["nb_frames"]) == round(9 * 30000 / 1001)
