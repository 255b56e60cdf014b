"""Benchmark the demo preview built cold with the default runner (a thread pool in the build
process) and cold on a Dask LocalCluster of worker processes (``--dask local:N``).

    .venv/bin/python bench/bench_dask.py [--profile preview] [--workers 2]

The demo call-out is generated into a temporary folder beside a copy of episode_specs/demo.yaml,
so its relative ``callout: ../callouts/demo`` holds and nothing is written into the checkout
except the results. Each build gets an empty cache; both share one numba JIT cache, warmed
first, so neither pays librosa's one-time compile. Runs are measured from outside exactly as
bench_demo.py measures them (its ``measure``: wall, CPU of the build and every process under
it, the largest single process's peak memory). Results go to bench/results/dask.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_demo import REMIXTV, REPO, SPEC, measure, save  # the same measurement, not a copy


def warm_numba(callout: Path, env: dict) -> float:
    """Compile librosa's numba code into the shared JIT cache, on one of the demo's music records."""
    with open(callout / "submissions.csv", newline="", encoding="utf-8-sig") as f:
        music = next(row["file"] for row in csv.DictReader(f) if row["kind"] == "music" and row["file"])
    started = time.monotonic()
    code = ("import sys; from pathlib import Path; from render.analysis.audio import analyze_audio_file; "
            "analyze_audio_file(Path(sys.argv[1]), music_hint=True)")
    subprocess.run([sys.executable, "-c", code, str(callout / music)],
                   env=env, cwd=REPO, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="preview", choices=("preview", "master"))
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    args = parser.parse_args()

    from render.callout.demo import generate_demo_callout

    work = Path(tempfile.mkdtemp(prefix="remixtv-bench-dask-"))
    results: dict = {"profile": args.profile, "cpus": os.cpu_count(), "dask_workers": args.workers}
    try:
        callout = work / "callouts" / "demo"
        started = time.monotonic()
        generate_demo_callout(callout)
        results["callout_generated_s"] = round(time.monotonic() - started, 1)
        spec = work / "episode_specs" / SPEC.name
        spec.parent.mkdir()
        shutil.copyfile(SPEC, spec)
        env = dict(os.environ, PYTHONPATH=str(REPO), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   NUMBA_CACHE_DIR=str(work / "numba"))
        for var in ("REMIXTV_CACHE", "REMIXTV_DASK_ADDRESS"):
            env.pop(var, None)
        results["numba_warmup_s"] = round(warm_numba(callout, env), 1)
        runs = {"default": (), "dask": ("--dask", f"local:{args.workers}")}
        for name, extra in runs.items():
            results[f"load_before_{name}"] = round(os.getloadavg()[0], 2)  # the machine is shared; say how busy
            results[name] = measure([*REMIXTV, "build", str(spec), "--profile", args.profile,
                                     "--out", str(work / f"out-{name}"), "--cache", str(work / f"cache-{name}"),
                                     *extra], env, REPO)
            report = json.loads((work / f"out-{name}" / spec.stem / args.profile / "build.json").read_text())
            results[name]["pieces"] = report["pieces"]
            results[name]["build_seconds"] = report["build_seconds"]
        episodes = [work / f"out-{name}" / spec.stem / args.profile / "episode.mp4" for name in runs]
        results["episode_s"] = report["duration_s"]
        results["episodes_byte_identical"] = episodes[0].read_bytes() == episodes[1].read_bytes()
        # if not, was it a different cut (piece keys) or different bytes for the same pieces?
        keys = [sorted(p.name for p in (work / f"cache-{name}" / "pieces" / args.profile).glob("*/*")
                       if not p.name.startswith(".")) for name in runs]
        results["same_pieces"] = keys[0] == keys[1]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save("dask.json", results)
    base = results["default"]
    for name in runs:
        r = results[name]
        print(f"{name:>8}: {r['wall_s']:7.1f} s wall ({results['episode_s'] / r['wall_s']:.1f}x realtime), "
              f"{r['cpu_s']:7.1f} s CPU, {r['peak_rss_mb']:6.0f} MB peak; "
              f"{base['wall_s'] / r['wall_s']:.2f}x the default runner's speed")


if __name__ == "__main__":
    main()
