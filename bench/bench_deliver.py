"""Benchmark the delivery: a master build of a spec from a cold cache with ``--deliver network,web``,
then the deliver step measured against the encode floors of its two video deliverables. The network
delivery includes the sound stems: each piece's dialogue, music and effects rendered (sound only), the
three stem WAVs and the M&E levelled with the mix, and their sum checked against it.

    .venv/bin/python bench/bench_deliver.py [SPEC]

The spec is built three times as separate ``remixtv build --profile master`` processes, from one
cache that starts empty: without a delivery (cold), again unchanged (Prefect's start-up and the cache
checks), then with ``deliver: {to: [network, web]}`` (the spec's own leader kept); the delivery's time
is the last build's less the unchanged one's, since everything else was cached. The floors are each
video deliverable's frames encoded once at its settings from a synthetic source (no decode, no
filters, no muxing of real sound): ProRes 422 HQ for the mezzanine's leader + programme + tail, x264
at YouTube's settings for the web version. The goal is a delivery of
at most 1.25x the two floors' sum (the stems have no encode floor: PCM is written as it is). Without
SPEC the demo's spec is used (its call-out must have been generated: ``remixtv demo``). Results go to
bench/results/deliver.json and are printed, with the stems' sizes and how far their sum is from the mix.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml

from render.core.house import profile
from render.deliver import mezzanine, web
from render.deliver.leader import Leader

SPEC = REPO / "episode_specs" / "demo.yaml"
GOAL = 1.25


def _timed(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def floor(frames: int, codec_args: list[str], suffix: str) -> float:
    """Seconds to encode ``frames`` synthetic 1080p frames with ``codec_args`` (the encoder alone)."""
    house = profile("master")
    with tempfile.TemporaryDirectory() as tmp:
        return _timed(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                       f"testsrc2=s={house.width}x{house.height}:r={house.rate.numerator}/{house.rate.denominator}",
                       "-frames:v", str(frames), "-an", *codec_args, str(Path(tmp) / f"floor{suffix}")])


def _specs(spec: Path, tmp: Path) -> tuple[Path, Path]:
    """The spec without a delivery, and with ``network,web`` (its own leader kept), both named as it is
    (so both builds share one output folder and its join) and reading the same call-out."""
    data = yaml.safe_load(spec.read_text())
    if not str(data["callout"]).startswith("s3://"):
        data["callout"] = str((spec.parent / str(data["callout"])).resolve())
    asked = data.pop("deliver", None)
    plain, delivered = tmp / "plain" / spec.name, tmp / "deliver" / spec.name
    for path in (plain, delivered):
        path.parent.mkdir(parents=True)
    plain.write_text(yaml.safe_dump(data, allow_unicode=True))
    leader = asked.get("leader") if isinstance(asked, dict) else None
    data["deliver"] = {"to": ["network", "web"], **({"leader": leader} if leader else {})}
    delivered.write_text(yaml.safe_dump(data, allow_unicode=True))
    return plain, delivered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", nargs="?", default=str(SPEC))
    args = parser.parse_args()
    house = profile("master")
    with tempfile.TemporaryDirectory(prefix="bench-deliver-") as tmp:
        plain, delivered = _specs(Path(args.spec), Path(tmp))
        build = [sys.executable, "-m", "flows.cli", "build", "--profile", "master",
                 "--cache", str(Path(tmp) / "cache"), "--out", str(Path(tmp) / "out")]
        master_s = _timed([*build, str(plain)])
        nochange_s = _timed([*build, str(plain)])  # Prefect's start-up and the cache checks, which the delivery also pays
        total_s = _timed([*build, str(delivered)])
        folder = Path(tmp) / "out" / Path(args.spec).stem / "master"
        index = json.loads((folder / "deliver" / "deliverables.json").read_text())
    frames = index["programme"]["frames"]
    mez = next(f for f in index["files"] if f["role"] == "mezzanine")
    ld = Leader(**{k: v for k, v in mez["leader"].items() if k in ("bars", "slate", "black", "countdown", "pop",
                                                                   "programme")},
                tail_seconds=Fraction(str(mez["leader"]["tail_seconds"])))
    mez_frames = ld.frames + frames + ld.tail_frames(house.rate)
    floors = {"mezzanine": floor(mez_frames, [*mezzanine.VIDEO_ARGS, "-f", "mov"], ".mov"),
              "web": floor(frames, [*web.video_args(house), "-f", "mp4"], ".mp4")}
    deliver_s = total_s - nochange_s  # everything but the delivery was cached
    result = {"spec": args.spec, "programme_frames": frames, "mezzanine_frames": mez_frames,
              "master_build_cold_s": round(master_s, 1), "no_change_build_s": round(nochange_s, 1),
              "build_with_delivery_s": round(total_s, 1), "deliver_s": round(deliver_s, 1),
              "floors_s": {k: round(v, 1) for k, v in floors.items()},
              "ratio": round(deliver_s / sum(floors.values()), 2), "goal": GOAL,
              "stems": {"files": {f["path"]: f["size"] for f in index["files"] if f["role"].startswith("stem-")},
                        "sum_residual": (index.get("stems") or {}).get("sum_residual")},
              "qc_passed": index.get("qc_passed")}
    out = REPO / "bench" / "results" / "deliver.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
