"""Episode spec: YAML -> EpisodeSpec, with every problem reported as ``file:line: path: message``.

The one module that reads specs. It knows nothing of media; record references are checked
against a call-out only when one is given (``check_against``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import yaml

from render.callout.folder import KINDS, CallOut
from render.core.errors import SpecError, SpecProblem
from render.core.timebase import dropframe_frames, parse_duration

SEGMENT_TYPES = ("card", "feature", "montage", "song", "fill", "credits", "act_break")
#: what a song shows when the spec does not say: pictures, not other sounds or texts
SONG_KINDS = ("video", "animation", "photo", "illustration")
FIT_MODES = ("blur", "pad", "crop")
ORDERS = ("listed", "quality", "random")
CUT_ON = ("shots", "beats")
TRANSITION_TYPES = ("cut", "crossfade", "dip")
#: a transition's length when the spec names only its type
TRANSITION_SECONDS = {"cut": Fraction(0), "crossfade": Fraction(1, 2), "dip": Fraction(1)}
MAX_TRANSITION_SECONDS = Fraction(4)  # longer than this is a segment of its own, not a transition
_TRANSITION_TEXT = re.compile(r"^\s*([A-Za-z_-]+)(?:\s+(\S+))?\s*$")  # 'crossfade', 'crossfade 0.5s'
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

TOP_KEYS = {"title", "callout", "runtime", "segments", "fit", "seed", "description", "pool_cents", "upstream_share",
            "allow_flashes", "vars", "defaults", "deliver"}
DELIVER_TARGETS = ("network", "xdcam", "web")  # the ProRes mezzanine, the XDCAM HD422 MXF, the YouTube file
LEADER_KEYS = ("bars", "slate", "black", "countdown", "pop", "programme")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SEGMENT_KEYS = {
    "card": {"text", "subtitle", "seconds", "transition_in"},
    "feature": {"record", "max_seconds", "seconds", "start", "allow_flashes", "lower_third_seconds", "bed", "bed_db",
                "transition", "transition_in"},
    "montage": {"select", "shot_seconds", "music", "cut_on", "seconds", "allow_flashes", "lower_third_seconds", "bed",
                "bed_db", "transition", "transition_in"},
    "song": {"record", "select", "shot_seconds", "seconds", "allow_flashes", "lower_third_seconds", "transition",
             "transition_in"},
    "fill": {"select", "max_shot_seconds", "allow_flashes", "bed", "bed_db", "transition", "transition_in"},
    "credits": {"seconds", "min_name_seconds", "transition_in"},
    "act_break": {"seconds", "transition_in"},
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
class TransitionSpec:
    """A transition as written: its type and length in seconds (the planner turns them into frames)."""

    type: str = "cut"
    seconds: Fraction = Fraction(0)


CUT = TransitionSpec()


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
    start: Fraction | None = None  # feature: where in the record to start (None: the planner chooses)
    select: Select = field(default_factory=Select)
    shot_seconds: Fraction = Fraction(3)
    max_shot_seconds: Fraction = Fraction(30)
    min_name_seconds: Fraction = Fraction(3, 2)
    music: str = ""  # montage: the record whose sound plays under it
    cut_on: str = "shots"  # montage: "beats" cuts on the music's beats
    allow_flashes: bool | None = None  # None: the spec's top-level allow_flashes
    lower_third_seconds: Fraction = Fraction(4)  # attribution over feature/montage pictures; 0: none
    bed: str = ""  # a music record under the segment, ducked under speech
    bed_db: float = -10.0  # the bed's level against the (pre-levelled) programme
    transition: TransitionSpec = CUT  # between this segment's own shots
    transition_in: TransitionSpec = CUT  # from the previous segment's last shot into this one's first


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    path: Path
    title: str
    callout: Path | str  # a local folder, or an s3:// URI kept as written
    runtime_s: Fraction
    segments: tuple[SegmentSpec, ...]
    fit: str = "blur"
    seed: int = 0
    pool_cents: int | None = None  # the payout pool to split in ledger.csv/json (none: no ledger)
    upstream_share: Fraction = Fraction(1, 2)  # what a remix passes up to the records it builds on
    allow_flashes: bool = False  # photosensitive-risk flashing may be cut in (default: left out)
    segment_lines: tuple[int, ...] = ()  # where each written segment starts, those with problems included
    deliver: tuple[str, ...] = ()  # delivery targets (DELIVER_TARGETS); --deliver overrides
    leader: tuple[tuple[str, str], ...] = ()  # the mezzanine leader's part starts (LEADER_KEYS), drop-frame

    def flashes_allowed(self, seg: SegmentSpec) -> bool:
        return self.allow_flashes if seg.allow_flashes is None else seg.allow_flashes


# ---------------------------------------------------------------------------------------------
# Every field, its JSON Schema and what it means: the source of the shipped schema
# (episode_specs/remixtv-spec.schema.json) and docs/spec-reference.md.

_DURATION = {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                       {"type": "string", "pattern": r"^(\d+:)?\d+(:\d+)?(\.\d+)?$|\{\{"}],
             "description": "seconds (12, 2.5) or a clock time ('1:30', '22:00', '0:01:30')"}
_FLAG = {"type": "boolean"}
_TEXT = {"type": "string", "minLength": 1}
_RECORD = {"type": "string", "minLength": 1, "description": "a record_id of the call-out, e.g. R0042"}
_NAMES = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["string", "integer"]}}]}
# one schema for both forms ('crossfade 0.5s' and {type: crossfade, seconds: 0.5}): pattern applies to the
# text, the rest to the mapping, so an editor names the exact mistake rather than "not valid under anyOf"
_TRANSITION = {"type": ["string", "object"], "pattern": r"^\s*(cut|crossfade|dip)(\s+\d+(\.\d+)?s?)?\s*$|\{\{",
               "required": ["type"], "additionalProperties": False,
               "properties": {"type": {"enum": list(TRANSITION_TYPES)},
                              "seconds": {"anyOf": [{"type": "number", "exclusiveMinimum": 0,
                                                     "maximum": float(MAX_TRANSITION_SECONDS)},
                                                    {"type": "string"}]}}}

TOP_FIELDS: dict[str, tuple[dict, str]] = {
    "title": (_TEXT, "The episode's title: on the file, in build.json and the credits."),
    "callout": (_TEXT, "The call-out folder, relative to the spec (or an s3://bucket/prefix URI)."),
    "runtime": (_DURATION, "The programme length; the cut lands on it to the frame (fill segments absorb the rest)."),
    "segments": ({"type": "array", "minItems": 1}, "The running order (see segment fields)."),
    "fit": ({"enum": list(FIT_MODES)}, ("How non-16:9 pictures fill the frame: blur (a blurred, darkened copy of "
                                       "itself behind it; default), pad (house background) or crop.")),
    "seed": ({"type": "integer"}, "Seed for order: random selections (the same seed, the same cut)."),
    "description": ({"type": "string"}, "Free text for people; not used by the build."),
    "pool_cents": ({"type": "integer", "minimum": 0}, ("The payout pool in cents; when set, ledger.csv/json split "
                                                      "it among everyone credited.")),
    "upstream_share": ({"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "string"}]},
                       "The share of a remix's pay passed up to the records it remixes (default 1/2)."),
    "allow_flashes": (_FLAG, ("Allow photosensitive-risk flashing everywhere (default false: such excerpts are left "
                             "out, with a warning in build.json).")),
    "deliver": ({"anyOf": [{"type": "string"}, {"type": "array", "items": {"enum": list(DELIVER_TARGETS)}},
                           {"type": "object", "additionalProperties": False,
                            "properties": {"to": {"type": ["string", "array"]},
                                           "leader": {"type": "object", "additionalProperties": False,
                                                      "properties": {k: {"type": "string"} for k in LEADER_KEYS}}}}]},
                ("What a master build also delivers into deliver/: network (ProRes mezzanine with leader and M&E, "
                 "dialogue, music and effects stems), xdcam (XDCAM HD422 MXF with the same leader, M&E and stems), "
                 "web (YouTube MP4), as 'network,web', a list, or {to: [...], leader: {bars: '00:58:30;00', ...}}; "
                 "--deliver overrides it.")),
    "vars": ({"type": "object", "additionalProperties": {"type": ["string", "number", "integer"]}},
             "Variables for {{name}} anywhere in the spec's text; --var NAME=VALUE overrides them."),
    "defaults": ({"type": "object"}, ("Fields every segment of a type gets unless it says otherwise, e.g. "
                                     "{montage: {shot_seconds: 2}, all: {allow_flashes: false}}.")),
}
SEGMENT_FIELDS: dict[str, tuple[dict, str]] = {
    "id": ({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$"}, ("A short unique name (letters, digits, "
                                                                        "- and _).")),
    "type": ({"enum": list(SEGMENT_TYPES)}, "What the segment is."),
    "text": (_TEXT, "card: the words on the card."),
    "subtitle": ({"type": "string"}, "card: a smaller second line."),
    "seconds": (_DURATION, ("Length: card (default 4), act_break (2), credits (60), feature (exactly this long), "
                           "montage with music / song (default: the music's length).")),
    "record": (_RECORD, "feature: the record to play; song: the music record."),
    "max_seconds": (_DURATION, "feature: at most this long (the best excerpt is chosen)."),
    "start": ({"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]},
              ("feature: where in the record to start (default: the planner trims dead heads and picks the best "
              "excerpt on shot boundaries).")),
    "select": ({"type": "object"}, "montage, song, fill: which records to use (see select fields)."),
    "shot_seconds": (_DURATION, ("montage, song: the length of each shot (default 3); with beats, the cut falls on "
                                "the beat nearest this spacing.")),
    "max_shot_seconds": (_DURATION, "fill: the longest a fill shot may run (default 30)."),
    "min_name_seconds": (_DURATION, "credits: each name stays wholly on screen at least this long (default 1.5)."),
    "music": (_RECORD, "montage: a music record played under the montage instead of the clips' own sound."),
    "cut_on": ({"enum": list(CUT_ON)}, "montage: 'beats' cuts on the music's beats; 'shots' every shot_seconds."),
    "allow_flashes": (_FLAG, "This segment may use photosensitive-risk flashing (overrides the top-level field)."),
    "bed": (_RECORD, ("feature, montage, fill: a music record played under the segment; the shots keep their sound "
                      "and the bed ducks a further 12 dB wherever analysis hears speech in them.")),
    "bed_db": ({"type": "number", "maximum": 0}, "The bed's level against the programme (default -10 dB)."),
    "lower_third_seconds": ({"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]},
                            ("feature, montage, song: how long the lower third (the record's title and its "
                             "contributors' credit names, inside title-safe) stays up on each picture; default 4, "
                             "0 for none.")),
    "transition": (_TRANSITION, ("feature, montage, song, fill: how this segment's own shots give way to each other: "
                                 "cut (default), {type: crossfade, seconds: 0.5} or {type: dip, seconds: 1} (also "
                                 "written 'crossfade 0.5s'); without seconds a crossfade lasts 0.5 s, a dip 1 s; at "
                                 "most 4 s. Centred on the cut: it never changes a length.")),
    "transition_in": (_TRANSITION, ("How the previous segment gives way to this one (same forms as transition). "
                                    "A crossfade into or out of an act_break plays as a dip (the break stays black); "
                                    "the first segment takes none (from defaults it is ignored).")),
}
SELECT_FIELDS: dict[str, tuple[dict, str]] = {
    "kinds": (_NAMES, f"Record kinds to use: {', '.join(KINDS)}."),
    "tags": (_NAMES, "Use records with any of these tags."),
    "records": (_NAMES, "Use exactly these records, in this order."),
    "exclude_used": (_FLAG, "Skip records already used earlier in the episode (default true)."),
    "order": ({"enum": list(ORDERS)}, ("listed (call-out order), quality (analysed picture and sound quality; "
                                      "default) or random (with the spec's seed).")),
    "limit": ({"type": "integer", "minimum": 1}, "At most this many records."),
}


def json_schema() -> dict:
    """The JSON Schema of a spec, for YAML editors (completion, checking); generated from the tables above."""
    def props(fields: dict, keys) -> dict:
        return {k: {**fields[k][0], "description": fields[k][1]} for k in sorted(keys)}

    segment_variants = [{
        "if": {"properties": {"type": {"const": t}}, "required": ["type"]},
        "then": {"properties": {k: True for k in sorted(keys | {"id", "type"})}, "additionalProperties": False,
                 **({"required": ["record"]} if t in ("feature", "song") else {}),
                 **({"required": ["text"]} if t == "card" else {}),
                 **({"required": ["select"]} if t == "montage" else {})},
    } for t, keys in SEGMENT_KEYS.items()]
    select = {"type": "object", "additionalProperties": False, "properties": props(SELECT_FIELDS, SELECT_KEYS)}
    all_segment_keys = set().union(*SEGMENT_KEYS.values()) | {"id", "type"}
    segment = {"type": "object", "required": ["id", "type"],
               "properties": {**props(SEGMENT_FIELDS, all_segment_keys), "select": select}, "allOf": segment_variants}
    top = props(TOP_FIELDS, TOP_KEYS)
    top["segments"] = {**top["segments"], "items": segment}
    top["defaults"] = {**top["defaults"], "additionalProperties": False,
                       "properties": {t: {"type": "object"} for t in ("all", *SEGMENT_TYPES)}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://remixtv.example/schema/episode-spec.json", "title": "remixtv episode spec",
            "type": "object", "required": ["title", "callout", "runtime", "segments"],
            "additionalProperties": False, "properties": top}


def fields_markdown() -> str:
    """The field reference (docs/spec-reference.md), from the same tables as the schema."""
    out = ["| field | meaning |", "|---|---|"]
    out += [f"| `{k}` | {TOP_FIELDS[k][1]} |" for k in TOP_FIELDS]
    out += ["", "Segment fields (which types take which: " + "; ".join(
        f"`{t}`: {', '.join(sorted(k))}" for t, k in SEGMENT_KEYS.items()) + ")", "", "| field | meaning |", "|---|---|"]
    out += [f"| `{k}` | {SEGMENT_FIELDS[k][1]} |" for k in SEGMENT_FIELDS]
    out += ["", "Select fields", "", "| field | meaning |", "|---|---|"]
    out += [f"| `{k}` | {SELECT_FIELDS[k][1]} |" for k in SELECT_FIELDS]
    return "\n".join(out) + "\n"


#: More values than any spec has: aliases repeating aliases ("billion laughs") expand past it.
MAX_VALUES = 100_000


class _TooLarge(Exception):
    def __init__(self, line: int):
        self.line = line


class _Reader:
    """Turns a composed YAML node tree into plain values while remembering each path's line."""

    def __init__(self, path: Path, variables: dict | None = None):
        self.path = path
        self.budget = MAX_VALUES  # values left to read: an alias is read again each time it is used
        self.lines: dict[str, int] = {}
        self.problems: list[SpecProblem] = []
        self.variables = dict(variables or {})
        self.defaulted: set[str] = set()  # "segments[i].key" filled in from defaults:
        self._scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def substitute(self, text: str, line: int, where: str):
        """``{{name}}`` -> the variable's value; a scalar that is just ``{{name}}`` takes the value's type."""
        whole = _VAR.fullmatch(text.strip())
        missing = [m.group(1) for m in _VAR.finditer(text) if m.group(1) not in self.variables]
        for name in dict.fromkeys(missing):
            known = ", ".join(sorted(self.variables)) or "none"
            self.problem(line, where, f"unknown variable {{{{{name}}}}}{_suggest(name, self.variables)}; define it "
                                      f"under vars: or pass --var {name}=VALUE (defined: {known})")
        if missing:
            return text
        if whole:
            return self.variables[whole.group(1)]
        return _VAR.sub(lambda m: str(self.variables[m.group(1)]), text)

    def value(self, node: yaml.Node, where: str):
        self.budget -= 1
        if self.budget < 0:
            raise _TooLarge(node.start_mark.line + 1)
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
        if node.tag == "tag:yaml.org,2002:str":
            return self.substitute(node.value, node.start_mark.line + 1, where) if "{{" in node.value else node.value
        return self._scalars.construct_object(node)

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


def load_spec(path: Path | str, variables: dict[str, str] | None = None) -> EpisodeSpec:
    """Read and validate a spec file. Raises SpecError listing every problem found.

    ``variables`` (from ``--var NAME=VALUE``) override the spec's own ``vars:``.
    """
    spec, problems = read_spec(path, variables)
    if problems:
        raise SpecError(problems)
    return spec


def read_spec(path: Path | str, variables: dict[str, str] | None = None) -> tuple[EpisodeSpec, list[SpecProblem]]:
    """The spec as far as it reads (segments with problems left out) and every problem found, so that
    ``validate`` can check the rest against the call-out in the same pass. Raises SpecError when
    the file is not a readable YAML mapping at all.
    """
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
        raise SpecError([_yaml_problem(path, text, exc, "not valid YAML: ")]) from None
    except RecursionError:  # PyYAML's parser recurses once per level of nesting
        raise SpecError([SpecProblem(path, 1, "", "nested too deep to be a spec (lists or mappings inside each "
                                                  "other hundreds of levels down)")]) from None
    if node is None:
        raise SpecError([SpecProblem(path, 1, "", "the spec is empty; it needs title, callout, runtime, segments")])
    try:
        r.variables = {**_spec_vars(r, node), **(variables or {})}
        data = r.value(node, "")
        if isinstance(data, dict):
            data = _apply_defaults(r, data)
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_problem(path, text, exc, "")]) from None
    except (_TooLarge, RecursionError) as exc:  # recursion: an anchor that contains an alias of itself
        raise SpecError([SpecProblem(path, getattr(exc, "line", 1), "", f"the spec expands to over {MAX_VALUES:,} "
                                     "values: YAML aliases (*name) repeat anchors that repeat others (or "
                                     "themselves); write the values out")]) from None
    if not isinstance(data, dict):
        raise SpecError([SpecProblem(path, 1, "", "the spec must be a mapping with title, callout, runtime, segments")])
    spec = _build(r, data)
    return spec, r.problems


def _yaml_problem(path: Path, text: str, exc: yaml.YAMLError, prefix: str) -> SpecProblem:
    """A YAML error as one ``file:line:`` problem (PyYAML's own text spans lines and quotes the input)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(getattr(exc, "position", None), int):  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
    else:
        line = 1
    message = str(getattr(exc, "problem", None) or exc).splitlines()[0]
    return SpecProblem(path, line, "", prefix + message)


def _spec_vars(r: _Reader, node: yaml.Node) -> dict:
    """The spec's ``vars:`` mapping, read before anything else so every other field can use them."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    for k, v in node.value:
        if k.value == "vars":
            values = _Reader(r.path).value(v, "vars")
            if not isinstance(values, dict) or not all(_ID.match(str(n)) and "-" not in str(n) for n in values):
                r.problem(k.start_mark.line + 1, "vars", "must be a mapping of names (letters, digits, _) to values, "
                                                         "e.g. vars: {episode: 3}")
                return {}
            if any(isinstance(x, (dict, list)) for x in values.values()):
                r.problem(k.start_mark.line + 1, "vars", "values must be plain text or numbers")
                return {}
            return {str(n): x for n, x in values.items()}
    return {}


def _apply_defaults(r: _Reader, data: dict) -> dict:
    """Merge ``defaults: {montage: {shot_seconds: 2}, all: {allow_flashes: true}}`` under each segment's own fields."""
    defaults = data.get("defaults")
    if defaults is None:
        return data
    if not isinstance(defaults, dict):
        r.at("defaults", "must map segment types (or 'all') to fields, e.g. defaults: {montage: {shot_seconds: 2}}")
        return data
    for stype, fields in defaults.items():
        if stype != "all" and stype not in SEGMENT_TYPES:
            r.at(f"defaults.{stype}", f"not a segment type{_suggest(str(stype), SEGMENT_TYPES)}; "
                                      f"one of all, {', '.join(SEGMENT_TYPES)}")
        elif not isinstance(fields, dict):
            r.at(f"defaults.{stype}", "must be a mapping of fields, e.g. {shot_seconds: 2}")
        else:
            allowed = set().union(*SEGMENT_KEYS.values()) if stype == "all" else SEGMENT_KEYS[stype]
            for key in fields:
                if key not in allowed or key in ("id", "type"):
                    r.at(f"defaults.{stype}.{key}", f"not a field of {'any segment' if stype == 'all' else stype} "
                                                    f"segments{_suggest(str(key), allowed)}")
    segments = data.get("segments")
    if not isinstance(segments, list):
        return data
    merged = []
    for i, seg in enumerate(segments):
        if not isinstance(seg, dict):
            merged.append(seg)
            continue
        stype = seg.get("type")
        base = {k: v for k, v in (defaults.get("all") or {}).items() if k in SEGMENT_KEYS.get(stype, ())}
        base.update(defaults.get(stype) or {} if isinstance(defaults.get(stype), dict) else {})
        for key in base:
            if key not in seg:  # a field filled from defaults reports problems at the default's line
                own = defaults.get(stype) if isinstance(defaults.get(stype), dict) else {}
                origin = f"defaults.{stype}.{key}" if key in own else f"defaults.all.{key}"
                r.lines[f"segments[{i}].{key}"] = r.lines.get(origin, 1)
                for sub in ("type", "seconds"):  # a mapping's own fields too (transition.seconds)
                    if f"{origin}.{sub}" in r.lines:
                        r.lines[f"segments[{i}].{key}.{sub}"] = r.lines[f"{origin}.{sub}"]
                r.defaulted.add(f"segments[{i}].{key}")
        merged.append({**base, **seg})
    return {**data, "segments": merged}


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
        r.at("callout", "must be a folder path, relative to this spec file, or an s3://bucket/prefix URI")
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
    allow_flashes = _flag(r, data, "allow_flashes", "allow_flashes") or False
    deliver, leader = _deliver(r, data.get("deliver"))
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
    if segments and segments[0].transition_in.type != "cut" and isinstance(raw_segments[0], dict):
        # nothing comes before the first segment; a house transition from defaults simply does not apply
        if "segments[0].transition_in" in r.defaulted:
            segments[0] = replace(segments[0], transition_in=CUT)
        else:
            r.at("segments[0].transition_in", "the first segment has nothing before it to transition from; "
                                              "remove transition_in (the programme starts on a cut)")
    base = r.path.parent
    return EpisodeSpec(
        path=r.path, title=str(title),
        # an s3:// call-out stays a URI: flows.storage stages it into the cache before intake
        callout=(str(callout).strip() if str(callout).strip().lower().startswith("s3://")
                 else (base / str(callout)).resolve() if callout else base),
        runtime_s=runtime or Fraction(0), segments=tuple(segments), fit=str(fit), seed=seed,
        pool_cents=pool, upstream_share=share, allow_flashes=allow_flashes, deliver=deliver, leader=leader,
        segment_lines=tuple(r.lines.get(f"segments[{i}]", 1) for i in range(len(raw_segments))),
    )


def delivery_targets(value, where: str) -> tuple[tuple[str, ...], list[str]]:
    """Delivery targets written as ``"network,web"`` or a list, in a fixed order, and what is wrong with them."""
    items = [str(t).strip() for t in (value.split(",") if isinstance(value, str) else value or []) if str(t).strip()]
    unknown = [t for t in items if t not in DELIVER_TARGETS]
    problems = [(f"{where}: {', '.join(unknown) or 'nothing'} is not a delivery target; use one or more of "
                 f"{', '.join(DELIVER_TARGETS)}, comma-separated")] if unknown or not items else []
    return tuple(t for t in DELIVER_TARGETS if t in items), problems


def _deliver(r: _Reader, raw) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The ``deliver:`` field: targets, and the leader's part starts when given as a mapping."""
    if raw is None:
        return (), ()
    to, leader = (raw.get("to"), raw.get("leader") or {}) if isinstance(raw, dict) else (raw, {})
    if isinstance(raw, dict) and set(raw) - {"to", "leader"}:
        r.at("deliver", f"unknown field {', '.join(sorted(set(raw) - {'to', 'leader'}))}; allowed: to, leader")
    targets, problems = delivery_targets(to if isinstance(to, (str, list)) else [], "deliver")
    for p in problems:
        r.at("deliver", p.split(": ", 1)[1])
    if not isinstance(leader, dict):
        r.at("deliver.leader", f"must be a mapping of {', '.join(LEADER_KEYS)} to drop-frame timecodes")
        return targets, ()
    for k, v in leader.items():
        if k not in LEADER_KEYS:
            r.at(f"deliver.leader.{k}", f"unknown part{_suggest(str(k), set(LEADER_KEYS))}; use {', '.join(LEADER_KEYS)}")
            continue
        try:
            dropframe_frames(str(v))
        except ValueError as exc:
            r.at(f"deliver.leader.{k}", str(exc))
    return targets, tuple((k, str(v)) for k, v in leader.items() if k in LEADER_KEYS)


def _flag(r: _Reader, raw: dict, key: str, where: str) -> bool | None:
    """An optional true/false field; None when absent (or wrong, with the problem reported)."""
    if key not in raw:
        return None
    if not isinstance(raw[key], bool):
        r.at(where, "must be true or false")
        return None
    return raw[key]


def _segment(r: _Reader, raw, where: str, seen: dict[str, str]) -> SegmentSpec | None:
    if not isinstance(raw, dict):
        r.at(where, "a segment must be a mapping like {id: open, type: card, text: ...}")
        return None
    line = r.lines.get(where, 1)
    sid, stype = raw.get("id"), raw.get("type")
    ok = _segment_id(r, sid, where, seen)
    if stype not in SEGMENT_TYPES:
        msg = "required" if stype is None else f"unknown type {stype!r}{_suggest(str(stype), SEGMENT_TYPES)}"
        r.at(f"{where}.type", f"{msg}; one of {', '.join(SEGMENT_TYPES)}")
        return None
    allowed = SEGMENT_KEYS[stype] | {"id", "type"}
    for key in raw:
        if key not in allowed:
            r.at(f"{where}.{key}", f"not a field of a {stype} segment{_suggest(key, allowed)}; "
                 f"allowed: {', '.join(sorted(allowed - {'id', 'type'}))}")
    kw = _common_fields(r, raw, where, allowed)
    ok = _TYPE_FIELDS.get(stype, _no_fields)(r, raw, where, kw) and ok
    kw = {k: v for k, v in kw.items() if v is not None}
    return SegmentSpec(id=str(sid), type=stype, line=line, **kw) if ok else None


def _segment_id(r: _Reader, sid, where: str, seen: dict[str, str]) -> bool:
    """Whether ``sid`` is a well-formed id no earlier segment has (then it is remembered in ``seen``)."""
    if sid is None:
        r.at(f"{where}.id", "required (a short unique name like 'open')")
        return False
    if not isinstance(sid, str) or not _ID.match(sid):
        r.at(f"{where}.id", "use letters, digits, '-' and '_' only")
        return False
    if sid in seen:
        r.at(f"{where}.id", f"{sid!r} is already the id of {seen[sid]}")
        return False
    seen[sid] = where
    return True


def _common_fields(r: _Reader, raw: dict, where: str, allowed: set[str]) -> dict:
    """The fields several segment types share: flashes, seconds, bed, transitions, lower third."""
    kw: dict = {"allow_flashes": _flag(r, raw, "allow_flashes", f"{where}.allow_flashes")}
    if "seconds" in raw:
        kw["seconds"] = _duration(r, raw["seconds"], f"{where}.seconds")
    if "bed" in raw:
        kw["bed"] = _required_text(r, raw, where, "bed", "the record_id of the music to lay under it, e.g. R0012")
        if raw.get("music"):
            r.at(f"{where}.bed", "a montage with music: already plays that music; use one or the other")
    if "bed_db" in raw:
        value = raw["bed_db"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -60 <= value <= 0:
            r.at(f"{where}.bed_db", "must be a level in dB between -60 and 0, e.g. -10")
        else:
            kw["bed_db"] = float(value)
    for key in ("transition", "transition_in"):
        if key in raw and key in allowed:
            value = _transition(r, raw[key], f"{where}.{key}")
            if value is not None:
                kw[key] = value
    if "lower_third_seconds" in raw:
        kw["lower_third_seconds"] = _duration(r, raw["lower_third_seconds"], f"{where}.lower_third_seconds",
                                              positive=False)
    return kw


# Each segment type's own fields: read into ``kw``; False when the segment cannot be built.

def _card_fields(r: _Reader, raw: dict, where: str, kw: dict) -> bool:
    kw["text"] = _required_text(r, raw, where, "text", "the words on the card")
    if "subtitle" in raw:
        kw["subtitle"] = str(raw["subtitle"])
    return bool(kw["text"])


def _feature_fields(r: _Reader, raw: dict, where: str, kw: dict) -> bool:
    kw["record"] = _required_text(r, raw, where, "record", "the record_id to play, e.g. R0042")
    if "max_seconds" in raw:
        kw["max_seconds"] = _duration(r, raw["max_seconds"], f"{where}.max_seconds")
    if "start" in raw:
        kw["start"] = _duration(r, raw["start"], f"{where}.start", positive=False)
    return bool(kw["record"])


def _song_fields(r: _Reader, raw: dict, where: str, kw: dict) -> bool:
    kw["music"] = _required_text(r, raw, where, "record", "the record_id of the song, e.g. R0012")
    kw["record"], kw["cut_on"] = "", "beats"
    kw["select"] = _select(r, raw["select"], f"{where}.select") if "select" in raw else Select(kinds=SONG_KINDS)
    if "shot_seconds" in raw:
        kw["shot_seconds"] = _duration(r, raw["shot_seconds"], f"{where}.shot_seconds")
    return bool(kw["music"])


def _montage_fields(r: _Reader, raw: dict, where: str, kw: dict) -> bool:
    """A montage's or a fill's fields (a montage must say what to select)."""
    ok = True
    if "select" in raw:
        kw["select"] = _select(r, raw["select"], f"{where}.select")
    elif raw["type"] == "montage":
        r.at(f"{where}.select", "required: which records to cut, e.g. {kinds: [video], tags: [one], limit: 12}")
        ok = False
    if "shot_seconds" in raw:
        kw["shot_seconds"] = _duration(r, raw["shot_seconds"], f"{where}.shot_seconds")
    if "max_shot_seconds" in raw:
        kw["max_shot_seconds"] = _duration(r, raw["max_shot_seconds"], f"{where}.max_shot_seconds")
    if "music" in raw:
        kw["music"] = _required_text(r, raw, where, "music", "the record_id of the music to cut to, e.g. R0012")
    cut_on = raw.get("cut_on", "shots")
    if cut_on not in CUT_ON:
        r.at(f"{where}.cut_on", f"must be one of {', '.join(CUT_ON)}{_suggest(str(cut_on), CUT_ON)}")
    elif cut_on == "beats" and not raw.get("music"):
        r.at(f"{where}.cut_on", "cutting on beats needs music: name the record to cut to, e.g. music: R0012")
    else:
        kw["cut_on"] = cut_on
    return ok


def _credits_fields(r: _Reader, raw: dict, where: str, kw: dict) -> bool:
    if "min_name_seconds" in raw:
        value = _duration(r, raw["min_name_seconds"], f"{where}.min_name_seconds")
        if value is not None and value < Fraction(3, 2):
            r.at(f"{where}.min_name_seconds", "must be at least 1.5 (names must stay readable)")
            value = None
        kw["min_name_seconds"] = value
    return True


def _no_fields(r: _Reader, raw: dict, where: str, kw: dict) -> bool:
    return True


_TYPE_FIELDS = {"card": _card_fields, "feature": _feature_fields, "song": _song_fields,
                "montage": _montage_fields, "fill": _montage_fields, "credits": _credits_fields}


def _transition(r: _Reader, value, where: str) -> TransitionSpec | None:
    """``cut``, ``crossfade``, ``dip 1s`` or ``{type: crossfade, seconds: 0.5}`` -> TransitionSpec (None: a problem)."""
    example = "e.g. cut, 'crossfade 0.5s' or {type: crossfade, seconds: 0.5}"
    seconds_where = f"{where}.seconds"
    if isinstance(value, str):
        m = _TRANSITION_TEXT.match(value)
        if not m:
            r.at(where, f"not a transition: {value!r}; {example}")
            return None
        kind, seconds = m.group(1), m.group(2)
        seconds_where = where
    elif isinstance(value, dict):
        for key in value:
            if key not in ("type", "seconds"):
                r.at(f"{where}.{key}", f"not a field of a transition{_suggest(str(key), ('type', 'seconds'))}; "
                                       "allowed: type, seconds")
        if "type" not in value:
            r.at(where, f"needs a type: one of {', '.join(TRANSITION_TYPES)}")
            return None
        kind, seconds = value["type"], value.get("seconds")
    else:
        r.at(where, f"must be a transition, {example}")
        return None
    if kind not in TRANSITION_TYPES:
        r.at(f"{where}.type" if isinstance(value, dict) else where,
             f"unknown transition type {kind!r}{_suggest(str(kind), TRANSITION_TYPES)}; one of "
             f"{', '.join(TRANSITION_TYPES)}")
        return None
    if kind == "cut":
        if seconds is not None:
            r.at(seconds_where, "a cut has no length; remove seconds (or use crossfade or dip)")
            return None
        return CUT
    if seconds is None:
        return TransitionSpec(kind, TRANSITION_SECONDS[kind])
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds <= 0:
        r.at(seconds_where, f"must be longer than zero, e.g. {{type: {kind}, seconds: {float(TRANSITION_SECONDS[kind]):g}}}")
        return None
    length = _duration(r, seconds, seconds_where)
    if length is None:
        return None
    if length > MAX_TRANSITION_SECONDS:
        r.at(seconds_where, f"at most {MAX_TRANSITION_SECONDS} s ({float(length):g} s given): a {kind} longer than "
                            "that is a segment of its own")
        return None
    return TransitionSpec(kind, length)


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
    problems = callout_problems(spec, callout)
    if problems:
        raise SpecError(problems)


def callout_problems(spec: EpisodeSpec, callout: CallOut) -> list[SpecProblem]:
    """The records the spec names that the call-out lacks, or has without a signed release."""
    problems = []
    ids = [r.record_id for r in callout.records]
    for seg in spec.segments:
        i = _written_index(spec, seg)
        names = [(f"segments[{i}].record", seg.record)] if seg.record else []
        names += [(f"segments[{i}].{'record' if seg.type == 'song' else 'music'}", seg.music)] if seg.music else []
        names += [(f"segments[{i}].bed", seg.bed)] if seg.bed else []
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
    return problems


def tag_problems(spec: EpisodeSpec, callout: CallOut) -> list[SpecProblem]:
    """Tags a segment selects by that no record of the call-out carries (a typo, most often).

    Only ``validate`` reports them: a build goes on, as the other tags of the select may match.
    """
    tags = {t for r in callout.records for t in r.tags}
    problems = []
    for seg in spec.segments:
        i = _written_index(spec, seg)
        for tag in (t for t in seg.select.tags if t not in tags):
            close = difflib.get_close_matches(tag, sorted(tags), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(SpecProblem(spec.path, seg.line, f"segments[{i}].select.tags",
                                        f"no record in call-out {callout.id!r} is tagged {tag!r}{hint}"))
    return problems


def _written_index(spec: EpisodeSpec, seg: SegmentSpec) -> int:
    """The segment's index as written (a partly read spec leaves out the segments with problems)."""
    lines = spec.segment_lines
    return lines.index(seg.line) if seg.line in lines and lines.count(seg.line) == 1 else spec.segments.index(seg)
