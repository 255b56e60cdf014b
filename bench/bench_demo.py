"""Benchmark the demo preview build: cold, warm after a one-segment edit, and with nothing changed,
plus the same timeline rendered the naive way with MoviePy (see bench/moviepy_baseline.py).

    .venv/bin/python bench/bench_demo.py [--profile preview] [--skip-moviepy]

Each run is a separate `remixtv build` process, measured from outside: wall time, CPU time
(user+sys of the process and every ffmpeg under it) and peak memory (the largest single
process). Results go to bench/results/<profile>.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "episode_specs" / "demo.yaml"
REMIXTV = [sys.executable, "-m", "flows.cli"]


_WRAP = ("import json, resource, subprocess, sys\n"
         "rc = subprocess.run(sys.argv[2:]).returncode\n"
         "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
         "open(sys.argv[1], 'w').write(json.dumps([rc, u.ru_utime + u.ru_stime, u.ru_maxrss]))\n")


def measure(argv: list[str], env: dict, cwd: Path) -> dict:
    """Run a command to completion in its own wrapper process, so CPU time (user+sys of it and every
    ffmpeg under it) and peak memory (the largest single process) belong to this run alone."""
    report = Path(tempfile.mktemp(prefix="remixtv-bench-", suffix=".json"))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _WRAP, str(report), *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    rc, cpu, maxrss = json.loads(report.read_text())
    report.unlink()
    if rc != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(maxrss / 1024, 1)}


def save(name: str, results: dict) -> None:
    """Write a benchmark's results to bench/results/<name> and print them."""
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / name).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="preview", choices=("preview", "master"))
    parser.add_argument("--skip-moviepy", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="remixtv-bench-"))
    # numba's one-time compile (bench/bench_analysis.py reports it) is paid by the warm-up, not timed
    env = dict(os.environ, REMIXTV_CACHE=str(work / "cache"), PYTHONPATH=str(REPO),
               NUMBA_CACHE_DIR=str(work / "numba"))
    spec_dir = REPO / "episode_specs"
    spec = spec_dir / "bench_demo.yaml"  # beside demo.yaml so its relative call-out path holds
    results: dict = {"profile": args.profile, "cpus": os.cpu_count()}
    try:
        subprocess.run([*REMIXTV, "demo", "--out", str(work / "warmup-out"), "--profile", args.profile],
                       env=dict(env, REMIXTV_CACHE=str(work / "warmup-cache")), cwd=REPO, check=True,
                       capture_output=True)  # generates the call-out; compiles nothing we time later
        shutil.copyfile(SPEC, spec)
        build = [*REMIXTV, "build", str(spec), "--profile", args.profile, "--out", str(work / "out")]
        results["cold"] = measure(build, env, REPO)
        text = spec.read_text()
        spec.write_text(text.replace('text: "RE: The Number One"', 'text: "RE: The Number One (recut)"'))
        results["warm_one_segment"] = measure(build, env, REPO)
        results["no_change"] = measure(build, env, REPO)
        report = json.loads((work / "out" / "bench_demo" / args.profile / "build.json").read_text())
        # the floor: the same frames encoded once at the same settings, from the finished episode
        # (decoding H.264 costs a small fraction of encoding it), with nothing else done
        from render.house import profile as house_profile

        episode = work / "out" / "bench_demo" / args.profile / "episode.mp4"
        results["encode_floor"] = measure(["ffmpeg", "-v", "error", "-nostdin", "-i", str(episode), "-map", "0:v",
                                           *house_profile(args.profile).video_codec_args(), "-f", "null", "-"],
                                          env, REPO)
        results["cold_over_floor"] = round(results["cold"]["wall_s"] / results["encode_floor"]["wall_s"], 2)
        results["episode_s"] = report["duration_s"]
        results["pieces"] = report["pieces"]
        if not args.skip_moviepy:
            results["moviepy"] = measure(
                [sys.executable, str(REPO / "bench" / "moviepy_baseline.py"),
                 str(work / "out" / "bench_demo" / args.profile / "build.json"), str(work / "moviepy.mp4"),
                 "--profile", args.profile], env, REPO)
    finally:
        spec.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    save(f"{args.profile}.json", results)
    cold = results["cold"]["wall_s"]
    print(f"cold / encode floor: {results['cold_over_floor']}")
    for name in ("warm_one_segment", "no_change", "moviepy"):
        if name in results:
            print(f"{name:>18}: {results[name]['wall_s']:8.1f} s wall  ({cold / results[name]['wall_s']:.1f}x vs cold)")


if __name__ == "__main__":
    main()
