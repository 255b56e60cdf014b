"""Credits from the cut itself: every contributor of every record the Timeline uses, plus,
transitively, of every record those remix. Written as text and JSON, and typeset as the roll.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from . import text
from .cache import write_text_atomic
from .callout import CallOut
from .errors import UserError
from .timeline import Timeline

SCHEMA = "remixtv.credits/1"
UPSTREAM = "Remixed from the work of"
#: Role words as contributors write them -> the heading they appear under, in roll order.
HEADINGS = (
    ("Directed by", ("director", "directed by", "direction")),
    ("Video", ("video", "camera", "cinematography", "filmmaker")),
    ("Animation", ("animation", "animator")),
    ("Music", ("music", "composer", "musician", "performer", "singer", "producer")),
    ("Voices", ("voice", "voices", "narrator", "actor", "speaker")),
    ("Writing", ("writing", "writer", "poet", "author")),
    ("Photography", ("photography", "photographer", "photo")),
    ("Illustration", ("illustration", "illustrator", "artist", "drawing")),
    ("Editing", ("editor", "editing")),
)
_HEADING_OF = {word: heading for heading, words in HEADINGS for word in words}


def heading_for(role: str) -> str:
    return _HEADING_OF.get(role.casefold(), role.strip().title() or "Contributors")


@dataclass(frozen=True, slots=True)
class Person:
    username: str
    credit_name: str
    country: str
    headings: tuple[str, ...]  # roll headings this person appears under
    records: tuple[str, ...]  # records in the cut they contributed to directly
    remixed_via: tuple[tuple[str, ...], ...]  # for upstream credit: path used record -> ... -> their record


@dataclass(frozen=True, slots=True)
class Credits:
    title: str
    people: tuple[Person, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (heading, credit names), in roll order
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "title": self.title, "count": len(self.people),
                "people": [{"username": p.username, "credit_name": p.credit_name, "country": p.country,
                            "roles": list(p.headings), "records": list(p.records),
                            "remixed_via": [list(path) for path in p.remixed_via]} for p in self.people],
                "groups": [{"heading": h, "names": list(names)} for h, names in self.groups],
                "warnings": list(self.warnings)}

    def to_text(self) -> str:
        lines = [self.title, f"{len(self.people)} contributors", ""]
        for heading, names in self.groups:
            lines.append(heading.upper())
            lines += [f"  {n}" for n in names]
            lines.append("")
        return "\n".join(lines)


def _sort_key(name: str) -> tuple:
    return (name.casefold(), name)


def compute(timeline: Timeline, callout: CallOut) -> Credits:
    """Who is credited for this cut, and why; never loops on a cyclic remix graph."""
    warnings: list[str] = []
    upstream_paths: dict[str, tuple[str, ...]] = {}  # ancestor record -> first path that reached it
    used = timeline.records_used()
    queue = deque((rid, (rid,)) for rid in used)
    seen = set(used)
    while queue:
        rid, path = queue.popleft()
        rec = callout.record(rid)
        if rec is None:
            continue
        for parent in rec.remix_of:
            if parent == rid or parent in seen:
                continue
            seen.add(parent)
            if callout.record(parent) is None:
                warnings.append(f"{rid} remixes {parent}, which is not in the call-out; nobody credited for it")
                continue
            upstream_paths[parent] = path + (parent,)
            queue.append((parent, path + (parent,)))
    people: dict[str, dict] = {}

    def person(username: str) -> dict:
        key = username.casefold()
        if key not in people:
            c = callout.contributor(username)
            people[key] = {"c": c, "headings": [], "records": [], "via": []}
        return people[key]

    for rid in used:
        rec = callout.record(rid)
        for credit in rec.credits if rec else ():
            p = person(credit.username)
            heading = heading_for(credit.role)
            if heading not in p["headings"]:
                p["headings"].append(heading)
            if rid not in p["records"]:
                p["records"].append(rid)
    for rid, path in upstream_paths.items():
        for credit in callout.record(rid).credits:
            p = person(credit.username)
            if UPSTREAM not in p["headings"]:
                p["headings"].append(UPSTREAM)
            if path not in p["via"]:
                p["via"].append(path)
    order = [h for h, _ in HEADINGS]
    everyone = sorted(people.values(), key=lambda p: _sort_key(p["c"].credit_name))
    groups: dict[str, list[str]] = {}
    for p in everyone:
        for h in p["headings"]:
            groups.setdefault(h, []).append(p["c"].credit_name)
    ranked = sorted(groups, key=lambda h: (h == UPSTREAM, order.index(h) if h in order else len(order), h))
    return Credits(
        title=timeline.title,
        people=tuple(Person(p["c"].username, p["c"].credit_name, p["c"].country, tuple(p["headings"]),
                            tuple(p["records"]), tuple(p["via"])) for p in everyone),
        groups=tuple((h, tuple(groups[h])) for h in ranked),
        warnings=tuple(warnings),
    )


def write(credits: Credits, folder: Path) -> None:
    """``credits.txt`` and ``credits.json``, each written atomically."""
    write_text_atomic(folder / "credits.txt", credits.to_text())
    write_text_atomic(folder / "credits.json", json.dumps(credits.to_json(), ensure_ascii=False, indent=2))


# --- the roll -------------------------------------------------------------------------------

HEADER_H, NAME_H, GROUP_GAP, NAME_SIZE, HEADER_SIZE = 84, 62, 56, 46, 40
COMFORT_SECONDS = Fraction(3)  # add columns until every name is up at least this long, if we can
MAX_COLUMNS = 4


@dataclass(frozen=True, slots=True)
class RollLayout:
    """The roll's arithmetic: columns, content height (script px) and each name's time on screen."""

    columns: int
    content_h: int
    seconds: Fraction

    @property
    def speed(self) -> Fraction:
        """Script pixels a second: the roll enters from below and stops with its last line mid-frame."""
        return Fraction(self.content_h + text.PLAY_H // 2, 1) / self.seconds

    @property
    def name_on_screen_s(self) -> Fraction:
        """How long each name is visible (from entering at the bottom to leaving at the top)."""
        return Fraction(text.PLAY_H + NAME_H) / self.speed


def _content_height(credits: Credits, columns: int) -> int:
    h = 140  # the episode title line
    for _, names in credits.groups:
        h += HEADER_H + -(-len(names) // columns) * NAME_H + GROUP_GAP
    return h


def layout(credits: Credits, seconds: Fraction, min_name_seconds: Fraction = Fraction(3, 2)) -> RollLayout:
    """Fewest columns that keep names up comfortably; raise UserError if even the most cannot fit."""
    best = None
    for columns in range(1, MAX_COLUMNS + 1):
        best = RollLayout(columns, _content_height(credits, columns), seconds)
        if best.name_on_screen_s >= max(COMFORT_SECONDS, min_name_seconds):
            return best
    if best.name_on_screen_s < min_name_seconds:
        need = min_name_seconds * (best.content_h + text.PLAY_H // 2) / (text.PLAY_H + NAME_H)
        raise UserError(f"the credits roll names {len(credits.people)} people: at {MAX_COLUMNS} columns it needs a "
                        f"slot of at least {float(need):.0f} s to keep each name on screen "
                        f"{float(min_name_seconds):.1f} s (the spec gives {float(seconds):.0f} s)")
    return best


def roll(credits: Credits, seconds: Fraction, min_name_seconds: Fraction = Fraction(3, 2)) -> str:
    """The roll as an ASS document: headings and names scrolling up at a constant speed."""
    lay = layout(credits, seconds, min_name_seconds)
    W, H = text.PLAY_W, text.PLAY_H
    col_w = (W - 2 * text.SAFE_X) / lay.columns
    lines: list[tuple[int, float, str, str]] = []  # (content y, x, style, text)
    y = 40
    lines.append((y, W / 2, "Title", text.escape(credits.title)))
    y += 140 - 40
    for heading, names in credits.groups:
        lines.append((y, W / 2, "Head", text.escape(heading.upper())))
        y += HEADER_H
        for row_start in range(0, len(names), lay.columns):
            row = names[row_start: row_start + lay.columns]
            offset = (lay.columns - len(row)) * col_w / 2  # centre a short last row
            for k, name in enumerate(row):
                squeeze = min(100, int(100 * col_w * 0.92 / max(1, len(name) * NAME_SIZE * 0.56)))
                tag = f"\\fscx{squeeze}" if squeeze < 100 else ""
                lines.append((y, text.SAFE_X + offset + (k + 0.5) * col_w, "Name", tag + "|" + text.escape(name)))
            y += NAME_H
        y += GROUP_GAP
    v = lay.speed
    events = []
    for cy, x, style_name, body in lines:
        t_in = max(Fraction(0), Fraction(cy) / v)  # top edge reaches the bottom of the frame
        t_out = min(seconds, Fraction(cy + H + NAME_H + 20) / v)
        a, b = round(t_in * 100), round(t_out * 100)
        if b <= a:
            continue
        y0 = H + cy - v * Fraction(a, 100)
        y1 = H + cy - v * Fraction(b, 100)
        tag, _, literal = body.rpartition("|") if style_name == "Name" else ("", "", body)
        move = f"{{\\an8{tag}\\move({x:.1f},{float(y0):.1f},{x:.1f},{float(y1):.1f})}}"
        events.append(text.event(move + literal, Fraction(b, 100), style_name, Fraction(a, 100)))
    styles = [text.style("Title", 64, bold=True), text.style("Head", HEADER_SIZE, colour="&H00A0C8E8", bold=True),
              text.style("Name", NAME_SIZE)]
    return text.document(styles, events)
