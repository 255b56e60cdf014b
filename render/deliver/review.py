"""The review page: ``review/index.html`` beside every episode, for people who would rather look than read JSON.

The page stands alone (it opens from a file:// path or a bucket, and loads nothing from anywhere
else): the episode in a ``<video>`` with chapters at the act breaks (``chapters.vtt``); the timeline
of segments and shots (thumbnails, transitions), clickable to seek; the programme's loudness and
QC's findings on the same time axis; everyone credited, where their work sits in the cut and what
it earned; intake's verdicts; and what changed since the last build into the same folder.

It is made from what the build already has: the Timeline, the rendered pieces (thumbnails are
taken from the cached piece files, a seek each, and cached by piece key, so an edit decodes only
the pieces it changed), the pieces' loudness meters (``master.level.piece_meter``) and the JSON
reports beside the episode (build, qc, credits, ledger, intake).
"""

from __future__ import annotations

import base64
import functools
import io
import itertools
import json
import math
import shutil
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import jinja2
import numpy as np

from render.callout.folder import CallOut
from render.compose.pieces import pieces
from render.compose.store import RenderedPiece
from render.core import ffmpeg
from render.core.cache import Cache, atomic_path, key_of, write_text_atomic
from render.core.house import TARGET_LUFS, TOLERANCE_LU, TRUE_PEAK_DBTP
from render.core.timebase import timecode
from render.edit.timeline import Shot, Timeline
from render.master import level

REVIEW_VERSION = 3
THUMB_W, THUMB_H = 192, 108
THUMBS_PER_RUN = 8  # inputs open in one ffmpeg at once (each a decoder: memory grows with them)
BLOCK_S = 0.1  # ebur128 reports the momentary and short-term loudness every 100 ms
CHART_BUCKETS = 1200  # the chart's time resolution: about a pixel each at the page's width
QC_LANES = ("black", "freeze", "silence", "luma", "flash")
SEGMENT_COLOURS = {"card": "#d9a441", "feature": "#4f8fd6", "montage": "#3fae8c", "song": "#b66ad1",
                   "fill": "#7d8a99", "credits": "#c9607a", "act_break": "#2b2f36"}


@dataclass(frozen=True, slots=True)
class PlacedShot:
    """A shot where it sits in the programme and in its rendered piece, with its thumbnail's name."""

    number: int
    segment_id: str
    segment_type: str
    shot: Shot
    start: int  # programme frames [start, end)
    end: int
    piece: RenderedPiece
    thumb_frame: int  # the piece's frame the thumbnail shows (the shot's middle)

    @property
    def thumb(self) -> str:
        return f"{self.piece.key[:24]}-{self.thumb_frame}-{THUMB_W}.jpg"


def place_shots(timeline: Timeline, rendered: Sequence[RenderedPiece]) -> list[PlacedShot]:
    """Every shot of the cut with its programme frames and the rendered piece that holds it."""
    parts = pieces(timeline)
    if [p.frames for p in parts] != [r.frames for r in rendered]:
        raise ValueError("the rendered pieces are not the timeline's (frames differ)")
    types = {s.id: s.type for s in timeline.segments}
    out, at = [], 0
    for part, done in zip(parts, rendered):
        offset = 0
        for shot in part.shots:
            out.append(PlacedShot(len(out), part.segment_id, types[part.segment_id], shot, at, at + shot.frames, done,
                                  offset + shot.frames // 2))
            at += shot.frames
            offset += shot.frames
    return out


def _thumbnails(placed: Sequence[PlacedShot], cache: Cache, rate: Fraction, dest: Path) -> None:
    """Each shot's thumbnail in ``dest``: from the cache, else seeking in its piece's file (one seek a
    shot decodes at most a GOP, where decoding the piece would read all of it)."""
    by_piece: dict[str, dict[str, PlacedShot]] = {}
    for p in placed:
        by_piece.setdefault(p.piece.key, {})[p.thumb] = p
    jobs = []
    for shots in by_piece.values():
        todo = [p for p in shots.values() if not cache.path("review-thumbs", p.thumb).exists()]
        jobs += [todo[i:i + THUMBS_PER_RUN] for i in range(0, len(todo), THUMBS_PER_RUN)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda shots: _extract(shots, cache, rate), jobs))
    dest.mkdir(parents=True, exist_ok=True)
    keep = {p.thumb for p in placed}
    for name in keep - {p.name for p in dest.glob("*.jpg")}:
        with atomic_path(dest / name) as tmp:
            shutil.copyfile(cache.path("review-thumbs", name), tmp)
    for old in dest.glob("*.jpg"):
        if old.name not in keep:
            old.unlink()


def _extract(shots: Sequence[PlacedShot], cache: Cache, rate: Fraction) -> None:
    """One ffmpeg for a few shots: an input seeked to each one's frame, a JPEG out of each."""
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-y"]
    for p in shots:  # half a frame in, so the seek lands on the frame, not rounding to its neighbour
        argv += ["-ss", f"{float((p.thumb_frame + Fraction(1, 2)) / rate):.6f}", "-i", str(p.piece.video)]
    temps = [cache.path("review-thumbs", p.thumb).with_name(f".{p.thumb}.part.jpg") for p in shots]
    for i, tmp in enumerate(temps):
        argv += ["-map", f"{i}:v:0", "-frames:v", "1", "-vf", f"scale={THUMB_W}:{THUMB_H}:flags=area", "-q:v", "4",
                 str(tmp)]
    try:
        ffmpeg.run(argv, timeout_s=60 + 2 * len(shots))
        for p, tmp in zip(shots, temps):
            tmp.replace(cache.path("review-thumbs", p.thumb))
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# loudness


MOMENTARY_BLOCKS, SHORT_TERM_BLOCKS = 4, 30  # the meters' windows (400 ms, 3 s) in 100 ms blocks


def loudness_series(rendered: Sequence[RenderedPiece], rate: Fraction, gain_db: float | Sequence[float],
                    limit_dbtp: float | None = None) -> dict:
    """The programme's momentary and short-term loudness (LUFS, every 100 ms from the start; NaN where
    unknown) and each piece's true peak (dBTP) as the programme plays them: the pieces' cached meters
    moved by the levelling gain (one for the programme, or one a piece when each act has its own; a
    limiter, ``limit_dbtp``, holds the peaks at its ceiling).

    A piece was metered alone, so its first blocks' windows lack the sound before it: its first
    momentary values are unknown, and its first short-term values are the energy mean of the
    momentary blocks of the last 3 s of the programme, across the join."""
    gains = [float(gain_db)] * len(rendered) if isinstance(gain_db, (int, float)) else list(gain_db)
    momentary, short, fresh, peaks, at = [], [], [], [], 0
    for i, p in enumerate(rendered):
        seconds = float(Fraction(p.frames) / rate)
        meter = level.piece_meter(p.audio, seconds).moved(gains[i])
        start = float(Fraction(at) / rate)
        # a piece's blocks are counted from its own start: pad or trim them onto the programme's clock
        n = round((start + seconds) / BLOCK_S) - len(momentary)
        momentary += (list(meter.momentary) + [level.FLOOR] * n)[:n]
        short += (list(meter.short_term) + [level.FLOOR] * n)[:n]
        fresh += [min(k, SHORT_TERM_BLOCKS) if i else SHORT_TERM_BLOCKS for k in range(n)]
        tp = 20 * math.log10(meter.true_peak) if meter.true_peak > 0 else level.FLOOR
        peaks.append((start, start + seconds, min(tp, limit_dbtp if limit_dbtp is not None else math.inf)))
        at += p.frames
    m, st, blocks = np.array(momentary), np.array(short), np.array(fresh)
    energy = np.where(m > level.FLOOR, np.power(10.0, (m + 0.691) / 10), 0.0)
    window = SHORT_TERM_BLOCKS - MOMENTARY_BLOCKS + 1
    csum = np.concatenate(([0.0], np.cumsum(energy)))
    idx = np.arange(m.size)
    lo = np.maximum(0, idx + 1 - window)
    mean = (csum[idx + 1] - csum[lo]) / np.maximum(1, idx + 1 - lo)
    across = np.where(mean > 0, -0.691 + 10 * np.log10(np.maximum(mean, 1e-30)), level.FLOOR)
    st = np.where(blocks < SHORT_TERM_BLOCKS, across, st)
    m = np.where(blocks < MOMENTARY_BLOCKS - 1, np.nan, m)
    return {"momentary": m, "short_term": st, "peaks": peaks}


def loudness_svg(series: dict, seconds: float) -> str:
    """The loudness chart as SVG (matplotlib): the momentary range and the short-term line per time
    bucket, the target and its tolerance, each piece's true peak and the ceiling. The axes fill the
    figure edge to edge, so the page lays the timeline and QC's ranges on the same x scale."""
    # matplotlib costs half a second to import: only when a chart is drawn
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    m, s = series["momentary"], series["short_term"]
    n = max(1, min(CHART_BUCKETS, m.size))
    edges = np.linspace(0, m.size, n + 1).astype(int)
    x = (edges[:-1] + edges[1:]) / 2 * BLOCK_S
    spans = [(a, max(b, a + 1)) for a, b in itertools.pairwise(edges)]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a bucket of unknown blocks only: a gap in the chart
        lo = np.array([np.nanmin(m[a:b]) if m.size else np.nan for a, b in spans])
        hi = np.array([np.nanmax(m[a:b]) if m.size else np.nan for a, b in spans])
    st = np.array([s[a:b].max() if s.size else level.FLOOR for a, b in spans])
    floor = -60.0
    fig = Figure(figsize=(13.6, 1.7))  # the page's chart box (8:1); it is stretched to the box's width
    FigureCanvasSVG(fig)
    fig.patch.set_alpha(0)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor("#14181e")
    ax.axhspan(TARGET_LUFS - TOLERANCE_LU, TARGET_LUFS + TOLERANCE_LU, color="#3fae8c", alpha=0.18, lw=0)
    ax.axhline(TARGET_LUFS, color="#3fae8c", lw=1, ls="--")
    ax.axhline(TRUE_PEAK_DBTP, color="#e0556a", lw=0.8, ls=":")
    ax.fill_between(x, np.maximum(lo, floor), np.maximum(hi, floor), color="#6f9fd8", alpha=0.35, lw=0,
                    step="mid", label="momentary")
    # the range's top as a line too: a bucket of one block has no range to fill
    ax.plot(x, np.maximum(hi, floor), color="#6f9fd8", lw=0.6, alpha=0.8)
    ax.plot(x, np.maximum(st, floor), color="#f2c14e", lw=1.3, label="short-term")
    for a, b, tp in series["peaks"]:
        ax.hlines(min(max(tp, floor), 0), a, b, color="#e0556a" if tp > TRUE_PEAK_DBTP else "#e89aa6", lw=2)
    for y, words, va in ((TARGET_LUFS, f"target {TARGET_LUFS:g} LUFS", "bottom"),
                         (TRUE_PEAK_DBTP, f"ceiling {TRUE_PEAK_DBTP:g} dBTP", "top")):
        ax.annotate(words, (0.995, y), xycoords=("axes fraction", "data"), ha="right", va=va, fontsize=8,
                    color="#c9d1d9")
    for y in (-50, -40, -30, -20, -10):
        ax.annotate(f"{y}", (0.003, y), xycoords=("axes fraction", "data"), va="center", fontsize=7, color="#8b949e")
        ax.axhline(y, color="#30363d", lw=0.5, zorder=0)
    ax.set_xlim(0, seconds)
    ax.set_ylim(floor, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    # inlined in the page (no XML prolog or DOCTYPE), stretched to the timeline's width so times line up
    return svg[svg.index("<svg"):].replace("<svg ", '<svg preserveAspectRatio="none" ', 1)


def _chart(rendered: Sequence[RenderedPiece], rate: Fraction, loud: dict, seconds: float, cache: Cache) -> str:
    """The loudness chart for build.json's ``loudness``, cached by the pieces and the levelling (a
    no-change rebuild draws nothing)."""
    mode = loud.get("mode")
    gain = float(loud.get("gain_db") or 0.0) if mode in ("linear", "limited") else 0.0
    limit = loud.get("limiter_ceiling_dbtp") if mode == "limited" else None
    starts = itertools.accumulate((p.frames for p in rendered), initial=0)
    gains = [round(gain + level.act_gain_at(loud, float(Fraction(at) / rate)), 3) for at, _ in zip(starts, rendered)]
    key = key_of("review-loudness", REVIEW_VERSION, level.METER_VERSION, [p.key for p in rendered],
                 gains[0] if len(set(gains)) == 1 else gains, limit)
    path = cache.path("review-charts", key + ".svg")
    if path.exists():
        return path.read_text(encoding="utf-8")
    svg = loudness_svg(loudness_series(rendered, rate, gains, limit), seconds)
    write_text_atomic(path, svg)
    return svg


# ---------------------------------------------------------------------------------------------
# what changed since the last build into this folder


LOUDNESS_FIGURES = {"integrated_lufs": ("integrated", "LUFS"), "true_peak_dbtp": ("true peak", "dBTP"),
                    "lra_lu": ("loudness range", "LU")}


def essentials(build: dict, placed: Sequence[PlacedShot], credits: dict) -> dict:
    """What the next build's page compares with: segments (and their pieces), records, loudness, QC."""
    segments: dict[str, dict] = {}
    for s in build.get("segments", ()):
        segments[s["id"]] = {"type": s["type"], "start_frame": s["start_frame"], "end_frame": s["end_frame"],
                             "records": s.get("records", []), "pieces": []}
    for p in placed:
        keys = segments[p.segment_id]["pieces"]
        if p.piece.key not in keys:
            keys.append(p.piece.key)
    loud = build.get("loudness") or {}
    qc = build.get("qc") or {}
    doc = {"schema": "remixtv.review-essentials/1", "frames": build.get("frames"), "duration": build.get("duration"),
           "rate": build.get("rate"), "segments": segments, "records_used": build.get("records_used", []),
           "loudness": {k: loud.get(k) for k in LOUDNESS_FIGURES},
           "qc": {k: c.get("passed") for k, c in (qc.get("checks") or {}).items()},
           "qc_summary": {k: c.get("summary") for k, c in (qc.get("checks") or {}).items()},
           "credited": [p["credit_name"] for p in credits.get("people", ())],
           "warnings": len(build.get("warnings", ()))}
    return {**doc, "identity": key_of(doc), "built": datetime.now(UTC).isoformat(timespec="seconds")}


def changes(before: dict, now: dict) -> dict:
    """What differs between two builds' essentials, in words a reader can act on."""
    old_s, new_s = before.get("segments", {}), now.get("segments", {})
    rate = Fraction(now.get("rate") or "30000/1001")
    rerendered = [k for k in new_s if k in old_s and new_s[k]["pieces"] != old_s[k]["pieces"]]
    moved = [k for k in new_s
             if k in old_s and k not in rerendered and new_s[k]["start_frame"] != old_s[k]["start_frame"]]
    lines = []
    if before.get("frames") != now.get("frames"):
        delta = (now.get("frames") or 0) - (before.get("frames") or 0)
        lines.append(f"runtime {before.get('duration')} → {now.get('duration')} "
                     f"({'+' if delta >= 0 else '−'}{abs(float(Fraction(delta) / rate)):.3f} s)")
    for name, (words, unit) in LOUDNESS_FIGURES.items():
        a, b = (before.get("loudness") or {}).get(name), (now.get("loudness") or {}).get(name)
        if a is not None and b is not None and abs(a - b) >= 0.05:
            lines.append(f"{words} {a:.1f} → {b:.1f} {unit}")
    qc = []
    for name, passed in (now.get("qc") or {}).items():
        was, said = (before.get("qc") or {}).get(name), (before.get("qc_summary") or {}).get(name)
        if was != passed or said != (now.get("qc_summary") or {}).get(name):
            qc.append({"check": name, "was": was, "now": passed, "before": said,
                       "after": (now.get("qc_summary") or {}).get(name)})
    old_r, new_r = before.get("records_used", []), now.get("records_used", [])
    old_c, new_c = before.get("credited", []), now.get("credited", [])
    return {"since": before.get("built"), "figures": lines,
            "added_segments": [k for k in new_s if k not in old_s],
            "removed_segments": [k for k in old_s if k not in new_s],
            "rerendered": rerendered, "moved": moved,
            "records_added": [r for r in new_r if r not in old_r],
            "records_removed": [r for r in old_r if r not in new_r],
            "credited_added": [n for n in new_c if n not in old_c],
            "credited_removed": [n for n in old_c if n not in new_c], "qc": qc,
            "same": now.get("identity") == before.get("identity")}


def _remember(review: Path, now: dict) -> dict | None:
    """Keep this build's essentials (``this.json``) and the last different build's (``previous.json``);
    returns the previous build's, which a rebuild with no change keeps, so the page still says what
    the last real change was."""
    last, previous = _read(review, "this.json"), _read(review, "previous.json") or None
    if last and last.get("identity") != now["identity"]:
        previous = last
        write_text_atomic(review / "previous.json", json.dumps(last, ensure_ascii=False, indent=1))
    elif last:
        now = {**now, "built": last.get("built", now["built"])}
    write_text_atomic(review / "this.json", json.dumps(now, ensure_ascii=False, indent=1))
    return previous


# ---------------------------------------------------------------------------------------------
# the page


def _read(folder: Path, name: str) -> dict:
    """A JSON report in ``folder``, or {} when it is missing or unreadable (the page shows what there is)."""
    try:
        doc = json.loads((folder / name).read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _captions_b64(folder: Path) -> str | None:
    """The episode's captions.vtt for the player, inlined as the chapters are; None when there is none."""
    try:
        return base64.b64encode((folder / "captions.vtt").read_bytes()).decode()
    except OSError:
        return None


def chapters_vtt(chapters: Sequence[dict], rate: Fraction) -> str:
    """A WebVTT chapters track from build.json's chapters (exact frames, written to the millisecond)."""
    out = ["WEBVTT", ""]
    for i, c in enumerate(chapters, 1):
        out += [str(i), f"{timecode(c['start_frame'], rate)} --> {timecode(c['end_frame'], rate)}", c["title"], ""]
    return "\n".join(out)


def _ruler(seconds: float) -> list[tuple[float, str]]:
    """Time marks for the timeline's ruler: a round step giving at most a dozen marks."""
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if seconds / s <= 12), 900)
    return [(t, f"{t // 60}:{t % 60:02d}") for t in range(0, int(seconds) + 1, step)]


def _seconds(frames: int, rate: Fraction) -> float:
    return float(Fraction(frames) / rate)


def _people(credits: dict, ledger: dict, timeline: Timeline, placed: Sequence[PlacedShot], callout: CallOut) -> list:
    """One entry per credited person: their records, where each sits in the cut, their time and their share."""
    rate = timeline.rate
    screen, sound = timeline.record_frames(), timeline.sound_frames()
    beds = {}
    for seg in timeline.segments:
        if seg.bed is not None:
            beds.setdefault(seg.bed.record_id, []).append(seg)
    payees = {p["username"].casefold(): p for p in ledger.get("payees", ())}
    pool = ledger.get("pool_cents")
    out = []
    for person in credits.get("people", ()):
        records = []
        for rid in dict.fromkeys([*person.get("records", ()),
                                  *(r for path in person.get("remixed_via", ()) for r in path[-1:])]):
            rec = callout.record(rid)
            shots = [p for p in placed if p.shot.record_id == rid]
            records.append({"id": rid, "title": rec.title if rec else "", "kind": rec.kind if rec else "",
                            "direct": rid in person.get("records", ()), "shots": shots,
                            "beds": [{"segment": s.id, "start": timecode(s.start_frame, rate),
                                      "end": timecode(s.end_frame, rate), "start_s": _seconds(s.start_frame, rate)}
                                     for s in beds.get(rid, ())]})
        direct = person.get("records", ())
        payee = payees.get(person["username"].casefold())
        out.append({
            **person, "records_detail": records,
            "screen_s": _seconds(sum(screen.get(r, 0) for r in direct), rate),
            "sound_s": _seconds(sum(sound.get(r, 0) for r in direct), rate),
            "paths": [" → ".join(path) for path in person.get("remixed_via", ())],
            "cents": payee["cents"] if payee else None,
            "percent": 100 * payee["cents"] / pool if payee and pool else None,
        })
    return out


def _timeline_view(timeline: Timeline, seconds: float) -> dict:
    """The timeline's bands, transitions and ruler marks in seconds, for the page's one time axis."""
    rate = timeline.rate
    return {
        "segments": [{"id": s.id, "type": s.type, "start_s": _seconds(s.start_frame, rate),
                      "end_s": _seconds(s.end_frame, rate), "start": timecode(s.start_frame, rate),
                      "end": timecode(s.end_frame, rate), "colour": SEGMENT_COLOURS.get(s.type, "#7d8a99")}
                     for s in timeline.segments],
        "transitions": [{"kind": t.kind, "at_s": _seconds(at, rate), "before_s": _seconds(t.before_frames, rate),
                         "after_s": _seconds(t.after_frames, rate), "at": timecode(at, rate)}
                        for at, t in timeline.transitions()],
        "ruler": _ruler(seconds),
    }


@functools.lru_cache(maxsize=4)
def _templates(root: Path) -> jinja2.Environment:
    """The page's templates, compiled once per machine: jinja keeps the compiled code in the cache
    (keyed by each template's source), since compiling the page costs more than filling it in."""
    (root / "review-templates").mkdir(parents=True, exist_ok=True)
    return jinja2.Environment(loader=jinja2.PackageLoader("render.deliver", "review_page"), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True,
                              bytecode_cache=jinja2.FileSystemBytecodeCache(str(root / "review-templates")))


def write_review(folder: Path, cache: Cache, timeline: Timeline, rendered: Sequence[RenderedPiece],
                 callout: CallOut) -> Path:
    """Write ``folder/review/`` for the build just written into ``folder`` (its build.json, qc.json,
    credits.json, ledger.json and intake.json are read from there): ``index.html``, ``chapters.vtt``,
    the shots' thumbnails, and this and the previous build's essentials. Returns the page's path.

    ``timeline`` and ``rendered`` are the cut as rendered (the roll typeset), pieces in timeline order."""
    folder, rate = Path(folder), timeline.rate
    review = folder / "review"
    review.mkdir(parents=True, exist_ok=True)
    build, qc = _read(folder, "build.json"), _read(folder, "qc.json")
    credits, ledger, intake = _read(folder, "credits.json"), _read(folder, "ledger.json"), _read(folder, "intake.json")
    placed = place_shots(timeline, rendered)
    seconds = _seconds(timeline.frames, rate)
    # the chart is drawn (matplotlib loaded, if it must be) while ffmpeg takes the new thumbnails
    with ThreadPoolExecutor(max_workers=1) as pool:
        chart = pool.submit(_chart, rendered, rate, build.get("loudness") or {}, seconds, cache)
        _thumbnails(placed, cache, rate, review / "thumbs")
        chart = chart.result()
    vtt = chapters_vtt(build.get("chapters", ()), rate)
    write_text_atomic(review / "chapters.vtt", vtt)
    now = essentials(build, placed, credits)
    previous = _remember(review, now)
    first_shot: dict[str, PlacedShot] = {}
    for p in placed:
        first_shot.setdefault(p.shot.record_id, p)
    first_bed = {}
    for seg in reversed(timeline.segments):
        if seg.bed is not None:
            first_bed[seg.bed.record_id] = seg
    checks = qc.get("checks") or {}
    html = _templates(cache.root).get_template("index.html").render(
        build=build, qc=qc, checks=checks, summary=(build.get("qc") or {}).get("checks", {}),
        lanes=[(name, checks.get(name, {})) for name in QC_LANES], seconds=seconds, placed=placed,
        chart=chart, **_timeline_view(timeline, seconds),
        people=_people(credits, ledger, timeline, placed, callout), groups=credits.get("groups", ()),
        username_of={p["credit_name"]: p["username"] for p in credits.get("people", ())},
        makers={r.record_id: ", ".join(callout.contributor(c.username).credit_name for c in r.credits)
                for r in callout.records},
        ledger=ledger, intake=intake, first_shot=first_shot, first_bed=first_bed, warnings=build.get("warnings", ()),
        changes=changes(previous, now) if previous else None, built=now["built"],
        chapters_b64=base64.b64encode(vtt.encode()).decode(), captions_b64=_captions_b64(folder),
        colours=SEGMENT_COLOURS,
        tc=lambda f: timecode(f, rate), secs=lambda f: _seconds(f, rate),
        target=TARGET_LUFS, ceiling=TRUE_PEAK_DBTP, tolerance=TOLERANCE_LU)
    write_text_atomic(review / "index.html", html)
    return review / "index.html"
