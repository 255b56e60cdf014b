"""Power cuts: ``kill -9`` a build (and everything it started) at seeded random moments, then run it again.

    python -m reliability.kills --seed 3 --count 20 --out kills.json

A reference build of a short spec runs uninterrupted first (``--master N``: and a master build, whose
last N kills hit a master build of the same spec). Each try starts the build on what the tries before
it left (a chain) and kills it in a seeded stage (intake, analysis, render, join, level, QC, credits
and reports), a seeded fraction of a second after it is first seen there (from what the build runs
and what it has written, polled every 10 ms); the stage it was really in is recorded.
A chain ends when a build finishes on its own: its episode.mp4 must be byte-identical to the
reference's, and the next chain starts from a cache holding intake and analysis only (the first one
from an empty cache). Throughout, a watcher polls the output folder every 5 ms: each file that
appears under a final name must be complete (JSON parses, ffprobe reads every packet of an MP4); after
each kill, every piece the cache names as done must be intact. Exit status 1 on any failure.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from reliability import builds, harness

RUN_DEADLINE_S = 1200  # a build of ~14 s on a loaded 2-core machine takes 2-3 minutes


STAGES = ("intake", "analysis", "render", "join", "level", "QC", "credits/reports")


def stage_of(running: list[str], out_folder: Path, cache: Path, since: float) -> str:
    """What a build is doing, from the commands it is running and what it has written since ``since``
    (a chain's earlier tries left files of their own): one of ``STAGES``, or start-up, planning, finished."""
    def new(path: Path) -> bool:
        try:
            return path.stat().st_mtime >= since
        except OSError:
            return False

    media = [c for c in running if c.split(" ")[0].endswith(("ffmpeg", "ffprobe"))]
    if any("/pieces/" in c for c in media):
        return "render"
    if episode := [c for c in media if "episode" in c]:
        if any("ebur128" in c or "signalstats" in c or "blackdetect" in c for c in episode):
            return "QC"
        return "level" if any("loudnorm" in c or "volume=" in c for c in episode) else "join"
    analysed = any(new(cache / d) for d in ("loudness", "analysis-audio", "analysis-pictures"))
    if any("/links/" in c or "/callout/" in c for c in media):  # intake reads uploads through cache/links
        return "analysis" if analysed else "intake"
    for name, stage in (("build.json", "finished"), ("qc.json", "credits/reports"), ("episode.mp4", "QC")):
        if new(out_folder / name):
            return stage
    if (cache / "pieces").exists() and any(new(p) for p in (cache / "pieces").glob("*/*/*")):
        return "render"
    return "planning" if analysed else "start-up"


def _reached(stage: str, target: str) -> bool:
    """Whether a build seen in ``stage`` is at or past ``target``; one that went straight to finished
    (nothing left to do after the last kill) is left to finish, which ends the chain with its check."""
    return stage in STAGES and STAGES.index(stage) >= STAGES.index(target)


def intact_pieces(cache: Path) -> list[str]:
    """Piece folders under a final name whose done.json does not vouch for their files."""
    from render.compose import store

    bad = []
    for done in (cache / "pieces").glob("*/*/*/done.json") if (cache / "pieces").exists() else ():
        if not done.parent.name.startswith(".") and not store._intact(done.parent):
            bad.append(str(done.parent))
    return bad


def run(seed: int, count: int, master: int, workdir: Path) -> dict:
    """Reference builds, then ``count`` kills (the last ``master`` of a master build); the report."""
    rng = random.Random(seed)
    specs = builds.make_project(workdir)
    spec = specs["one"]
    failures: list[str] = []
    kills: list[dict] = []
    profiles = [("preview", count - master), ("master", master)]
    refs: dict[str, dict] = {}
    with builds.Watcher([]) as watch:
        for profile, n in profiles:
            if not n:
                continue
            ref_out, ref_cache = workdir / f"ref-{profile}", workdir / "cache-ref"
            began = time.monotonic()
            proc = builds.build(spec, ref_cache, ref_out, workdir / "logs" / f"ref-{profile}.log", "--profile", profile)
            watch.pids = [proc.pid]
            if proc.wait(timeout=RUN_DEADLINE_S) != 0:
                raise SystemExit(f"the reference {profile} build failed: see {workdir}/logs/ref-{profile}.log")
            episode = ref_out / "one" / profile / "episode.mp4"
            refs[profile] = {"sha256": builds.sha256(episode), "seconds": round(time.monotonic() - began, 1)}
            if profile == "preview":  # the cache a chain starts from: intake and analysis, no pieces
                base = workdir / "cache-base"
                shutil.copytree(ref_cache, base, symlinks=True, ignore=shutil.ignore_patterns("pieces"))
            failures += _chains(rng, spec, profile, n, workdir, refs[profile], watch, kills)
        failures += watch.half_written
    stages: dict[str, int] = {}
    for k in kills:
        stages[k["stage"]] = stages.get(k["stage"], 0) + 1
    identical = sum(1 for k in kills if k.get("rerun") == "identical")
    return {"attack": "kills", "seed": seed, "tries": len(kills), "crashes": len(failures), "hangs": 0,
            "lost": len(watch.half_written), "identical_reruns": identical, "stages": stages,
            "files_checked": watch.checked, "references": refs, "kills": kills,
            "peak_memory": {"build_tree_largest_mb": round(watch.peak_kb / 1024, 1)}, "failures": failures}


def _chains(rng: random.Random, spec: Path, profile: str, n: int, workdir: Path, ref: dict,
            watch: builds.Watcher, kills: list[dict]) -> list[str]:
    """``n`` kills of ``profile`` builds in chains; each chain finishes with a check against ``ref``."""
    failures: list[str] = []
    chain, done_kills = 0, 0
    while done_kills < n:
        chain += 1
        cache, out = workdir / f"cache-{profile}-{chain}", workdir / f"out-{profile}-{chain}"
        if not (profile == "preview" and chain == 1):  # the first chain covers intake and analysis too
            shutil.copytree(workdir / "cache-base", cache, symlinks=True)
        folder = out / "one" / profile
        watch.folders = [out]
        attempt = 0
        while True:
            attempt += 1
            log = workdir / "logs" / f"{profile}-{chain}-{attempt}.log"
            proc = builds.build(spec, cache, out, log, "--profile", profile)
            watch.pids = [proc.pid]
            began, wall = time.monotonic(), time.time()
            # the stage to kill in (the first chain's first tries: intake, then analysis), and how long
            # after the build is first seen in it; a rerun that finishes first ends the chain
            target = None
            if done_kills < n:
                fresh = profile == "preview" and chain == 1 and attempt <= 2
                target = STAGES[attempt - 1] if fresh else rng.choice(STAGES[2:])
                delay = 0.0 if target == "credits/reports" else rng.uniform(0, 1.0)
            seen_at = None
            while proc.poll() is None:
                if time.monotonic() - began > RUN_DEADLINE_S:
                    builds.kill_all(proc)
                    failures.append(f"{profile} chain {chain} try {attempt}: still running after {RUN_DEADLINE_S} s")
                    return failures
                if target and seen_at is None and _reached(
                        stage_of([builds.cmdline(p) for p in builds.descendants(proc.pid)], folder, cache, wall),
                        target):
                    seen_at = time.monotonic()
                if seen_at is not None and time.monotonic() - seen_at >= delay:
                    break
                time.sleep(0.01)
            at = time.monotonic() - began
            if proc.poll() is None:
                running = builds.kill_all(proc)
                done_kills += 1
                stage = stage_of(running, folder, cache, wall)
                entry = {"profile": profile, "chain": chain, "try": attempt, "at_s": round(at, 2), "target": target,
                         "stage": stage}
                bad = intact_pieces(cache) + [f"{p}: {why}" for p in _finals(folder) if (why := builds.complete(p))]
                if bad:
                    failures.append(f"{profile} chain {chain} kill {attempt} ({stage}): left {bad}")
                kills.append(entry)
                (workdir / "kills-so-far.json").write_text(json.dumps(kills, indent=1))
                continue
            if proc.returncode != 0:
                failures.append(f"{profile} chain {chain} try {attempt}: exit {proc.returncode}: "
                                f"{log.read_text(errors='replace')[-1500:]}")
                return failures
            same = builds.sha256(folder / "episode.mp4") == ref["sha256"]
            for k in kills:
                if k["profile"] == profile and k["chain"] == chain:
                    k["rerun"] = "identical" if same else "different"
            if not same:
                failures.append(f"{profile} chain {chain}: the finished episode.mp4 differs from the reference's")
            for name in ("build.json", "qc.json", "credits.json"):
                if why := builds.complete(folder / name) or (None if (folder / name).exists() else "missing"):
                    failures.append(f"{profile} chain {chain}: {name}: {why}")
            break
    return failures


def _finals(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")] if folder.exists() else []


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=20, help="kills in all")
    p.add_argument("--master", type=int, default=4, help="how many of them hit a master build")
    p.add_argument("--out", default="kills.json")
    p.add_argument("--workdir", default=None, help="keep the builds here (default: a temporary folder)")
    args = p.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="remixtv-kills-") as tmp:
        workdir = Path(args.workdir or tmp)
        report = run(args.seed, args.count, min(args.master, args.count), workdir)
    report["seconds"] = round(time.monotonic() - began, 1)
    report["command"] = (f"python -m reliability.kills --seed {args.seed} --count {args.count} "
                         f"--master {min(args.master, args.count)}")
    print(json.dumps({k: report[k] for k in ("tries", "crashes", "identical_reruns", "stages", "seconds")}))
    return harness.write_report(args.out, report)


if __name__ == "__main__":
    raise SystemExit(main())
