"""Builds side by side: on one cache, into one output, and a nightly run beside an editor's build.

    python -m reliability.side_by_side --seed 2 --out side.json

1. Two builds of different specs on one empty cache, started together (a seeded delay apart): both
   finish; each episode has the frames build.json says, ffprobe reads every packet of it, and the two
   pieces the specs share (``builds.SHARED``) are rendered by one build, not both; no piece in the
   cache is damaged.
2. Two builds into one output: the first is frozen (SIGSTOP) while it holds the output's lock, the
   second must be refused with exit 1 and one line saying another build is writing it; the first then
   finishes.
3. ``remixtv nightly run`` over both specs while an editor builds one of them, on one cache: all finish,
   with complete episodes.
A watcher checks every file that appears under a final name in the output folders. Exit status 1 on
any failure. ``--count`` repeats the first attack with other delays (seeded).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import tempfile
import time
from pathlib import Path

from reliability import builds, harness
from reliability.disk import said
from reliability.kills import RUN_DEADLINE_S, intact_pieces


def _episode_ok(folder: Path) -> list[str]:
    """Problems with a finished build's folder: its episode's frames and packets, its reports."""
    problems = [f"{folder / n}: {why}" for n in ("episode.mp4", "build.json", "qc.json", "credits.json")
                if (why := builds.complete(folder / n) or (None if (folder / n).exists() else "missing"))]
    if problems:
        return problems
    build = json.loads((folder / "build.json").read_text())
    from render.core import ffmpeg

    info = ffmpeg.ffprobe_output(folder / "episode.mp4", "-count_frames")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    if int(video["nb_read_frames"]) != build["frames"]:
        problems.append(f"{folder}: {video['nb_read_frames']} frames, build.json says {build['frames']}")
    return problems


def one_cache(rng: random.Random, workdir: Path, specs: dict[str, Path], i: int, watch: builds.Watcher) -> dict:
    """Two specs built at once on one empty cache."""
    cache, outs = workdir / f"cache-shared-{i}", {n: workdir / f"out-shared-{i}-{n}" for n in specs}
    delay = round(rng.uniform(0, 3), 2)
    procs = {}
    for n, spec in specs.items():
        procs[n] = builds.build(spec, cache, outs[n], workdir / "logs" / f"shared-{i}-{n}.log")
        time.sleep(delay if n == "one" else 0)
    watch.folders, watch.pids = list(outs.values()), [p.pid for p in procs.values()]
    failures = []
    for n, p in procs.items():
        if p.wait(timeout=RUN_DEADLINE_S) != 0:
            failures.append(f"{n}: exit {p.returncode}: {said(workdir / 'logs' / f'shared-{i}-{n}.log')[-10:]}")
    if failures:
        return {"attack": "one cache", "delay_s": delay, "failures": failures}
    rendered = {}
    for n in specs:
        folder = outs[n] / n / "preview"
        failures += _episode_ok(folder)
        rendered[n] = json.loads((folder / "build.json").read_text())["pieces"]
    for seg in builds.SHARED:
        times = sum(seg in r["rendered_segments"] for r in rendered.values())
        if times != 1:
            failures.append(f"the shared piece {seg!r} was rendered {times} times")
    failures += [f"damaged piece {p}" for p in intact_pieces(cache)]
    return {"attack": "one cache", "delay_s": delay, "pieces": rendered, "failures": failures}


def one_output(workdir: Path, spec: Path, watch: builds.Watcher) -> dict:
    """A second build of the output a live build is writing is refused, in one line."""
    cache, out = workdir / "cache-shared-0", workdir / "out-same"
    lock = out / "one" / "preview" / ".episode.mp4.lock"
    first = builds.build(spec, cache, out, workdir / "logs" / "same-1.log")
    watch.folders, watch.pids = [out], [first.pid]
    began = time.monotonic()
    while not _held(lock):
        if first.poll() is not None or time.monotonic() - began > RUN_DEADLINE_S:
            builds.kill_all(first) if first.poll() is None else None
            return {"attack": "one output", "failures": ["the first build never held the output lock"]}
        time.sleep(0.005)
    frozen = [first.pid, *builds.descendants(first.pid)]
    for pid in frozen:  # the first build stays inside its lock while the second tries
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    log = workdir / "logs" / "same-2.log"
    second = builds.build(spec, cache, out, log)
    code = second.wait(timeout=RUN_DEADLINE_S)
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    lines = said(log)
    failures = []
    if code != 1 or len(lines) != 1 or "another build is writing it" not in lines[0] or str(out) not in lines[0]:
        failures.append(f"the second build: exit {code}, {lines[-20:]}")
    if first.wait(timeout=RUN_DEADLINE_S) != 0:
        failures.append(f"the first build failed: {said(workdir / 'logs' / 'same-1.log')[-10:]}")
    else:
        failures += _episode_ok(out / "one" / "preview")
    return {"attack": "one output", "message": lines[-1] if lines else "", "failures": failures}


def _held(lock: Path) -> bool:
    """Whether a live process holds ``lock`` (an flock)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def nightly_beside_editor(workdir: Path, spec: Path, watch: builds.Watcher) -> dict:
    """``nightly run`` over the spec folder while an editor builds one of its specs, on one cache."""
    cache, nightly_out, editor_out = workdir / "cache-nightly", workdir / "nightly", workdir / "editor"
    editor = builds.build(spec, cache, editor_out, workdir / "logs" / "editor.log")
    nightly = builds.start(["nightly", "run", "--specs", str(spec.parent), "--out", str(nightly_out),
                            "--cache", str(cache)], spec.parent, workdir / "logs" / "nightly.log")
    watch.folders, watch.pids = [nightly_out, editor_out], [editor.pid, nightly.pid]
    failures = []
    for name, proc in (("editor", editor), ("nightly", nightly)):
        if proc.wait(timeout=2 * RUN_DEADLINE_S) != 0:
            failures.append(f"{name}: exit {proc.returncode}: {said(workdir / 'logs' / f'{name}.log')[-10:]}")
    if not failures:
        failures += _episode_ok(editor_out / "one" / "preview")
        for name in ("one", "two"):
            failures += _episode_ok(nightly_out / name / "preview")
    failures += [f"damaged piece {p}" for p in intact_pieces(cache)]
    return {"attack": "nightly beside an editor", "failures": failures}


def run(seed: int, count: int, workdir: Path) -> dict:
    rng = random.Random(seed)
    specs = builds.make_project(workdir)
    results = []
    with builds.Watcher([]) as watch:
        for i in range(count):
            results.append(one_cache(rng, workdir, specs, i, watch))
        results.append(one_output(workdir, specs["one"], watch))
        results.append(nightly_beside_editor(workdir, specs["one"], watch))
    failures = [f"{r['attack']}: {f}" for r in results for f in r["failures"]] + watch.half_written
    return {"attack": "side by side", "seed": seed, "tries": len(results), "crashes": len(failures), "hangs": 0,
            "lost": len(watch.half_written), "files_checked": watch.checked, "results": results,
            "peak_memory": {"build_tree_largest_mb": round(watch.peak_kb / 1024, 1)}, "failures": failures}


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=1, help="pairs of builds on one cache")
    p.add_argument("--out", default="side.json")
    p.add_argument("--workdir", default=None, help="keep the builds here (default: a temporary folder)")
    args = p.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="remixtv-side-") as tmp:
        report = run(args.seed, args.count, Path(args.workdir or tmp))
    report["seconds"] = round(time.monotonic() - began, 1)
    report["command"] = f"python -m reliability.side_by_side --seed {args.seed} --count {args.count}"
    print(json.dumps({k: report[k] for k in ("tries", "crashes", "seconds")}))
    for r in report["results"]:
        print(f"{r['attack']}: {len(r['failures'])} failures {r.get('message', '')}")
    return harness.write_report(args.out, report)


if __name__ == "__main__":
    raise SystemExit(main())
