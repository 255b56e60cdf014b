"""Power cuts: ``kill -9`` a build (and everything it started) at seeded moments, then run it again.

    python -m reliability.kills --seed 3 --count 20 --master 4 --publish 3 --out kills.json

Uninterrupted reference builds of a short spec come first: a preview into a folder, the same preview
published to ``s3://`` (``--publish N``: a real SeaweedFS on loopback) and a master with ``--deliver
network`` (``--master N``: a ProRes mezzanine behind a short leader). Each is watched for the stage it is
in (intake, analysis, render, join, level, QC, deliverables, credits and reports, publish: from what it
runs and what it has written, polled every 10 ms), which gives each stage's window. Then ``count`` kills:
the last N of master builds, the N before them of publishing builds. Each try starts the build on what
the tries before it left (a chain of up to ``CHAIN_KILLS`` kills, then a try left to finish) and kills
it in a seeded stage whose reference window is at least ``MIN_WINDOW_S`` long (the first chain's first two tries: intake, then analysis; a master chain's first
try: the delivery; a publishing chain's: the publish), a seeded fraction of that window after the build
is first seen there; the stage it was really in is recorded.
A chain ends when a build finishes on its own: its episode.mp4 (published, for a publishing chain) must be
byte-identical to the reference's, and the next chain starts from a cache holding intake and analysis
only (the first one from an empty cache). Throughout, a watcher polls the output folder every 5 ms: each
file that appears under a final name must be complete (JSON parses, ffprobe reads every packet of an MP4);
a reader of the bucket must never see build.json without every file of the output, the episode at its
full size; after each kill, every piece the cache names as done must be intact. Exit status 1 on any failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reliability import builds, harness

RUN_DEADLINE_S = 1200  # a build of ~14 s on a loaded 2-core machine takes 2-3 minutes
MIN_WINDOW_S = 0.5  # a stage shorter than this in the reference is not aimed at: the kill would land after it
CHAIN_KILLS = 3  # kills in one chain: after a few, the rerun has every piece and renders nothing to cut into
AIM = (0.1, 0.7)  # where in a stage's window a kill is aimed, as fractions of it

STAGES = ("intake", "analysis", "render", "join", "level", "QC", "deliverables", "credits/reports", "publish")
# the master's delivery with a short leader (6 s before the programme instead of 90 s), so that a mezzanine
# of the 14 s spec is a minute of encoding on a loaded 2-core machine, not a quarter of an hour
NETWORK = """deliver:
  to: [network]
  leader: {bars: "00:59:54;00", slate: "00:59:55;00", black: "00:59:56;00", countdown: "00:59:57;00",
           pop: "00:59:58;00", programme: "01:00:00;00"}
"""


def stage_of(running: list[str], out_folder: Path, cache: Path, since: float,
             published: Callable[[float], bool] | None = None, delivers: bool = False) -> str:
    """What a build is doing, from the commands it is running and what it has written since ``since``
    (a chain's earlier tries left files of their own): one of ``STAGES``, or start-up, planning,
    finished. ``published(since)`` says whether the build.json of this try is in the bucket (a build
    with an ``s3://`` output publishes once build.json is in its outbox); a build that ``delivers``
    makes its delivery between QC and the credits."""
    def new(path: Path) -> bool:
        try:
            return path.stat().st_mtime >= since
        except OSError:
            return False

    media = [c for c in running if c.split(" ")[0].endswith(("ffmpeg", "ffprobe"))]
    if any("remixtv-deliver-" in c or "/deliver/." in c for c in media):  # the mezzanine reads the pieces
        return "deliverables"
    if any("review-thumbs" in c for c in media):  # the review page's thumbnails, taken from the pieces
        return "credits/reports"
    if any("/pieces/" in c for c in media):
        return "render"
    if episode := [c for c in media if "episode" in c]:
        if any("ebur128" in c or "signalstats" in c or "blackdetect" in c for c in episode):
            return "QC"
        return "level" if any("loudnorm" in c or "volume=" in c for c in episode) else "join"
    analysed = any(new(cache / d) for d in ("loudness", "analysis-audio", "analysis-pictures"))
    if any("/links/" in c or "/callout/" in c for c in media):  # intake reads uploads through cache/links
        return "analysis" if analysed else "intake"
    if new(out_folder / "build.json"):
        return "publish" if published is not None and not published(since) else "finished"
    if any(new(out_folder / n) for n in ("credits.csv", "credits.json", "credits.txt", "intake.json")) \
            or new(out_folder / "deliver" / "deliverables.json"):
        return "credits/reports"
    if (out_folder / "deliver").is_dir() and any(new(p) for p in (out_folder / "deliver").iterdir()):
        return "deliverables"
    if new(out_folder / "qc.json"):
        return "deliverables" if delivers else "credits/reports"
    if new(out_folder / "episode.mp4"):
        return "QC"
    if (cache / "pieces").exists() and any(new(p) for p in (cache / "pieces").glob("*/*/*")):
        return "render"
    return "planning" if analysed else "start-up"


def _reached(stage: str, target: str) -> bool:
    """Whether a build seen in ``stage`` is at or past ``target``; one that went straight to finished
    (nothing left to do after the last kill) is left to finish, which ends the chain with its check."""
    return stage in STAGES and STAGES.index(stage) >= STAGES.index(target)


def _past(stage: str, target: str) -> bool:
    """Whether a build seen in ``target`` has gone on to a later stage (a rerun has less to do there than
    the reference); one that has finished is left to finish."""
    return stage in STAGES and STAGES.index(stage) > STAGES.index(target)


@dataclass(frozen=True)
class Kind:
    """One kind of build under attack: its spec and profile, where it writes, and the stage its
    chains' first kill aims at (``focus``)."""

    name: str
    spec: Path
    profile: str
    extra: tuple[str, ...] = ()
    bucket: str | None = None  # publishes to s3://outputs/<bucket>-<chain>
    focus: str | None = None

    @property
    def delivers(self) -> bool:
        return "--deliver" in self.extra

    def out(self, workdir: Path, chain: str) -> Path | str:
        return f"s3://outputs/{self.bucket}-{chain}" if self.bucket else workdir / f"out-{self.name}-{chain}"

    def folder(self, out: Path | str, cache: Path, endpoint: str | None) -> Path:
        """Where the build writes its files: the output folder, or its outbox in the cache."""
        if isinstance(out, Path):
            return out / self.spec.stem / self.profile
        from flows import storage

        return storage.outbox(cache, storage.join_uri(out, self.spec.stem, self.profile), endpoint=endpoint)

    def argv(self) -> tuple[str, ...]:
        return ("--profile", self.profile, *self.extra)


class Bucket:
    """The S3 side of publishing builds: a SeaweedFS on loopback and what a reader of it sees."""

    def __init__(self, workdir: Path):
        from reliability.storage_faults import ACCESS, SECRET, Weed

        self.weed = Weed(workdir / "weed")
        os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET,
                           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(workdir / "none"),
                           "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "none"),
                           "REMIXTV_S3_ENDPOINT": self.weed.endpoint})
        self.weed.start()
        from flows import storage

        self.s3 = storage.client(self.weed.endpoint, max_attempts=1)

    def listed(self, uri: str) -> dict[str, dict]:
        from flows import storage

        loc = storage.parse_uri(uri)
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix)
        return {o["Key"].removeprefix(loc.prefix): o for page in pages for o in page.get("Contents", [])}

    def published(self, uri: str) -> Callable[[float], bool]:
        """Whether a build.json written since a moment is in the bucket under ``uri``."""
        def check(since: float) -> bool:
            there = self.listed(uri).get("build.json")
            return there is not None and there["LastModified"].timestamp() >= since - 1  # whole seconds
        return check

    def reader_problems(self, uri: str, files: dict[str, int]) -> list[str]:
        """What a reader listing ``uri`` would see wrong: build.json beside a missing file of the
        output (``files``: the reference's names and sizes), or an episode of another size."""
        listed = self.listed(uri)
        if "build.json" not in listed:
            return []
        wrong = [n for n in files if n not in listed]
        if "episode.mp4" in listed and listed["episode.mp4"]["Size"] != files["episode.mp4"]:
            wrong.append(f"episode.mp4 of {listed['episode.mp4']['Size']} bytes")
        return [f"{uri}: build.json is published beside {', '.join(wrong)} missing"] if wrong else []

    def close(self) -> None:
        self.weed.kill()


def windows(proc, kind: Kind, folder: Path, cache: Path,
            published: Callable[[float], bool] | None) -> dict[str, list[float]]:
    """Watch a build until it ends: for each stage, when it was first seen (seconds from the start) and
    for how long in all (a stage can come back: the pieces' loudness is measured after they render)."""
    began, wall, seen, last = time.monotonic(), time.time(), {}, None
    while proc.poll() is None:
        if time.monotonic() - began > RUN_DEADLINE_S:
            builds.kill_all(proc)
            break
        stage = stage_of([builds.cmdline(p) for p in builds.descendants(proc.pid)], folder, cache, wall, published,
                         kind.delivers)
        now = time.monotonic() - began
        entry = seen.setdefault(stage, [round(now, 2), 0.0])
        if last is not None:
            entry[1] = round(entry[1] + now - last, 2)
        last = now
        time.sleep(0.01)
    return seen


def aims(window: dict[str, list[float]], kind: Kind) -> dict[str, float]:
    """The stages a kill of ``kind`` may aim at (seen for at least ``MIN_WINDOW_S`` in the reference,
    and the kind's focus) and how long the reference was in each, in seconds."""
    long = {s: took for s, (_, took) in window.items() if s in STAGES[2:] and took >= MIN_WINDOW_S}
    if kind.focus in window:
        long[kind.focus] = max(window[kind.focus][1], 0.05)
    return long


def intact_pieces(cache: Path) -> list[str]:
    """Piece folders under a final name whose done.json does not vouch for their files."""
    from render.compose import store

    bad = []
    for done in (cache / "pieces").glob("*/*/*/done.json") if (cache / "pieces").exists() else ():
        if not done.parent.name.startswith(".") and not store._intact(done.parent):
            bad.append(str(done.parent))
    return bad


def run(seed: int, count: int, master: int, publish: int, workdir: Path) -> dict:
    """Reference builds, then ``count`` kills (the last ``master`` of a master build with a delivery, the
    ``publish`` before them of a build publishing to s3://); the report."""
    rng = random.Random(seed)
    specs = builds.make_project(workdir)
    network = workdir / "one-network.yaml"
    network.write_text(specs["one"].read_text() + NETWORK)
    kinds = [(Kind("preview", specs["one"], "preview"), count - master - publish),
             (Kind("publish", specs["one"], "preview", bucket="kills", focus="publish"), publish),
             (Kind("master", network, "master", ("--deliver", "network"), focus="deliverables"), master)]
    failures: list[str] = []
    kills: list[dict] = []
    refs: dict[str, dict] = {}
    bucket = Bucket(workdir) if publish else None
    try:
        with builds.Watcher([]) as watch:
            for kind, n in kinds:
                if n:
                    refs[kind.name] = _reference(kind, workdir, watch, bucket)
                    (workdir / "references.json").write_text(json.dumps(refs, indent=1))
                    failures += _chains(rng, kind, n, workdir, refs[kind.name], watch, kills, bucket)
            failures += watch.half_written
    finally:
        if bucket is not None:
            bucket.close()
    stages: dict[str, int] = {}
    for k in kills:
        stages[k["stage"]] = stages.get(k["stage"], 0) + 1
    identical = sum(1 for k in kills if k.get("rerun") == "identical")
    return {"attack": "kills", "seed": seed, "tries": len(kills), "crashes": len(failures), "hangs": 0,
            "lost": len(watch.half_written), "identical_reruns": identical, "stages": stages,
            "files_checked": watch.checked, "references": refs, "kills": kills,
            "peak_memory": {"build_tree_largest_mb": round(watch.peak_kb / 1024, 1)}, "failures": failures}


def _reference(kind: Kind, workdir: Path, watch: builds.Watcher, bucket: Bucket | None) -> dict:
    """An uninterrupted build of ``kind`` (on the references' cache), watched for its stages' windows;
    the first one also leaves the cache chains start from (intake and analysis, no pieces)."""
    cache, out = workdir / "cache-ref", kind.out(workdir, "ref")
    endpoint = bucket.weed.endpoint if bucket else None
    folder = kind.folder(out, cache, endpoint)
    uri = _uri(kind, out)
    began = time.monotonic()
    log = workdir / "logs" / f"ref-{kind.name}.log"
    proc = builds.build(kind.spec, cache, out, log, *kind.argv())
    watch.pids = [proc.pid]
    seen = windows(proc, kind, folder, cache, bucket.published(uri) if bucket and uri else None)
    if proc.wait(timeout=60) != 0:
        raise SystemExit(f"the reference {kind.name} build failed: see {log}")
    ref = {"sha256": builds.sha256(folder / "episode.mp4"), "seconds": round(time.monotonic() - began, 1),
           "windows": seen, "deliver": _deliverables(folder)}
    if uri:
        from reliability.storage_faults import published_files

        ref["files"] = published_files(folder)
        ref["published_sha256"] = _published_sha(bucket, uri)
    if not (workdir / "cache-base").exists():
        shutil.copytree(cache, workdir / "cache-base", symlinks=True,
                        ignore=shutil.ignore_patterns("pieces", "outbox", "locks"))
    return ref


def _uri(kind: Kind, out: Path | str) -> str | None:
    from flows import storage

    return storage.join_uri(out, kind.spec.stem, kind.profile) if kind.bucket else None


def _published_sha(bucket: Bucket, uri: str) -> str:
    from flows import storage

    loc = storage.parse_uri(uri)
    body = bucket.s3.get_object(Bucket=loc.bucket, Key=loc.key("episode.mp4"))["Body"].read()
    return hashlib.sha256(body).hexdigest()


def _deliverables(folder: Path) -> dict[str, str]:
    """The delivery's files (deliver/, its index included) by SHA-256."""
    deliver = folder / "deliver"
    return {p.name: builds.sha256(p) for p in sorted(deliver.iterdir())
            if p.is_file() and not p.name.startswith(".")} if deliver.is_dir() else {}


def _chains(rng: random.Random, kind: Kind, n: int, workdir: Path, ref: dict, watch: builds.Watcher,
            kills: list[dict], bucket: Bucket | None) -> list[str]:
    """``n`` kills of ``kind`` builds in chains; each chain finishes with a check against ``ref``."""
    failures: list[str] = []
    chain, done_kills = 0, 0
    targets = aims(ref["windows"], kind)
    endpoint = bucket.weed.endpoint if bucket else None
    while done_kills < n:
        chain += 1
        cache, out = workdir / f"cache-{kind.name}-{chain}", kind.out(workdir, str(chain))
        fresh = kind.name == "preview" and chain == 1  # the first chain covers intake and analysis too
        if not fresh:
            shutil.copytree(workdir / "cache-base", cache, symlinks=True)
        folder, uri = kind.folder(out, cache, endpoint), _uri(kind, out)
        published = bucket.published(uri) if bucket and uri else None
        watch.folders = [folder]
        reader = builds.Poller((lambda u=uri: bucket.reader_problems(u, ref["files"])) if uri else list, 0.02)
        attempt = 0
        with reader:
            while True:
                attempt += 1
                log = workdir / "logs" / f"{kind.name}-{chain}-{attempt}.log"
                proc = builds.build(kind.spec, cache, out, log, *kind.argv())
                watch.pids = [proc.pid]
                began, wall = time.monotonic(), time.time()
                # the stage to kill in, and how far into its window; a rerun that finishes first ends the chain
                target, delay = None, 0.0
                if done_kills < n and attempt <= CHAIN_KILLS:
                    if fresh and attempt <= 2:
                        target = STAGES[attempt - 1]
                    elif attempt == 1 and kind.focus in targets:
                        target = kind.focus
                    else:
                        target = rng.choice(sorted(targets))
                    delay = rng.uniform(*AIM) * ref["windows"].get(target, [0.0, 1.0])[1]
                seen_at, last = None, None
                while proc.poll() is None:
                    if time.monotonic() - began > RUN_DEADLINE_S:
                        builds.kill_all(proc)
                        failures.append(f"{kind.name} chain {chain} try {attempt}: still running after "
                                        f"{RUN_DEADLINE_S} s")
                        return failures
                    if target:
                        stage = stage_of([builds.cmdline(p) for p in builds.descendants(proc.pid)], folder, cache,
                                         wall, published, kind.delivers)
                        last = stage if stage in STAGES else last
                        if stage == "finished":  # build.json is out: what is left is Prefect shutting down
                            target = seen_at = None
                            continue
                        if seen_at is None and _reached(stage, target):
                            seen_at = time.monotonic()
                        elif seen_at is not None and _past(stage, target):
                            break  # out of the stage before the aim: cut the power as it leaves
                    if seen_at is not None and time.monotonic() - seen_at >= delay:
                        break
                    time.sleep(0.01)
                at = time.monotonic() - began
                if proc.poll() is None:
                    running = builds.kill_all(proc)
                    done_kills += 1
                    stage = stage_of(running, folder, cache, wall, published, kind.delivers)
                    if stage in ("start-up", "planning") and last:
                        stage = last  # between two commands of the stage it was last seen in
                    entry = {"kind": kind.name, "chain": chain, "try": attempt, "at_s": round(at, 2),
                             "target": target, "aim_s": round(delay, 2), "stage": stage}
                    bad = intact_pieces(cache) + [f"{p}: {why}" for p in _finals(folder) if (why := builds.complete(p))]
                    if uri:
                        bad += bucket.reader_problems(uri, ref["files"])
                    if bad:
                        failures.append(f"{kind.name} chain {chain} kill {attempt} ({stage}): left {bad}")
                    kills.append(entry)
                    (workdir / "kills-so-far.json").write_text(json.dumps(kills, indent=1))
                    continue
                if proc.returncode != 0:
                    failures.append(f"{kind.name} chain {chain} try {attempt}: exit {proc.returncode}: "
                                    f"{log.read_text(errors='replace')[-1500:]}")
                    return failures
                failures += _finished(kind, chain, folder, ref, bucket, uri, kills)
                break
        failures += [f"{kind.name} chain {chain}: a reader saw {p}" for p in reader.problems]
    return failures


def _finished(kind: Kind, chain: int, folder: Path, ref: dict, bucket: Bucket | None, uri: str | None,
              kills: list[dict]) -> list[str]:
    """What a chain's build that finished on its own must have left: the reference's bytes."""
    failures = []
    same = builds.sha256(folder / "episode.mp4") == ref["sha256"]
    if uri:
        from reliability.storage_faults import published_files

        same = same and _published_sha(bucket, uri) == ref["sha256"]
        listed = {n: o["Size"] for n, o in bucket.listed(uri).items()}
        if listed != published_files(folder):
            failures.append(f"{kind.name} chain {chain}: the bucket holds {sorted(listed)}, not the outbox's files")
    for k in kills:
        if k["kind"] == kind.name and k["chain"] == chain:
            k["rerun"] = "identical" if same else "different"
    if not same:
        failures.append(f"{kind.name} chain {chain}: the finished episode.mp4 differs from the reference's")
    if _deliverables(folder) != ref["deliver"]:
        failures.append(f"{kind.name} chain {chain}: the delivery differs from the reference's: "
                        f"{_deliverables(folder)} != {ref['deliver']}")
    for name in ("build.json", "qc.json", "credits.json"):
        if why := builds.complete(folder / name) or (None if (folder / name).exists() else "missing"):
            failures.append(f"{kind.name} chain {chain}: {name}: {why}")
    return failures


def _finals(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")] if folder.exists() else []


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=20, help="kills in all")
    p.add_argument("--master", type=int, default=4, help="how many of them hit a master build with a delivery")
    p.add_argument("--publish", type=int, default=3, help="how many of them hit a build publishing to s3://")
    p.add_argument("--out", default="kills.json")
    p.add_argument("--workdir", default=None, help="keep the builds here (default: a temporary folder)")
    args = p.parse_args()
    master = min(args.master, args.count)
    publish = min(args.publish, args.count - master)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="remixtv-kills-") as tmp:
        workdir = Path(args.workdir or tmp)
        report = run(args.seed, args.count, master, publish, workdir)
    report["seconds"] = round(time.monotonic() - began, 1)
    report["command"] = (f"python -m reliability.kills --seed {args.seed} --count {args.count} "
                         f"--master {master} --publish {publish}")
    print(json.dumps({k: report[k] for k in ("tries", "crashes", "identical_reruns", "stages", "seconds")}))
    return harness.write_report(args.out, report)


if __name__ == "__main__":
    raise SystemExit(main())
