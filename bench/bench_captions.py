"""Benchmark caption speech work: forced alignment and recognition, in x realtime per core.

    .venv/bin/python bench/bench_captions.py [--demo CALLOUT] [--json PATH]

Clips: espeak-ng sentences (known words), the corpus's real speech (JFK, LibriSpeech), and with
``--demo`` the demo call-out's voice records (flite speech, some under street noise; their words are
not in the call-out, so they are recognised only). CPU time is this process's (pocketsphinx runs in
it) plus the ffmpeg that decoded the sound; ``x realtime per core`` is sound seconds / CPU seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CORPUS = Path(os.environ.get("REMIXTV_CORPUS", REPO.parent / "shared" / "corpus"))
SPOKEN = {
    "jfk_speech_flac_44k_stereo_s32.flac": "And so my fellow Americans ask not what your country can do for you "
                                           "ask what you can do for your country",
}
ESPEAK = ("The quick brown fox jumps over the lazy dog. Then it runs home to sleep in the warm barn.",
          "Every morning the farmer feeds the hungry chickens, and nobody knows where the old cat hides.",
          "When the night came we walked down to the river and sat on the stones until the moon rose.")


def cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def pcm(path: Path) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
                          capture_output=True, check=True).stdout


def measure(name: str, data: bytes, text: str | None) -> dict:
    from render.deliver.captions import speech

    seconds = len(data) / 32000
    row = {"clip": name, "seconds": round(seconds, 2)}
    if text:
        t, c = time.perf_counter(), cpu()
        words = speech.align(data, [speech.Token(w) for w in text.split()])
        row["align_x_realtime_per_core"] = round(seconds / max(1e-6, cpu() - c), 1)
        row["align_wall_s"] = round(time.perf_counter() - t, 2)
        row["aligned_share"] = round(sum(w.aligned for w in words) / len(words), 3)
    t, c = time.perf_counter(), cpu()
    said = speech.recognise(data)
    row["recognise_x_realtime_per_core"] = round(seconds / max(1e-6, cpu() - c), 2)
    row["recognise_wall_s"] = round(time.perf_counter() - t, 2)
    row["recognised"] = " ".join(w.text for w in said)[:120]
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, help="a demo call-out folder: also its voice records")
    ap.add_argument("--demo-records", type=int, default=4)
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "captions.json")
    args = ap.parse_args()
    from render.deliver.captions import speech

    speech._decoder("align"), speech._decoder("recognise")  # model loading is not per clip: measured apart
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, text in enumerate(ESPEAK):
            wav = Path(tmp) / f"e{n}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
            rows.append(measure(f"espeak {n + 1}", pcm(wav), text))
    for name, text in SPOKEN.items():
        rows.append(measure(name, pcm(CORPUS / name), text))
    if args.demo:
        with open(args.demo / "submissions.csv", newline="", encoding="utf-8") as f:
            voices = [r for r in csv.DictReader(f) if r["kind"] == "voice"][: args.demo_records]
        for r in voices:
            rows.append(measure(f"demo {r['record_id']}", pcm(args.demo / r["file"]), None))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cpus": os.cpu_count(), "load": os.getloadavg(), "clips": rows}, indent=2))


if __name__ == "__main__":
    main()
