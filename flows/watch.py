"""``remixtv build --watch``: rebuild on every save of the spec, or of a transcript in the
``transcripts/`` folder beside it, and say what changed.

One process for the whole session, so Prefect starts once and every rebuild pays only for
the media that changed (pieces are cached by content; the join is skipped when nothing did).
A save with a mistake prints the spec's errors and waits for the next save; it never exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from render.deliver.captions import transcripts


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
    said, was = _captioned(after), _captioned(before)
    if said != was:
        out.append(f"~ captions: {said}")
    if after["warnings"] != before["warnings"]:
        fresh = [w for w in after["warnings"] if w not in before["warnings"]]
        out += [f"! {w}" for w in fresh[:5]]
    return out or ["no change to the cut"]


def _captioned(build: dict) -> str:
    """The captions of a build in a line: how many, the seconds of speech from each source, the drafts."""
    c = build.get("captions") or {}
    seconds = ", ".join(f"{v:g} s {k}" for k, v in sorted((c.get("speech_seconds") or {}).items()))
    drafts = c.get("unreviewed") or []
    return (f"{c.get('captions', 0)} captions" + (f" ({seconds})" if seconds else "")
            + (f", unreviewed: {' '.join(drafts)}" if drafts else ""))


def _watched(spec: Path) -> tuple[Path, ...]:
    """The folders to watch: the spec's, and its transcripts folder when there is one."""
    folder = transcripts.folder_of(spec)
    return (spec.parent, folder) if folder.is_dir() else (spec.parent,)


def _state(spec: Path) -> dict[str, tuple[int, int]]:
    """What a build reads that an editor saves: the spec and each transcript, by name (relative to the
    spec's folder), with its modification time and size."""
    folder = transcripts.folder_of(spec)
    paths = [spec, *(p for p in (sorted(folder.iterdir()) if folder.is_dir() else ()) if transcripts.is_transcript(p))]
    out = {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:  # gone between the listing and now: as if it were not there
            continue
        out[str(path.relative_to(spec.parent))] = (st.st_mtime_ns, st.st_size)
    return out


def _saved(before: dict, after: dict) -> str:
    """What changed between two ``_state`` readings, as said: ``transcripts/R0033.txt saved``."""
    return ", ".join(f"{n} {'saved' if n in after else 'removed'}" for n in sorted(before.keys() | after.keys())
                     if before.get(n) != after.get(n))


def watch(spec: Path, build: Callable[[], dict], say: Callable[[str], None], *,
          stop: Callable[[], bool] = lambda: False, debounce_ms: int = 300) -> None:
    """Build now, then again after every save of ``spec`` or of a transcript in ``transcripts/`` beside
    it (``<record_id>.txt``, ``.srt``, ``.vtt``), until ``stop()`` or Ctrl-C.

    ``build`` runs one build and returns build.json's content; a ``UserError`` from it is printed
    (its problems, one per line) and the watch goes on.
    """
    from watchfiles import watch as watch_files

    from render.core.errors import FfmpegError, UserError

    last: dict | None = None
    seen: dict[str, tuple[int, int]] = {}
    spec = spec.resolve()

    def once() -> None:
        nonlocal last, seen
        seen = _state(spec)  # before the build: a save while it runs is a change for the next one
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
    while True:
        # the folders, not the files: editors save by writing a new file and renaming it over the old.
        # Not recursive (the call-out and the output may sit below the spec): transcripts/ is watched
        # as a folder of its own, from when it appears. What changed is read from the files themselves
        # (``_state``) on every wake-up, a quiet half second included, so a save made while no watcher
        # was looking (between one and the next) still rebuilds.
        roots = _watched(spec)
        for _ in watch_files(*roots, debounce=debounce_ms, rust_timeout=500, yield_on_timeout=True,
                             recursive=False):
            if stop():
                return
            now = _state(spec)
            if now != seen:
                say(_saved(seen, now))
                once()
            if _watched(spec) != roots:
                break
        else:
            return
