"""Benchmark the analysis library on the corpus: speed in x realtime per core, and librosa's
first-call numba compile cost, shown separately.

    .venv/bin/python bench/bench_analysis.py [--files N] [--json PATH]

1. Compile cost: the same first librosa call (onset strength + beat tracking on 10 s of sound)
   runs in three fresh processes: with an empty NUMBA_CACHE_DIR (cold: numba compiles), again
   with the same dir (warm: numba loads its cache), and once more. The difference between the
   cold and warm first calls is the one-time compile cost, which does not recur once the cache
   dir is kept (numba needs it writable: we set NUMBA_CACHE_DIR; a read-only site-packages
   otherwise means compiling in every process).
2. Throughput: every listed corpus file is analysed in this (warm) process with an empty cache
   (sound: loudness, silence, clipping, speech/music, beats; pictures: shots, black, frozen,
   flashing, quality, thumbnails). CPU time counts this process and every ffmpeg it waited for;
   ``x realtime per core`` is media seconds / CPU seconds.
"""

from __future__ import annotations

import argparse
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

AUDIO = ["piano_music_pcm_s16_44k_stereo.wav", "outfoxing_the_fox_music_mp3_44k_stereo.mp3",
         "jazz_trumpet_loop_vorbis_22k_mono.ogg", "librispeech_reading_vorbis_22k_mono.ogg",
         "jfk_speech_flac_44k_stereo_s32.flac", "lets_go_fishin_song_vorbis_22k_mono.ogg",
         "silence_ac3_44k_stereo.ac3"]
VIDEO = ["scene_cuts_h264_yuv444_1280x272_25fps.mp4", "silent_black_h264_aac_320x240_10s.mp4",
         "bbb_vp8_vorbis_1280x720_24fps_30s.webm", "frog_toy_h264_aac_720x480_30fps.mp4",
         "chaplin_bw_film_h264_mp3_640x360_25fps.mp4", "long_6min_h264_aac_1920x1080_30fps_lowbitrate.mp4"]

CHILD = r"""
import time, sys
t0 = time.perf_counter()
import numpy as np
import librosa
t1 = time.perf_counter()
y = np.random.default_rng(0).standard_normal(22050 * 10).astype(np.float32) * 0.1
y[::11025] = 1.0
onset = librosa.onset.onset_strength(y=y, sr=22050, hop_length=256)
librosa.beat.beat_track(onset_envelope=onset, sr=22050, hop_length=256, units="samples")
t2 = time.perf_counter()
onset = librosa.onset.onset_strength(y=y, sr=22050, hop_length=256)
librosa.beat.beat_track(onset_envelope=onset, sr=22050, hop_length=256, units="samples")
t3 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f}")
"""


def cpu() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def compile_cost(numba_dir: Path) -> list[dict]:
    rows = []
    for label in ("cold (empty numba cache)", "warm (cache kept)", "warm again"):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_dir))
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
        imp, first, second = (float(x) for x in out.split())
        rows.append({"run": label, "import_s": imp, "first_call_s": first, "second_call_s": second})
    return rows


def throughput(files: list[str], cache_root: Path) -> list[dict]:
    from render.analysis import audio, pictures
    from render.callout.folder import Record
    from render.core.cache import Cache
    from render.intake.probe import read_media
    from render.intake.records import Source, safe_link

    cache = Cache(cache_root)
    rows = []
    for name in files:
        path = CORPUS / name
        if not path.exists():
            print(f"  (missing {name})")
            continue
        digest = cache.content_hash(path)
        link = safe_link(cache, path, digest)
        media, _ = read_media(link)
        kind = "music" if name in AUDIO[:3] or "song" in name else ("video" if media.video else "voice")
        source = Source(Record(name[:20], name, kind, name, (), (), (), "", True, 2), digest, media=media, link=link)
        seconds = float(media.duration_s or 0)
        for part, fn in (("sound", audio.analyze_audio), ("pictures", pictures.analyze_pictures)):
            if part == "sound" and media.audio is None or part == "pictures" and media.video is None:
                continue
            c0, w0 = cpu(), time.perf_counter()
            result = fn(source, cache)
            wall, used = time.perf_counter() - w0, cpu() - c0
            what = ""
            if part == "sound" and result is not None:
                what = f"{result.content}, {result.tempo_bpm or '-'} bpm, {len(result.silences)} silences"
            elif result is not None:
                what = f"{len(result.shots)} shots, {len(result.black)} black, {len(result.flashes)} flash"
            rows.append({"file": name, "part": part, "media_s": round(seconds, 2), "wall_s": round(wall, 2),
                         "cpu_s": round(used, 2), "x_realtime_per_core": round(seconds / used, 1) if used else None,
                         "x_realtime_wall": round(seconds / wall, 1) if wall else None, "result": what})
            r = rows[-1]
            print(f"  {name[:44]:44} {part:8} {r['media_s']:7.1f} s media  {r['wall_s']:6.2f} s wall  "
                  f"{r['cpu_s']:6.2f} s cpu  {r['x_realtime_per_core']:7} x/core  {what}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "analysis.json")
    ap.add_argument("--skip-long", action="store_true", help="leave out the 6-minute video")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="remixtv-bench-") as tmp:
        numba_dir = Path(tmp) / "numba"
        print("librosa first call, in fresh processes (numba JIT):")
        compile_rows = compile_cost(numba_dir)
        for r in compile_rows:
            print(f"  {r['run']:26} import {r['import_s']:5.2f} s  first call {r['first_call_s']:6.2f} s  "
                  f"second call {r['second_call_s']:5.2f} s")
        cost = compile_rows[0]["first_call_s"] - compile_rows[1]["first_call_s"]
        print(f"  one-time compile cost: {cost:.1f} s (cached afterwards in NUMBA_CACHE_DIR)")
        os.environ["NUMBA_CACHE_DIR"] = str(numba_dir)  # this process uses the warm cache
        files = AUDIO + [v for v in VIDEO if not (args.skip_long and "long_6min" in v)]
        print("analysis throughput (empty analysis cache, warm numba cache):")
        rows = throughput(files, Path(tmp) / "cache")
    totals = {}
    for part in ("sound", "pictures"):
        sel = [r for r in rows if r["part"] == part]
        media = sum(r["media_s"] for r in sel)
        used = sum(r["cpu_s"] for r in sel)
        wall = sum(r["wall_s"] for r in sel)
        totals[part] = {"media_s": round(media, 1), "cpu_s": round(used, 1), "wall_s": round(wall, 1),
                        "x_realtime_per_core": round(media / used, 1) if used else None}
        print(f"  total {part:8}: {media:7.1f} s media in {used:6.1f} s cpu ({wall:.1f} s wall): "
              f"{totals[part]['x_realtime_per_core']} x realtime per core")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"compile": compile_rows, "compile_cost_s": round(cost, 2), "files": rows,
                                     "totals": totals, "cores": os.cpu_count()}, indent=2))
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
