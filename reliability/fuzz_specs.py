"""Spec fuzzing: mutated episode specs through the validator.

    python -m reliability.fuzz_specs --seed 1 --count 400 --out specs.json

Every mutated spec must either validate or give ``file:line: ...`` problems: no other exception,
within 2 s and 200 MB. The bulk runs in-process (``read_spec`` and the call-out checks, as
``remixtv validate`` does); a sample runs ``python -m flows.cli validate`` as a subprocess, which
must exit 0 or 1 with every stderr line in that form and no traceback.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from reliability import harness
from reliability.mutate import SPEC_ATTACKS

TIME_LIMIT_S = 2.0
MEMORY_LIMIT_MB = 200
CLI_EVERY = 10  # one try in this many also runs the command line
PROBLEM_LINE = re.compile(r"^.+:\d+: \S")

BLOCK_SPEC = """\
title: "RE: {{show}}"
callout: callout
runtime: "1:30"
vars: {show: Testing, card_s: 3}
defaults: {transition_in: {type: dip, seconds: 0.5}}
segments:
  - id: open
    type: montage
    select:
      kinds: [video, photo]
      tags: [one]
      limit: 3
    shot_seconds: 2
  - id: title
    type: card
    text: "{{show}}"
    seconds: "{{card_s}}"
  - {id: goggles, type: feature, record: R0042, max_seconds: 20, start: 1.5}
  - {id: song, type: song, record: R0002}
  - {id: fill, type: fill}
  - {id: credits, type: credits, seconds: 10}
"""


def base_specs() -> list[str]:
    """The shipped demo spec (pointed at the fuzz call-out) and a block-style one using vars and defaults."""
    demo = (harness.REPO / "episode_specs" / "demo.yaml").read_text(encoding="utf-8")
    return [re.sub(r"(?m)^callout: .*$", "callout: callout", demo), BLOCK_SPEC]


def write_callout(folder: Path) -> None:
    """The records the base specs name, tagged as they expect."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "callout.yaml").write_text("id: fuzz\ntitle: fuzz\nbrief: fuzz\nopened: 2026-01-01\nclosed: 2026-02-01\n")
    rows = ["record_id,file,kind,title,contributors,remix_of,tags,text,released"]
    rows += [f"R{n:04d},media/r{n}.mp4,{kind},R{n},ana,,one,,yes"
             for n, kind in ((2, "music"), (9, "music"), (42, "video"), (43, "video"))]
    (folder / "submissions.csv").write_text("\n".join(rows) + "\n")
    (folder / "contributors.csv").write_text("username,credit_name,country\nana,Ana,PT\n")


def validate_in_process(path: Path, callout) -> list[str]:
    """What ``remixtv validate`` says about the spec: its problems as lines ([] when it is valid)."""
    from render.core.errors import SpecError, UserError
    from render.edit.spec import callout_problems, read_spec, tag_problems

    try:
        spec, problems = read_spec(path)
    except SpecError as exc:
        return exc.problems
    except UserError as exc:
        return exc.problems
    if not any(p.path == "callout" for p in problems):
        problems += callout_problems(spec, callout) + tag_problems(spec, callout)
    return SpecError(problems).problems if problems else []


def run_cli(path: Path) -> tuple[int | None, str, float, float, float]:
    """``python -m flows.cli validate``: exit code, stderr, wall and CPU seconds, peak memory in MB."""
    env = {**os.environ, "PYTHONPATH": str(harness.REPO)}
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "validate", path.name], cwd=path.parent,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        stop = threading.Timer(60, proc.kill)
        stop.start()
        _, status, usage = os.wait4(proc.pid, 0)  # wait4, not wait: it also gives the child's CPU and peak memory
        stop.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    wall = time.monotonic() - started
    return proc.returncode, stderr, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run_attack(attack: str, seed: int, count: int, workdir: Path) -> dict:
    """Every try of one attack, in-process, and a sample of them through the command line."""
    from render.callout.folder import load_callout

    write_callout(workdir / "callout")
    callout = load_callout(workdir / "callout")
    bases = base_specs()
    failures, outcomes = [], {"valid": 0, "problems": 0, "cli_runs": 0}
    crashes = hangs = 0
    slowest = slowest_wall = cli_slowest_cpu = cli_peak = 0.0
    for i in range(count):
        rng = random.Random(f"{seed}:{attack}:{i}")
        text = SPEC_ATTACKS[attack](rng, rng.choice(bases))
        path = workdir / f"{attack}-{i}.yaml"
        path.write_bytes(text.encode("latin-1") if attack == "binary_garbage" else text.encode("utf-8", "replace"))
        where = f"seed {seed} attack {attack} try {i} ({path.name})"
        started, cpu_started = time.monotonic(), time.process_time()
        try:
            lines = harness.with_deadline(lambda path=path: validate_in_process(path, callout), 30)
        except harness.Deadline as exc:
            hangs += 1
            failures.append(f"{where}: hang: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - any other exception is the crash this looks for
            crashes += 1
            failures.append(f"{where}: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}")
            continue
        # CPU time is the measure: on a shared machine the wall clock also counts other people's work
        seconds, wall = time.process_time() - cpu_started, time.monotonic() - started
        slowest, slowest_wall = max(slowest, seconds), max(slowest_wall, wall)
        if seconds > TIME_LIMIT_S:
            hangs += 1
            failures.append(f"{where}: took {seconds:.1f} s of CPU ({wall:.1f} s wall; limit {TIME_LIMIT_S:g} s)")
        unplaced = [ln for ln in lines if not PROBLEM_LINE.match(ln)]
        if unplaced:
            crashes += 1
            failures.append(f"{where}: problems without file:line: {unplaced[:3]}")
        outcomes["problems" if lines else "valid"] += 1
        if i % CLI_EVERY == 0:
            outcomes["cli_runs"] += 1
            code, stderr, wall, cpu, peak = run_cli(path)
            cli_slowest_cpu, cli_peak = max(cli_slowest_cpu, cpu), max(cli_peak, peak)
            bad = [ln for ln in stderr.splitlines() if not PROBLEM_LINE.match(ln)]
            if code not in (0, 1) or "Traceback" in stderr or (code == 1 and bad) or (code == 1) != bool(lines):
                crashes += 1
                failures.append(f"{where}: validate exited {code}: {stderr[-1500:]}")
            if cpu > TIME_LIMIT_S or peak > MEMORY_LIMIT_MB:
                hangs += cpu > TIME_LIMIT_S
                failures.append(f"{where}: validate used {cpu:.2f} s of CPU ({wall:.2f} s wall), {peak:.0f} MB")
    memory = harness.peak_memory_mb()
    if memory["self_mb"] > MEMORY_LIMIT_MB:
        failures.append(f"seed {seed} attack {attack}: the process reached {memory['self_mb']:.0f} MB")
        crashes += 1
    return {"attack": attack, "seed": seed, "tries": count, "crashes": crashes, "hangs": hangs, "lost": 0,
            "outcomes": outcomes, "slowest_call_cpu_s": round(slowest, 3),
            "slowest_call_wall_s": round(slowest_wall, 3), "cli_slowest_cpu_s": round(cli_slowest_cpu, 2),
            "peak_memory": {**memory, "largest_child_mb": round(cli_peak, 1)}, "failures": failures}


def main() -> int:
    return harness.main("reliability.fuzz_specs", __doc__, SPEC_ATTACKS, 400, run_attack, child_timeout_s=1800)


if __name__ == "__main__":
    raise SystemExit(main())
