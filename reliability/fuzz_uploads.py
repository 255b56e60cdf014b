"""Upload fuzzing: mutated corpus files through intake, and the accepted ones through a short build.

    python -m reliability.fuzz_uploads --seed 1 --count 100 --out uploads.json

Every mutated upload must come out accepted or quarantined with a reason (never an exception), no
call may run past its deadline, the unmutated control records beside them must all be accepted,
and each accepted upload must conform to exactly the frames and samples of a one-second shot.
Exit status 1 when any of that fails; the report lists each failure with its seed and try.
"""

from __future__ import annotations

import csv
import os
import random
import time
import traceback
from pathlib import Path

from reliability import harness
from reliability.mutate import UPLOAD_ATTACKS

CORPUS = Path(os.environ.get("REMIXTV_CORPUS", harness.REPO.parent / "shared" / "corpus"))
MAX_BASE_BYTES = 1_500_000  # small uploads keep a try to seconds; the attacks do not need big ones
CONTROLS = ("spoken_digit_jackson_8k_mono_0.44s.wav", "london_photo_1020x768.jpg",
            "bbb_vp9_vorbis51_960x540_60fps_1s.webm")
CALL_DEADLINE_S = 240  # intake's own longest ffmpeg timeout is far above a small file's need
SHOT_FRAMES = 30


def corpus_bases() -> list[tuple[Path, str]]:
    """Small corpus files to mutate, with the kind a contributor would give them."""
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for row in rows:
        name = row["file"]
        if name.endswith((".txt", ".srt")) or int(row["bytes"] or 0) > MAX_BASE_BYTES:
            continue
        kind = "photo" if row["video_codec"] and not row["duration_s"] else "video" if row["video_codec"] else "music"
        out.append((CORPUS / name, kind))
    return sorted(out)


def build_callout(folder: Path, attack: str, seed: int, count: int) -> dict[str, dict]:
    """A call-out of ``count`` mutated uploads plus the unmutated controls; returns what each record is."""
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    bases = corpus_bases()
    made: dict[str, dict] = {}
    for i in range(count):
        rng = random.Random(f"{seed}:{attack}:{i}")
        base, kind = rng.choice(bases)
        data, name = UPLOAD_ATTACKS[attack](rng, base.read_bytes(), base.name)
        rid = f"F{i:04d}"
        (media / f"{rid}_{name}").write_bytes(data)
        made[rid] = {"file": f"media/{rid}_{name}", "kind": kind, "base": base.name, "try": i, "bytes": len(data)}
    for j, name in enumerate(CONTROLS):
        kind = "photo" if name.endswith(".jpg") else "music" if name.endswith(".wav") else "video"
        rid = f"C{j}"
        (media / name).write_bytes((CORPUS / name).read_bytes())
        made[rid] = {"file": f"media/{name}", "kind": kind, "base": name, "control": True}
    (folder / "callout.yaml").write_text("id: fuzz\ntitle: fuzz\nbrief: fuzz\nopened: 2026-01-01\nclosed: 2026-02-01\n")
    with open(folder / "submissions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["record_id", "file", "kind", "title", "contributors", "remix_of", "tags", "text", "released"])
        for rid, m in made.items():
            w.writerow([rid, m["file"], m["kind"], rid, "ana", "", "", "", "yes"])
    (folder / "contributors.csv").write_text("username,credit_name,country\nana,Ana,PT\n")
    return made


def run_attack(attack: str, seed: int, count: int, workdir: Path) -> dict:
    """Intake and a short build of every record of one attack's call-out."""
    from render.callout.folder import load_callout
    from render.core.cache import Cache

    made = build_callout(workdir / "callout", attack, seed, count)
    callout = load_callout(workdir / "callout")
    cache = Cache(workdir / "cache")
    with harness.ChildPeaks() as children:
        report = _intake_and_build(callout, cache, made, attack, seed, workdir)
    report.update(tries=count, peak_memory=harness.peak_memory_mb(children))
    return report


def _intake_and_build(callout, cache, made: dict[str, dict], attack: str, seed: int, workdir: Path) -> dict:
    """Each record through ``intake_record`` and, accepted, a one-second clip through the render path."""
    from render.core.house import PROFILES
    from render.edit import plan
    from render.intake.records import Quarantined, Source, intake_record
    from render.master.programme import write_clip

    failures, outcomes, slowest = [], {"accepted": 0, "quarantined": 0, "built": 0}, 0.0
    crashes = hangs = 0
    seen = {r.record_id for r in callout.records}
    lost = [rid for rid in made if rid not in seen]
    for record in callout.records:
        m = made[record.record_id]
        where = f"seed {seed} attack {attack} try {m.get('try', 'control')} ({m['base']} -> {m['file']})"
        started = time.monotonic()
        try:
            result = harness.with_deadline(lambda r=record: intake_record(callout, r, cache), CALL_DEADLINE_S)
            if isinstance(result, Source) and result.media is not None:
                shot = plan.source_shot(result, callout, None, max_frames=SHOT_FRAMES)
                out = workdir / "clips" / f"{record.record_id}.mp4"
                out.parent.mkdir(parents=True, exist_ok=True)
                if shot is not None:
                    clip = (result, shot, PROFILES["preview"], "blur", cache, out)
                    harness.with_deadline(lambda c=clip: write_clip(*c), CALL_DEADLINE_S)
                    outcomes["built"] += 1
        except harness.Deadline as exc:
            hangs += 1
            failures.append(f"{where}: hang: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a crash is what this harness is here to find
            crashes += 1
            failures.append(f"{where}: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}")
            continue
        finally:
            slowest = max(slowest, time.monotonic() - started)
        if isinstance(result, Quarantined):
            outcomes["quarantined"] += 1
            if len(result.reason.strip()) < 8:
                crashes += 1
                failures.append(f"{where}: quarantined without a reason ({result.reason!r})")
            if m.get("control"):
                lost.append(record.record_id)
                failures.append(f"{where}: a control record was quarantined: {result.reason}")
        else:
            outcomes["accepted"] += 1
    return {"attack": attack, "seed": seed, "crashes": crashes, "hangs": hangs, "lost": len(lost),
            "outcomes": outcomes, "slowest_call_s": round(slowest, 2),
            "failures": failures + [f"record {rid} lost" for rid in lost]}


def main() -> int:
    return harness.main("reliability.fuzz_uploads", __doc__, UPLOAD_ATTACKS, 100, run_attack, child_timeout_s=3600)


if __name__ == "__main__":
    raise SystemExit(main())
