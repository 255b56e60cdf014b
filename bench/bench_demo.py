"""Benchmark the demo build: cold, warm after a one-segment edit, and with nothing changed, the
encode floor, plus the same timeline rendered the naive way with MoviePy (bench/moviepy_baseline.py).

    .venv/bin/python bench/bench_demo.py [--profile preview|master] [--skip-moviepy]

The preview is measured the way an editor works: one `remixtv build --watch` session whose first
build is the cold one, then a save that changes one segment (the title card's words), then a save
that changes nothing; each is timed from the save to the watch's "rebuilt" line, CPU time from
/proc (the session and every ffmpeg it waited for). Then the same edit and no-change builds as
separate `remixtv build` processes (each paying Prefect's start-up). The master is a cold
`remixtv build` process from an empty cache, then again with only the call-out's intake and
analysis cached (as any preview leaves them). Separate processes are measured from outside: wall time, CPU time
(user+sys of the process and every ffmpeg under it) and peak memory (the largest single process).
The floor is the finished episode's frames encoded once at the same settings. Results go to
bench/results/<profile>.json and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
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


# the demo call-out generated (once per checkout) and librosa's numba code compiled, neither timed
_WARM_UP = ("import numpy as np\n"
            "from render.callout.demo import generate_demo_callout\n"
            "from render.edit.spec import load_spec\n"
            "from render.analysis.audio import analyze_pcm\n"
            "from render.analysis.loudness import Loudness\n"
            "generate_demo_callout(load_spec('episode_specs/demo.yaml').callout)\n"
            "t = np.arange(48000 * 6) / 48000\n"
            "x = (np.sin(2 * np.pi * 880 * t) * (np.mod(t, 0.5) < 0.03)).astype(np.float32)\n"
            "analyze_pcm(np.stack([x, x], axis=1), Loudness(-20.0, 5.0, -3.0), music_hint=True)\n")


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process and of every child it has waited for (utime+stime+cutime+cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def watch_session(spec: Path, edit, out: Path, profile: str, env: dict) -> dict:
    """Cold build, one-segment edit and no-change save inside one ``remixtv build --watch`` session."""
    report = Path(tempfile.mktemp(prefix="remixtv-bench-", suffix=".json"))
    argv = [*REMIXTV, "build", str(spec), "--profile", profile, "--out", str(out), "--watch"]
    proc = subprocess.Popen([sys.executable, "-c", _WRAP, str(report), *argv], env=dict(env, COLUMNS="200"),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

    def child() -> int:  # the wrapper's child: the watch process itself
        return int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])

    def until_rebuilt(timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            log.append(line)
            if "rebuilt in" in line:
                return line.strip()
        proc.kill()
        raise SystemExit("the watch session did not rebuild:\n" + "".join(log[-40:]))

    results = {}
    started = time.monotonic()
    watcher = None
    for name, change in (("cold", None), ("warm_one_segment", edit), ("no_change", lambda t: t)):
        if change is not None:
            time.sleep(1.0)  # the watch is listening again
            before_cpu, text = _cpu_s(watcher), spec.read_text()
            started = time.monotonic()
            spec.write_text(change(text))
        said = until_rebuilt(3600)
        wall = time.monotonic() - started
        watcher = watcher or child()
        cpu = _cpu_s(watcher) - (before_cpu if change is not None else 0.0)
        results[name] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "watch_says": said}
    # `kill`: the watch stops as on Ctrl-C, and its wrapper reports (a SIGINT would be ignored when
    # this benchmark runs in the background: shells start background jobs ignoring it)
    os.kill(watcher, signal.SIGTERM)
    proc.wait(timeout=120)
    results["session_peak_rss_mb"] = round(json.loads(report.read_text())[2] / 1024, 1)
    report.unlink()
    return results


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
        subprocess.run([sys.executable, "-c", _WARM_UP], env=env, cwd=REPO, check=True)
        shutil.copyfile(SPEC, spec)
        build = [*REMIXTV, "build", str(spec), "--profile", args.profile, "--out", str(work / "out")]
        text = spec.read_text()
        recut = text.replace('text: "RE: The Number One"', 'text: "RE: The Number One (recut)"')
        assert recut != text, "the demo spec's title card moved: update the bench's edit"
        if args.profile == "preview":
            results["watch"] = watch_session(spec, lambda t: recut, work / "out", args.profile, env)
            results["cold"] = results["watch"]["cold"]
            # another one-segment edit (the original words are cached), this time as a new process
            spec.write_text(text.replace('text: "RE: The Number One"', 'text: "RE: The Number One (take 2)"'))
            results["warm_one_segment_new_process"] = measure(build, env, REPO)
            results["no_change_new_process"] = measure(build, env, REPO)
        else:
            results["cold"] = measure(build, env, REPO)
            # a showrunner's master usually follows previews, which leave the call-out intaken and
            # analysed: the same cold render and join again with only those caches kept
            shutil.rmtree(work / "cache" / "pieces")
            shutil.rmtree(work / "out")
            results["cold_analysed"] = measure(build, env, REPO)
        report = json.loads((work / "out" / "bench_demo" / args.profile / "build.json").read_text())
        # the floor: the same frames encoded once at the same settings, from the finished episode
        # (decoding H.264 costs a small fraction of encoding it), with nothing else done
        from render.core.house import profile as house_profile

        episode = work / "out" / "bench_demo" / args.profile / "episode.mp4"
        results["encode_floor"] = measure(["ffmpeg", "-v", "error", "-nostdin", "-i", str(episode), "-map", "0:v",
                                           *house_profile(args.profile).video_codec_args(), "-f", "null", "-"],
                                          env, REPO)
        results["cold_over_floor"] = round(results["cold"]["wall_s"] / results["encode_floor"]["wall_s"], 2)
        if "cold_analysed" in results:
            results["cold_analysed_over_floor"] = round(results["cold_analysed"]["wall_s"]
                                                        / results["encode_floor"]["wall_s"], 2)
        results["episode_s"] = report["duration_s"]
        results["pieces"] = report["pieces"]
        results["loudness"] = {k: report["loudness"][k] for k in ("integrated_lufs", "true_peak_dbtp", "meter")}
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
    print(f"cold / encode floor: {results['cold_over_floor']}"
          + (f" (call-out already analysed: {results['cold_analysed_over_floor']})" if "cold_analysed" in results else ""))
    watched = results.get("watch", {})
    for name, run in [*((f"watch {k}", v) for k, v in watched.items() if isinstance(v, dict) and k != "cold"),
                      *((k, results[k]) for k in ("warm_one_segment_new_process", "no_change_new_process", "moviepy")
                        if k in results)]:
        print(f"{name:>30}: {run['wall_s']:8.1f} s wall  ({cold / run['wall_s']:.1f}x vs cold)")


if __name__ == "__main__":
    main()
