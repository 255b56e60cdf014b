"""The fuzzers' JSON reports as the one Markdown table of docs/reliability.md.

    python -m reliability.table uploads.json specs.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HEADER = ("| attack | seed | tries | crashes | hangs | records lost | peak memory (ours / largest child) "
          "| slowest call | reproduce |\n|---|---|---|---|---|---|---|---|---|")


def rows(report: dict, kind: str) -> list[str]:
    out = []
    for a in report["attacks"]:
        memory = a.get("peak_memory", {})
        child = f"{memory['largest_child_mb']:.0f} MB" if memory.get("largest_child_mb") else "-"
        ours = f"{memory['self_mb']:.0f} MB" if memory.get("self_mb") else "-"
        slowest = (f"{a['slowest_call_cpu_s']:.2f} s CPU" if "slowest_call_cpu_s" in a
                   else f"{a.get('slowest_call_s', 0):.0f} s")
        out.append(f"| {kind}: {a['attack']} | {report['seed']} | {a['tries']} | {a['crashes']} | {a['hangs']} "
                   f"| {a['lost']} | {ours} / {child} | {slowest} | `{a['command']}` |")
    return out


def main(paths: list[str]) -> int:
    print(HEADER)
    for path in paths:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        kind = "spec" if "fuzz_specs" in report["attacks"][0]["command"] else "upload"
        print("\n".join(rows(report, kind)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
