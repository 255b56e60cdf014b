"""What both fuzzers share: the command line, one child process per attack, and the JSON report.

Each attack runs in a child process of its own, so its peak memory (``ru_maxrss`` of the child, and
of the largest ffmpeg/ffprobe it waited for) is that attack's alone, and a hang cannot take the
other attacks with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parent.parent


class Deadline(Exception):
    """A call ran past its deadline (raised into it by SIGALRM)."""


def arguments(description: str, attacks: dict, default_count: int) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=1, help="the seed: the same seed makes the same mutations")
    p.add_argument("--count", type=int, default=default_count, help="tries in all, shared among the attacks")
    p.add_argument("--attack", action="append", choices=sorted(attacks), help="run only these attacks")
    p.add_argument("--out", default="reliability-report.json", help="where the JSON report goes")
    p.add_argument("--workdir", default=None, help="keep the mutated files here (default: a temporary folder)")
    return p.parse_args()


class ChildPeaks:
    """Samples the peak resident memory (``VmHWM``) of this process's children as they run.

    ``getrusage(RUSAGE_CHILDREN)`` cannot tell: a child's high-water mark counts the parent's pages
    it was forked with, so it reports this process's size, not ffmpeg's.
    """

    def __init__(self, names: tuple[str, ...] = ("ffmpeg", "ffprobe"), every_s: float = 0.05):
        self.names = names
        self.every_s = every_s
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)

    def _sample(self) -> None:
        me = str(os.getpid())
        while not self._stop.wait(self.every_s):
            for status in Path("/proc").glob("[0-9]*/status"):
                try:
                    text = status.read_text()
                except OSError:
                    continue  # ended meanwhile
                fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
                # only children that have become ffmpeg/ffprobe: between fork and exec a child still
                # shows this process's memory as its own
                if (fields.get("PPid", "").strip() == me and "VmHWM" in fields
                        and fields.get("Name", "").strip() in self.names):
                    self.peak_kb = max(self.peak_kb, int(fields["VmHWM"].split()[0]))


def peak_memory_mb(children: ChildPeaks | None = None) -> dict:
    """Peak resident memory of this process and of the largest child seen running, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"self_mb": round(own, 1)}
    if children is not None:
        out["largest_child_mb"] = round(children.peak_kb / 1024, 1)
    return out


def with_deadline(fn: Callable, seconds: float):
    """``fn()``, interrupted by Deadline after ``seconds`` (main thread only: SIGALRM)."""
    def expired(signum, frame):
        raise Deadline(f"still running after {seconds:.0f} s")

    before = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def share(count: int, attacks: list[str]) -> dict[str, int]:
    """``count`` tries spread over the attacks as evenly as possible (the first ones get the rest)."""
    base, extra = divmod(count, len(attacks))
    return {a: base + (i < extra) for i, a in enumerate(attacks)}


def drive(module: str, args: argparse.Namespace, attacks: list[str], child_timeout_s: float) -> dict:
    """Run each attack in a child (``python -m module --attack A``) and gather their reports."""
    results = []
    started = time.monotonic()
    for attack, tries in share(args.count, attacks).items():
        if not tries:
            continue
        out = Path(args.out).with_suffix(f".{attack}.json")
        argv = [sys.executable, "-m", module, "--seed", str(args.seed), "--count", str(tries), "--attack", attack,
                "--out", str(out), *(["--workdir", args.workdir] if args.workdir else [])]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        try:
            done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=child_timeout_s,
                                  check=False)
            report = json.loads(out.read_text()) if out.exists() else None
            if report is None or done.returncode not in (0, 1):
                report = {"attack": attack, "tries": tries, "crashes": tries, "hangs": 0, "lost": 0,
                          "failures": [f"the attack's process ended with {done.returncode}: {done.stderr[-2000:]}"]}
        except subprocess.TimeoutExpired:
            report = {"attack": attack, "tries": tries, "crashes": 0, "hangs": tries, "lost": 0,
                      "failures": [f"the attack's process ran past {child_timeout_s:.0f} s"]}
        out.unlink(missing_ok=True)
        report["command"] = shlex.join(["python", "-m", module, "--seed", str(args.seed), "--count", str(tries),
                                        "--attack", attack])
        results.append(report)
        print(f"{attack}: {report['tries']} tries, {report['crashes']} crashes, {report['hangs']} hangs, "
              f"{report['lost']} lost", flush=True)
    return {"seed": args.seed, "count": args.count, "seconds": round(time.monotonic() - started, 1),
            "attacks": results}


def main(module: str, doc: str, attacks: dict, default_count: int, run_attack, child_timeout_s: float) -> int:
    """A fuzzer's command line: every attack asked for in a child of its own (``drive``), or, in that
    child, the one attack (``run_attack(attack, seed, count, workdir)``); the report goes to ``--out``."""
    import tempfile

    args = arguments(doc.splitlines()[0], attacks, default_count)
    chosen = args.attack or list(attacks)
    if len(chosen) > 1:
        return write_report(args.out, drive(module, args, chosen, child_timeout_s=child_timeout_s))
    name = module.rsplit("_", 1)[-1]
    with tempfile.TemporaryDirectory(prefix="remixtv-fuzz-") as tmp:
        workdir = Path(args.workdir or tmp) / f"{name}-{chosen[0]}-{args.seed}"
        workdir.mkdir(parents=True, exist_ok=True)
        report = run_attack(chosen[0], args.seed, args.count, workdir)
    return write_report(args.out, report)


def write_report(path: str, report: dict) -> int:
    """Write the JSON report, dated; exit status 1 when anything crashed, hung or was lost."""
    import datetime

    report.setdefault("date", datetime.date.today().isoformat())
    Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = report.get("attacks", [report])
    return 1 if any(r["crashes"] or r["hangs"] or r["lost"] for r in rows) else 0
