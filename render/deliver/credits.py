"""Credits from the cut itself: every contributor of every record the Timeline uses, plus,
transitively, of every record those remix. Written as text, JSON and CSV, and typeset as the roll.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render.callout import remix
from render.callout.folder import CallOut
from render.core import text
from render.core.cache import write_text_atomic
from render.core.errors import UserError
from render.edit.timeline import Timeline

SCHEMA = "remixtv.credits/2"
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
_ORDER = {heading: i for i, (heading, _) in enumerate(HEADINGS)}
CSV_COLUMNS = ("username", "credit_name", "country", "heading", "records", "remixed_via")


def heading_for(role: str) -> str:
    """The roll heading for a role word; unknown roles become their own title-cased heading."""
    role = " ".join(role.split())
    heading = _HEADING_OF.get(role.casefold(), role.title() or "Contributors")
    # a contributor cannot claim the upstream heading by typing it as a role
    return "Contributors" if heading.casefold() == UPSTREAM.casefold() else heading


@functools.lru_cache(maxsize=1)
def _collator():
    """pyuca's Unicode Collation Algorithm (DUCET), or None when it is not installed."""
    try:
        import pyuca
    except ImportError:  # pragma: no cover - the lock file installs it
        return None
    return pyuca.Collator()


def collation_key(name: str) -> tuple:
    """Sort key for names as a reader expects: Unicode collation, not code-point order.

    With pyuca: the UCA key of the NFD form (so composed and decomposed accents sort alike).
    Without it: base letters first (NFKD, marks removed, casefolded), then accents, then case.
    The name itself is the last key so the order is total and deterministic.
    """
    nfd = unicodedata.normalize("NFD", name)
    collator = _collator()
    if collator is not None:
        return (tuple(collator.sort_key(nfd)), nfd, name)
    nfkd = unicodedata.normalize("NFKD", name).casefold()
    base = "".join(c for c in nfkd if not unicodedata.combining(c))
    return ((), base, nfkd, name)


def heading_key(heading: str) -> tuple:
    """Known headings in roll order, then other roles by name, and the upstream heading last."""
    return (heading == UPSTREAM, _ORDER.get(heading, len(_ORDER)), collation_key(heading))


@dataclass(frozen=True, slots=True)
class Person:
    """One credited person. ``by_heading`` says which records earn each heading."""

    username: str
    credit_name: str
    country: str
    headings: tuple[str, ...]  # roll headings this person appears under, in roll order
    records: tuple[str, ...]  # records in the cut they contributed to directly
    remixed_via: tuple[tuple[str, ...], ...]  # for upstream credit: path used record -> ... -> their record
    by_heading: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (heading, records behind it)


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
                            "by_heading": {h: list(rs) for h, rs in p.by_heading},
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

    def to_csv(self) -> str:
        """One row per person per heading, in roll order; paths are ``A>B>C``, lists ``;``-separated."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(CSV_COLUMNS)
        for heading, _ in self.groups:
            for p in self.people:
                records = dict(p.by_heading).get(heading)
                if records is None:
                    continue
                via = [">".join(path) for path in p.remixed_via if path[-1] in records] if heading == UPSTREAM else []
                w.writerow([p.username, p.credit_name, p.country, heading, ";".join(records), ";".join(via)])
        return out.getvalue()


def remix_lineage(used: Iterable[str], callout: CallOut) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Every record the ``used`` records remix, transitively, with the shortest path that reaches it
    (``remix.lineage``), and warnings: used records the call-out lacks, self-references, ids missing
    from the call-out and cycles (each record is credited once, so none of them loops)."""
    used = tuple(dict.fromkeys(used))
    paths = remix.lineage(used, callout)
    warnings: list[str] = []
    for rid in [*used, *paths]:  # the order the walk visited them
        if callout.record(rid) is None:
            warnings.append(f"{rid} is in the cut but not in the call-out; nobody credited for it")
        for parent in remix.broken_edges(rid, callout):
            if parent == rid:
                warnings.append(f"{rid} lists itself in remix_of; ignored")
            else:
                warnings.append(f"{rid} remixes {parent}, which is not in the call-out; nobody credited for it")
    warnings += [f"remix cycle {' -> '.join(c)}; each record is credited once" for c in remix.cycles(used, callout)]
    return paths, warnings


def compute(timeline: Timeline, callout: CallOut) -> Credits:
    """Who is credited for this cut, and why; never loops on a cyclic remix graph."""
    used = timeline.records_used()
    upstream_paths, warnings = remix_lineage(used, callout)
    people: dict[str, dict] = {}  # username.casefold() -> what we know so far

    def person(username: str) -> dict:
        key = username.casefold()
        if key not in people:
            people[key] = {"c": callout.contributor(username), "headings": {}, "via": []}
        return people[key]

    for rid in used:
        rec = callout.record(rid)
        for credit in rec.credits if rec else ():
            person(credit.username)["headings"].setdefault(heading_for(credit.role), {})[rid] = None
    for rid, path in upstream_paths.items():
        for credit in callout.record(rid).credits:
            p = person(credit.username)
            p["headings"].setdefault(UPSTREAM, {})[rid] = None
            if path not in p["via"]:
                p["via"].append(path)
    everyone = sorted(people.items(), key=lambda kv: (collation_key(kv[1]["c"].credit_name), kv[0]))
    groups: dict[str, list[str]] = {}
    result = []
    for _, p in everyone:
        headings = sorted(p["headings"], key=heading_key)
        for h in headings:
            groups.setdefault(h, []).append(p["c"].credit_name)
        direct = dict.fromkeys(r for h in headings if h != UPSTREAM for r in p["headings"][h])
        result.append(Person(p["c"].username, p["c"].credit_name, p["c"].country, tuple(headings), tuple(direct),
                             tuple(p["via"]), tuple((h, tuple(p["headings"][h])) for h in headings)))
    return Credits(
        title=timeline.title,
        people=tuple(result),
        groups=tuple((h, tuple(groups[h])) for h in sorted(groups, key=heading_key)),
        warnings=tuple(warnings),
    )


def write(credits: Credits, folder: Path) -> None:
    """``credits.txt``, ``credits.json`` and ``credits.csv``, each written atomically."""
    write_text_atomic(folder / "credits.txt", credits.to_text())
    write_text_atomic(folder / "credits.json", json.dumps(credits.to_json(), ensure_ascii=False, indent=2))
    write_text_atomic(folder / "credits.csv", credits.to_csv())


# --- the roll -------------------------------------------------------------------------------
#
# Geometry is in the 1920x1080 script space. The roll enters from below (the frame starts
# empty), scrolls up at a constant speed and stops with its last row centred in the frame,
# holding there to the end. The speed is chosen so that EVERY row, the first and the last
# included, is wholly inside the frame for the same time, ``name_on_screen_s``: a middle row
# crosses the frame in (H - NAME_H) / speed, and the hold gives the last rows exactly what the
# rest of that crossing would have. So the travel that sets the speed is "until the last row's
# top would reach the top of the frame": last_row_y + H.

TITLE_Y, TITLE_H, HEADER_H, NAME_H, GROUP_GAP = 40, 140, 84, 62, 56
TITLE_SIZE, HEADER_SIZE, NAME_SIZE = 64, 40, 46
COMFORT_SECONDS = Fraction(3)  # add columns until every name is up at least this long, if we can
MAX_COLUMNS = 4
MIN_SQUEEZE = 50  # percent: narrower than this a long name gets a smaller size instead


@dataclass(frozen=True, slots=True)
class RollLine:
    """One piece of text in the roll: its top at content ``y`` (0 = the roll's top), centred on ``x``."""

    y: int
    x: Fraction
    style: str  # Title, Head or Name
    text: str


@dataclass(frozen=True, slots=True)
class RollLayout:
    """The roll's arithmetic: columns, where each line sits, and each name's time on screen."""

    columns: int
    content_h: int
    last_row_y: int  # content y of the last row's top
    seconds: Fraction
    lines: tuple[RollLine, ...] = ()

    @property
    def speed(self) -> Fraction:
        """Script pixels a second while scrolling."""
        return Fraction(self.last_row_y + text.PLAY_H) / self.seconds

    @property
    def stop_y(self) -> Fraction:
        """Screen y where the last row's top comes to rest: the row centred in the frame."""
        return Fraction(text.PLAY_H - NAME_H, 2)

    @property
    def scroll_s(self) -> Fraction:
        """When the scroll stops (the last row reaches ``stop_y``); the rest of the slot holds."""
        return (text.PLAY_H + self.last_row_y - self.stop_y) / self.speed

    @property
    def name_on_screen_s(self) -> Fraction:
        """How long every row is wholly inside the frame (the least over all rows)."""
        return Fraction(text.PLAY_H - NAME_H) / self.speed

    def screen_y(self, content_y: int | Fraction, t: Fraction) -> Fraction:
        """Screen y (script px) of content y at time ``t`` seconds into the roll."""
        return text.PLAY_H + content_y - self.speed * min(max(Fraction(t), Fraction(0)), self.scroll_s)

    def fully_visible(self, content_y: int | Fraction, height: int = NAME_H) -> tuple[Fraction, Fraction]:
        """(from, to) seconds during which a line of ``height`` at ``content_y`` is wholly in the frame."""
        start = (content_y + height) / self.speed
        leaves = (text.PLAY_H + content_y) / self.speed  # its top reaches the frame's top
        return start, (self.seconds if leaves >= self.scroll_s else leaves)


def _rows(credits: Credits, columns: int) -> tuple[list[RollLine], int, int]:
    """Lines of the roll at ``columns`` name columns, the content height and the last row's y."""
    W = text.PLAY_W
    col_w = column_width(columns)
    lines = [RollLine(TITLE_Y, Fraction(W, 2), "Title", credits.title)]
    y, last = TITLE_H, TITLE_Y
    for heading, names in credits.groups:
        lines.append(RollLine(y, Fraction(W, 2), "Head", heading.upper()))
        last = y
        y += HEADER_H
        for start in range(0, len(names), columns):
            row = names[start: start + columns]
            offset = (columns - len(row)) * col_w / 2  # centre a short last row
            for k, name in enumerate(row):
                lines.append(RollLine(y, text.SAFE_X + offset + (k + Fraction(1, 2)) * col_w, "Name", name))
            last = y
            y += NAME_H
        y += GROUP_GAP
    return lines, y, last


def column_width(columns: int) -> Fraction:
    return Fraction(text.PLAY_W - 2 * text.SAFE_X, columns)


def layout(credits: Credits, seconds: Fraction, min_name_seconds: Fraction = Fraction(3, 2)) -> RollLayout:
    """Fewest columns that keep names up comfortably (else the most readable layout);
    raise UserError naming the slot needed if even the most columns cannot keep the floor."""
    seconds, min_name_seconds = Fraction(seconds), Fraction(min_name_seconds)
    if seconds <= 0:
        raise UserError(f"the credits slot is {float(seconds):.1f} s; it needs a positive length")
    best = None
    for columns in range(1, MAX_COLUMNS + 1):
        lines, content_h, last = _rows(credits, columns)
        lay = RollLayout(columns, content_h, last, seconds, tuple(lines))
        if lay.name_on_screen_s >= max(COMFORT_SECONDS, min_name_seconds):
            return lay
        if best is None or lay.name_on_screen_s > best.name_on_screen_s:
            best = lay
    if best.name_on_screen_s < min_name_seconds:
        need = math.ceil(min_name_seconds * (best.last_row_y + text.PLAY_H) / (text.PLAY_H - NAME_H))
        raise UserError(f"the credits roll names {len(credits.people)} people: at {best.columns} columns it needs a "
                        f"slot of at least {need} s to keep each name on screen "
                        f"{float(min_name_seconds):.1f} s (the spec gives {float(seconds):.1f} s)")
    return best


def _fit(words: str, width: Fraction, size: int, bold: bool = False) -> str:
    """Override tags that keep a long line inside ``width``: squeeze it, then shrink it too."""
    natural = text.estimate_width(words, size, bold)
    if natural <= width * Fraction(23, 25):
        return ""
    scale = width * Fraction(23, 25) / natural
    if scale * 100 >= MIN_SQUEEZE:
        return f"\\fscx{math.floor(100 * scale)}"
    return f"\\fscx{MIN_SQUEEZE}\\fs{math.floor(size * scale * 100 / MIN_SQUEEZE)}"


def roll(credits: Credits, seconds: Fraction, min_name_seconds: Fraction = Fraction(3, 2)) -> str:
    """The roll as an ASS document: headings and names scrolling up at a constant speed, then holding."""
    lay = layout(credits, seconds, min_name_seconds)
    H = text.PLAY_H
    v, scroll_s, col_w = lay.speed, lay.scroll_s, column_width(lay.columns)
    events = []
    for line in lay.lines:
        # the event spans from the line's top reaching the frame's bottom until its bottom
        # leaves the top (or the slot ends), in whole centiseconds as ASS requires
        a = max(0, math.floor(Fraction(line.y) / v * 100))
        leaves = Fraction(H + line.y + NAME_H + 20) / v
        b = math.ceil(min(lay.seconds, leaves if leaves < scroll_s else lay.seconds) * 100)
        if b <= a:
            continue
        t0 = Fraction(a, 100)
        y0 = lay.screen_y(line.y, t0)
        if Fraction(b, 100) <= scroll_s:
            y1, move_ms = lay.screen_y(line.y, Fraction(b, 100)), ""
        else:  # moves until the scroll stops, then holds
            y1, move_ms = lay.screen_y(line.y, scroll_s), f",0,{round((scroll_s - t0) * 1000)}"
        fit = (_fit(line.text, col_w, NAME_SIZE) if line.style == "Name" else
               _fit(line.text, column_width(1), TITLE_SIZE if line.style == "Title" else HEADER_SIZE, bold=True))
        tags = f"{{\\an8\\q2{fit}\\move({float(line.x):.1f},{float(y0):.2f},{float(line.x):.1f},{float(y1):.2f}{move_ms})}}"
        events.append(text.event(tags + text.escape(line.text), Fraction(b, 100), line.style, t0))
    styles = [text.style("Title", TITLE_SIZE, bold=True, encoding=-1),
              text.style("Head", HEADER_SIZE, colour="&H00A0C8E8", bold=True, encoding=-1),
              text.style("Name", NAME_SIZE, encoding=-1)]
    return text.document(styles, events)
