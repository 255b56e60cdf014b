"""The fuzzers' and the build attacks' JSON reports as the one Markdown table of docs/reliability.md.

    python -m reliability.table uploads.json specs.json kills.json disk.json side.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HEADER = ("| attack | date | seed | tries | crashes | hangs | records lost (identical reruns) "
          "| peak memory (ours / largest child) "
          "| slowest call | reproduce |\n|---|---|---|---|---|---|---|---|---|---|")


def rows(report: dict, kind: str) -> list[str]:
    out = []
    for a in report.get("attacks", [report]):  # a build attack's report is one attack
        memory = a.get("peak_memory", {})
        # a build attack's largest child is the largest process of the builds it ran
        largest = memory.get("largest_child_mb") or memory.get("build_tree_largest_mb")
        child = f"{largest:.0f} MB" if largest else "-"
        ours = f"{memory['self_mb']:.0f} MB" if memory.get("self_mb") else "-"
        slowest = (f"{a['slowest_call_cpu_s']:.2f} s CPU" if "slowest_call_cpu_s" in a
                   else f"{a['seconds']:.0f} s in all" if kind == "build" else f"{a.get('slowest_call_s', 0):.0f} s")
        lost = f"{a['lost']}" + (f" ({a['identical_reruns']} identical reruns)" if "identical_reruns" in a else "")
        out.append(f"| {kind}: {a['attack']} | {report.get('date', '-')} | {report['seed']} | {a['tries']} | {a['crashes']} | {a['hangs']} "
                   f"| {lost} | {ours} / {child} | {slowest} | `{a['command']}` |")
    return out


def main(paths: list[str]) -> int:
    print(HEADER)
    for path in paths:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        command = report.get("command") or report["attacks"][0]["command"]
        kind = "spec" if "fuzz_specs" in command else "upload" if "fuzz_uploads" in command else "build"
        print("\n".join(rows(report, kind)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
