"""Benchmark intake on the whole corpus as one call-out: cold (empty cache) and warm.

    .venv/bin/python bench/bench_intake.py

Runs `remixtv intake CALLOUT --write-clips DIR` in a fresh process each time (measured from
outside like bench_demo.py: wall, CPU of it and every ffmpeg under it, peak memory) and reports
media seconds conformed per wall second. Results go to bench/results/intake.json.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO)]

from bench_demo import REMIXTV, measure, save

from tests.intake.test_corpus import corpus_rows
from tests.support.callouts import write_callout
from tests.support.media import CORPUS


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="remixtv-bench-intake-"))
    env = dict(os.environ, REMIXTV_CACHE=str(work / "cache"), PYTHONPATH=str(REPO))
    try:
        rows = corpus_rows()
        callout = write_callout(work / "callout", rows, [(f"user{i}", f"User {i}", "") for i in range(7)],
                                {r["file"]: CORPUS / r["file"].removeprefix("media/") for r in rows})
        argv = [*REMIXTV, "intake", str(callout), "--write-clips", str(work / "clips"), "--out", str(work / "out")]
        results = {"cpus": os.cpu_count(), "cold": measure(argv, env, REPO), "warm": measure(argv, env, REPO)}
        report = json.loads((work / "out" / "intake.json").read_text())
        media_s = sum(a["duration_s"] or 0 for a in report["accepted"])
        results.update(accepted=len(report["accepted"]), quarantined=len(report["quarantined"]),
                       media_s=round(media_s, 1),
                       realtime_cold=round(media_s / results["cold"]["wall_s"], 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save("intake.json", results)


if __name__ == "__main__":
    main()
