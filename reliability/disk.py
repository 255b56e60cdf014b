"""A full disk: the cache, and separately the output, on a small filesystem (a tmpfs; needs root).

    sudo python -m reliability.disk --seed 5 --count 4 --out disk.json

Each try mounts a tmpfs of a seeded size too small for the build (the cache's or the output's share
of it) and builds a short spec there. The build must stop with exit status 1 and ONE line (besides its
progress bars) naming a path on the small filesystem and the space it needs, no traceback; the cache
must hold no piece whose done.json does not vouch for its files; and once the filesystem is grown the
same command must finish, reuse every piece that was complete, and give an episode byte-identical to
an unconstrained build's. Exit status 1 on any failure.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from reliability import builds, harness
from reliability.kills import RUN_DEADLINE_S, intact_pieces

PLACES = ("cache", "out")
SIZES_MB = {"cache": (1.0, 3.2), "out": (0.3, 1.5)}  # the spec's pieces take ~4 MB, its episode ~1.6 MB


def mounted(at: Path, mb: float) -> None:
    at.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(mb * 1024)}k", "tmpfs", str(at)], check=True)


def resize(at: Path, mb: float) -> None:
    subprocess.run(["mount", "-o", f"remount,size={int(mb * 1024)}k", str(at)], check=True)


def unmount(at: Path) -> None:
    subprocess.run(["umount", "-l", str(at)], check=False)


def said(log: Path) -> list[str]:
    """What a build printed besides its progress bars and their summary lines."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    return [ln for ln in text.splitlines() if ln.strip() and "━" not in ln]


def run(seed: int, count: int, workdir: Path) -> dict:
    if os.geteuid() != 0:
        raise SystemExit("reliability.disk mounts a small tmpfs: run it as root")
    rng = random.Random(seed)
    specs = builds.make_project(workdir)
    spec = specs["one"]
    ref_cache, ref_out = workdir / "cache-ref", workdir / "ref"
    proc = builds.build(spec, ref_cache, ref_out, workdir / "logs" / "ref.log")
    if proc.wait(timeout=RUN_DEADLINE_S) != 0:
        raise SystemExit(f"the reference build failed: see {workdir}/logs/ref.log")
    ref = builds.sha256(ref_out / "one" / "preview" / "episode.mp4")
    failures, tries = [], []
    with builds.Watcher([]) as watch:
        for i in range(count):
            place = PLACES[i % 2]
            mb = round(rng.uniform(*SIZES_MB[place]), 2)
            small = workdir / f"small-{i}"
            mounted(small, mb)
            try:
                cache = small / "cache" if place == "cache" else workdir / f"cache-{i}"
                out = small / "out" if place == "out" else workdir / f"out-{i}"
                # intake and analysis from the reference's cache: the attack is on the render's writes
                shutil.copytree(ref_cache, cache, symlinks=True, ignore=shutil.ignore_patterns("pieces"))
                watch.folders = [out]
                t = _try(i, place, mb, spec, cache, out, small, ref, workdir, watch)
            finally:
                unmount(small)
            tries.append(t)
            failures += [f"try {i} ({place} on {mb} MB): {f}" for f in t.pop("failures")]
        failures += watch.half_written
    return {"attack": "full disk", "seed": seed, "tries": len(tries), "crashes": len(failures), "hangs": 0,
            "lost": len(watch.half_written), "identical_reruns": sum(t["identical"] for t in tries),
            "files_checked": watch.checked, "results": tries,
            "peak_memory": {"build_tree_largest_mb": round(watch.peak_kb / 1024, 1)}, "failures": failures}


def _try(i: int, place: str, mb: float, spec: Path, cache: Path, out: Path, small: Path, ref: str, workdir: Path,
         watch: builds.Watcher) -> dict:
    """One full-disk build, its checks, and the rerun once the filesystem has grown."""
    failures: list[str] = []
    log = workdir / "logs" / f"{i}-{place}-full.log"
    proc = builds.build(spec, cache, out, log)
    watch.pids = [proc.pid]
    code = proc.wait(timeout=RUN_DEADLINE_S)
    lines = said(log)
    message = lines[-1] if lines else ""
    if code == 0:
        failures.append(f"the build fitted in {mb} MB: make the filesystem smaller")
    elif code != 1 or len(lines) != 1 or "Traceback" in "".join(lines):
        failures.append(f"exit {code}, not one line: {lines[-30:]}")
    elif str(small) not in message or "no space left on device" not in message or "MB" not in message:
        failures.append(f"the line does not name a path on the full filesystem and the space: {message}")
    bad = intact_pieces(cache)
    if bad:
        failures.append(f"the cache keeps damaged pieces: {bad}")
    complete_before = len(list((cache / "pieces").glob("*/*/*/done.json"))) if (cache / "pieces").exists() else 0
    resize(small, 64)
    log2 = workdir / "logs" / f"{i}-{place}-rerun.log"
    began = time.monotonic()
    proc = builds.build(spec, cache, out, log2)
    watch.pids = [proc.pid]
    code2 = proc.wait(timeout=RUN_DEADLINE_S)
    identical = False
    if code2 != 0:
        failures.append(f"the rerun after freeing space failed ({code2}): {said(log2)[-20:]}")
    else:
        folder = out / "one" / "preview"
        build = json.loads((folder / "build.json").read_text())
        identical = builds.sha256(folder / "episode.mp4") == ref
        if not identical:
            failures.append("the rerun's episode.mp4 differs from the unconstrained build's")
        if build["pieces"]["cached"] != complete_before:
            failures.append(f"the rerun reused {build['pieces']['cached']} pieces, {complete_before} were complete")
    return {"place": place, "size_mb": mb, "exit": code, "message": message, "pieces_complete": complete_before,
            "rerun_s": round(time.monotonic() - began, 1), "identical": identical, "failures": failures}


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=4, help="tries, alternating cache and output")
    p.add_argument("--out", default="disk.json")
    p.add_argument("--workdir", default=None, help="keep the builds here (default: a temporary folder)")
    args = p.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="remixtv-disk-") as tmp:
        report = run(args.seed, args.count, Path(args.workdir or tmp))
    report["seconds"] = round(time.monotonic() - began, 1)
    report["command"] = f"python -m reliability.disk --seed {args.seed} --count {args.count}"
    print(json.dumps({k: report[k] for k in ("tries", "crashes", "identical_reruns", "seconds")}))
    for t in report["results"]:
        print(f"{t['place']} on {t['size_mb']} MB: {t['message']}")
    return harness.write_report(args.out, report)


if __name__ == "__main__":
    raise SystemExit(main())
