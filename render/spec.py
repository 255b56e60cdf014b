"""Episode spec: YAML -> EpisodeSpec, with every problem reported as ``file:line: path: message``.

The one module that reads specs. It knows nothing of media; record references are checked
against a call-out only when one is given (``check_against``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import yaml

from .callout import KINDS, CallOut
from .errors import SpecError, SpecProblem
from .timebase import parse_duration

SEGMENT_TYPES = ("card", "feature", "montage", "fill", "credits", "act_break")
FIT_MODES = ("blur", "pad", "crop")
ORDERS = ("listed", "quality", "random")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

TOP_KEYS = {"title", "callout", "runtime", "segments", "fit", "seed", "description", "pool_cents", "upstream_share"}
SEGMENT_KEYS = {
    "card": {"text", "subtitle", "seconds"},
    "feature": {"record", "max_seconds", "seconds", "start"},
    "montage": {"select", "shot_seconds"},
    "fill": {"select", "max_shot_seconds"},
    "credits": {"seconds", "min_name_seconds"},
    "act_break": {"seconds"},
}
SELECT_KEYS = {"kinds", "tags", "records", "exclude_used", "order", "limit"}


@dataclass(frozen=True, slots=True)
class Select:
    """Which records a montage or fill may use."""

    kinds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    records: tuple[str, ...] = ()
    exclude_used: bool = True
    order: str = "quality"
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """One segment as written. Lengths are in seconds (exact); the planner turns them into frames."""

    id: str
    type: str
    line: int
    text: str = ""
    subtitle: str = ""
    seconds: Fraction | None = None
    record: str = ""
    max_seconds: Fraction | None = None
    start: Fraction = Fraction(0)
    select: Select = field(default_factory=Select)
    shot_seconds: Fraction = Fraction(3)
    max_shot_seconds: Fraction = Fraction(30)
    min_name_seconds: Fraction = Fraction(3, 2)


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    path: Path
    title: str
    callout: Path
    runtime_s: Fraction
    segments: tuple[SegmentSpec, ...]
    fit: str = "blur"
    seed: int = 0
    pool_cents: int | None = None  # the payout pool to split in ledger.csv/json (none: no ledger)
    upstream_share: Fraction = Fraction(1, 2)  # what a remix passes up to the records it builds on

    def line_of(self, segment_id: str) -> int:
        return next((s.line for s in self.segments if s.id == segment_id), 1)


class _Reader:
    """Turns a composed YAML node tree into plain values while remembering each path's line."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: dict[str, int] = {}
        self.problems: list[SpecProblem] = []
        self._scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def value(self, node: yaml.Node, where: str):
        self.lines[where] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = str(k.value)
                sub = f"{where}.{key}" if where else key
                if key in out:
                    self.problem(k.start_mark.line + 1, sub, "given twice")
                out[key] = self.value(v, sub)
                self.lines.setdefault(sub, k.start_mark.line + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(node.value)]
        return node.value if node.tag == "tag:yaml.org,2002:str" else self._scalars.construct_object(node)

    def problem(self, line: int, where: str, message: str) -> None:
        self.problems.append(SpecProblem(self.path, line, where, message))

    def at(self, where: str, message: str) -> None:
        probe = where
        while probe and probe not in self.lines:
            probe = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
        self.problem(self.lines.get(probe, 1), where, message)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_spec(path: Path | str) -> EpisodeSpec:
    """Read and validate a spec file. Raises SpecError listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError([SpecProblem(path, 1, "", "no such spec file")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([SpecProblem(path, 1, "", f"not UTF-8 text ({exc.reason})")]) from None
    r = _Reader(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        msg = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        raise SpecError([SpecProblem(path, mark.line + 1 if mark else 1, "", msg)]) from None
    if node is None:
        raise SpecError([SpecProblem(path, 1, "", "the spec is empty; it needs title, callout, runtime, segments")])
    try:
        data = r.value(node, "")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SpecError([SpecProblem(path, mark.line + 1 if mark else 1, "", str(exc))]) from None
    if not isinstance(data, dict):
        raise SpecError([SpecProblem(path, 1, "", "the spec must be a mapping with title, callout, runtime, segments")])
    spec = _build(r, data)
    if r.problems:
        raise SpecError(r.problems)
    return spec


def _duration(r: _Reader, value, where: str, *, positive: bool = True) -> Fraction | None:
    try:
        d = parse_duration(value)
    except (ValueError, TypeError) as exc:
        r.at(where, str(exc))
        return None
    if positive and d <= 0:
        r.at(where, "must be longer than zero")
        return None
    return d


def _str_list(r: _Reader, value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        r.at(where, "must be a list of names, e.g. [one, two]")
        return ()
    return tuple(str(v) for v in value)


def _build(r: _Reader, data: dict) -> EpisodeSpec:
    for key in data:
        if key not in TOP_KEYS:
            r.at(key, f"unknown field{_suggest(key, TOP_KEYS)}; allowed: {', '.join(sorted(TOP_KEYS))}")
    for key in ("title", "callout", "runtime", "segments"):
        if key not in data:
            r.problem(1, key, "required")
    title = data.get("title", "")
    if "title" in data and (not isinstance(title, str) or not title.strip()):
        r.at("title", "must be a non-empty text")
    callout = data.get("callout", "")
    if "callout" in data and (not isinstance(callout, str) or not callout.strip()):
        r.at("callout", "must be a folder path, relative to this spec file")
    runtime = _duration(r, data["runtime"], "runtime") if "runtime" in data else None
    fit = data.get("fit", "blur")
    if fit not in FIT_MODES:
        r.at("fit", f"must be one of {', '.join(FIT_MODES)}{_suggest(str(fit), FIT_MODES)}")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        r.at("seed", "must be a whole number")
        seed = 0
    pool = data.get("pool_cents")
    if pool is not None and (not isinstance(pool, int) or isinstance(pool, bool) or pool < 0):
        r.at("pool_cents", "must be a whole number of cents, 0 or more (e.g. 2500000 for $25,000)")
        pool = None
    share = Fraction(1, 2)
    if "upstream_share" in data:
        try:
            share = Fraction(str(data["upstream_share"]))
            if not 0 <= share <= 1:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            r.at("upstream_share", "must be a fraction between 0 and 1, like 0.5 or 1/2")
            share = Fraction(1, 2)
    segments = []
    raw_segments = data.get("segments", [])
    if "segments" in data and (not isinstance(raw_segments, list) or not raw_segments):
        r.at("segments", "must be a non-empty list of segments")
        raw_segments = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(raw_segments):
        seg = _segment(r, raw, f"segments[{i}]", seen)
        if seg:
            segments.append(seg)
    base = r.path.parent
    return EpisodeSpec(
        path=r.path, title=str(title), callout=(base / str(callout)).resolve() if callout else base,
        runtime_s=runtime or Fraction(0), segments=tuple(segments), fit=str(fit), seed=seed,
        pool_cents=pool, upstream_share=share,
    )


def _segment(r: _Reader, raw, where: str, seen: dict[str, str]) -> SegmentSpec | None:
    if not isinstance(raw, dict):
        r.at(where, "a segment must be a mapping like {id: open, type: card, text: ...}")
        return None
    line = r.lines.get(where, 1)
    sid, stype = raw.get("id"), raw.get("type")
    ok = True
    if sid is None:
        r.at(f"{where}.id", "required (a short unique name like 'open')")
        ok = False
    elif not isinstance(sid, str) or not _ID.match(sid):
        r.at(f"{where}.id", "use letters, digits, '-' and '_' only")
        ok = False
    elif sid in seen:
        r.at(f"{where}.id", f"{sid!r} is already the id of {seen[sid]}")
        ok = False
    else:
        seen[sid] = where
    if stype not in SEGMENT_TYPES:
        msg = "required" if stype is None else f"unknown type {stype!r}{_suggest(str(stype), SEGMENT_TYPES)}"
        r.at(f"{where}.type", f"{msg}; one of {', '.join(SEGMENT_TYPES)}")
        return None
    allowed = SEGMENT_KEYS[stype] | {"id", "type"}
    for key in raw:
        if key not in allowed:
            r.at(f"{where}.{key}", f"not a field of a {stype} segment{_suggest(key, allowed)}; "
                 f"allowed: {', '.join(sorted(allowed - {'id', 'type'}))}")
    kw: dict = {}
    if "seconds" in raw:
        kw["seconds"] = _duration(r, raw["seconds"], f"{where}.seconds")
    if stype == "card":
        kw["text"] = _required_text(r, raw, where, "text", "the words on the card")
        ok = ok and bool(kw["text"])
        if "subtitle" in raw:
            kw["subtitle"] = str(raw["subtitle"])
    elif stype == "feature":
        kw["record"] = _required_text(r, raw, where, "record", "the record_id to play, e.g. R0042")
        ok = ok and bool(kw["record"])
        if "max_seconds" in raw:
            kw["max_seconds"] = _duration(r, raw["max_seconds"], f"{where}.max_seconds")
        if "start" in raw:
            kw["start"] = _duration(r, raw["start"], f"{where}.start", positive=False) or Fraction(0)
    elif stype in ("montage", "fill"):
        if "select" in raw:
            kw["select"] = _select(r, raw["select"], f"{where}.select")
        elif stype == "montage":
            r.at(f"{where}.select", "required: which records to cut, e.g. {kinds: [video], tags: [one], limit: 12}")
            ok = False
        if "shot_seconds" in raw:
            kw["shot_seconds"] = _duration(r, raw["shot_seconds"], f"{where}.shot_seconds")
        if "max_shot_seconds" in raw:
            kw["max_shot_seconds"] = _duration(r, raw["max_shot_seconds"], f"{where}.max_shot_seconds")
    elif stype == "credits" and "min_name_seconds" in raw:
        value = _duration(r, raw["min_name_seconds"], f"{where}.min_name_seconds")
        if value is not None and value < Fraction(3, 2):
            r.at(f"{where}.min_name_seconds", "must be at least 1.5 (names must stay readable)")
            value = None
        kw["min_name_seconds"] = value
    kw = {k: v for k, v in kw.items() if v is not None}
    return SegmentSpec(id=str(sid), type=stype, line=line, **kw) if ok else None


def _required_text(r: _Reader, raw: dict, where: str, field_name: str, what: str) -> str:
    """A required scalar field as text; "" (and a problem reported) when missing or blank."""
    value = raw.get(field_name)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        r.at(f"{where}.{field_name}", f"required: {what}")
        return ""
    return str(value)


def _select(r: _Reader, raw, where: str) -> Select:
    if not isinstance(raw, dict):
        r.at(where, "must be a mapping like {kinds: [video], tags: [one], limit: 12}")
        return Select()
    for key in raw:
        if key not in SELECT_KEYS:
            r.at(f"{where}.{key}", f"unknown field{_suggest(key, SELECT_KEYS)}; allowed: {', '.join(sorted(SELECT_KEYS))}")
    kinds = _str_list(r, raw.get("kinds", []), f"{where}.kinds")
    for i, k in enumerate(kinds):
        if k not in KINDS:
            r.at(f"{where}.kinds[{i}]", f"unknown kind {k!r}{_suggest(k, KINDS)}; one of {', '.join(KINDS)}")
    order = raw.get("order", "quality")
    if order not in ORDERS:
        r.at(f"{where}.order", f"must be one of {', '.join(ORDERS)}")
        order = "quality"
    limit = raw.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        r.at(f"{where}.limit", "must be a whole number of at least 1")
        limit = None
    exclude = raw.get("exclude_used", True)
    if not isinstance(exclude, bool):
        r.at(f"{where}.exclude_used", "must be true or false")
        exclude = True
    return Select(kinds=kinds, tags=tuple(t.lower() for t in _str_list(r, raw.get("tags", []), f"{where}.tags")),
                  records=_str_list(r, raw.get("records", []), f"{where}.records"),
                  exclude_used=exclude, order=order, limit=limit)


def check_against(spec: EpisodeSpec, callout: CallOut) -> None:
    """Check every record the spec names exists in the call-out and is released; raise SpecError."""
    problems = []
    ids = [r.record_id for r in callout.records]
    for i, seg in enumerate(spec.segments):
        names = [(f"segments[{i}].record", seg.record)] if seg.record else []
        names += [(f"segments[{i}].select.records", rid) for rid in seg.select.records]
        for where, rid in names:
            rec = callout.record(rid)
            if rec is None:
                close = difflib.get_close_matches(rid, ids, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(SpecProblem(spec.path, seg.line, where,
                                            f"no record {rid} in call-out {callout.id!r}{hint}"))
            elif not rec.released:
                problems.append(SpecProblem(spec.path, seg.line, where,
                                            f"record {rid} has no signed release (submissions.csv line {rec.line}); "
                                            "it can never appear in a cut"))
    if problems:
        raise SpecError(problems)
