"""``remixtv build --watch``: rebuild on every save of the spec and say what changed.

One process for the whole session, so Prefect starts once and every rebuild pays only for
the media that changed (pieces are cached by content; the join is skipped when nothing did).
A save with a mistake prints the spec's errors and waits for the next save; it never exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def changes(before: dict | None, after: dict) -> list[str]:
    """What a rebuild changed, segment by segment, in words an editor reads at a glance."""
    if before is None:
        return [f"built {len(after['segments'])} segments, {after['duration']}"]
    old = {s["id"]: s for s in before["segments"]}
    new = {s["id"]: s for s in after["segments"]}
    out = []
    for sid, seg in new.items():
        prev = old.get(sid)
        if prev is None:
            out.append(f"+ {sid} ({seg['type']}) {seg['start']}-{seg['end']}")
            continue
        what = []
        length = seg["end_frame"] - seg["start_frame"]
        was = prev["end_frame"] - prev["start_frame"]
        if length != was:
            what.append(f"{'+' if length > was else '-'}{abs(length - was)} frames")
        if seg["records"] != prev["records"]:
            gone = [r for r in prev["records"] if r not in seg["records"]]
            came = [r for r in seg["records"] if r not in prev["records"]]
            what.append(" ".join([*(f"+{r}" for r in came), *(f"-{r}" for r in gone)]) or "records reordered")
        elif seg["shots"] != prev["shots"] or seg.get("bed") != prev.get("bed"):
            what.append("shots changed")
        elif sid in after["pieces"].get("rendered_segments", ()):
            what.append("re-rendered")  # same shots, new look: a card's words, a lower third, a level
        if seg["start_frame"] != prev["start_frame"] and not what:
            what.append(f"moved to {seg['start']}")
        if what:
            out.append(f"~ {sid}: {', '.join(what)}")
    out += [f"- {sid}" for sid in old if sid not in new]
    if after["warnings"] != before["warnings"]:
        fresh = [w for w in after["warnings"] if w not in before["warnings"]]
        out += [f"! {w}" for w in fresh[:5]]
    return out or ["no change to the cut"]


def watch(spec: Path, build: Callable[[], dict], say: Callable[[str], None], *,
          stop: Callable[[], bool] = lambda: False, debounce_ms: int = 300) -> None:
    """Build now, then again after every save of ``spec``, until ``stop()`` or Ctrl-C.

    ``build`` runs one build and returns build.json's content; a ``UserError`` from it is printed
    (its problems, one per line) and the watch goes on.
    """
    from watchfiles import watch as watch_files

    from render.core.errors import FfmpegError, UserError

    last: dict | None = None
    spec = spec.resolve()

    def once() -> None:
        nonlocal last
        started = time.monotonic()
        try:
            result = build()
        except UserError as exc:
            for line in exc.problems:
                say(f"[red]{line}[/]")
            say("fix the spec and save again")
            return
        except FfmpegError as exc:
            say(f"[red]{exc}[/]")
            return
        for line in changes(last, result):
            say(line)
        pieces, sound = result["pieces"], result.get("sound_encode")
        resound = f", {sound['encoded_seconds']:.1f} s of sound re-encoded" if sound else ""
        say(f"[bold]rebuilt[/] in {time.monotonic() - started:.1f} s: {pieces['rendered']} of {pieces['total']} "
            f"pieces rendered, episode {'rewritten' if result['episode_rewritten'] else 'unchanged'}{resound}")
        last = result

    once()
    say(f"watching {spec} (Ctrl-C to stop)")
    # the folder, not the file: editors save by writing a new file and renaming it over the old
    for batch in watch_files(spec.parent, debounce=debounce_ms, rust_timeout=500, yield_on_timeout=True,
                             recursive=False):
        if stop():
            return
        if any(Path(p).resolve() == spec for _, p in batch):
            say(f"{spec.name} saved")
            once()
