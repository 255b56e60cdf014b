"""A call-out folder -> CallOut: records, contributors and the remix graph, validated.

The folder is the interface with the submission site (see docs/callout-format.md):
``callout.yaml``, ``submissions.csv``, ``contributors.csv`` and ``media/``. We only read it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from render.core.errors import UserError

KINDS = ("video", "animation", "music", "voice", "photo", "illustration", "text")
SUBMISSION_COLUMNS = ("record_id", "file", "kind", "title", "contributors", "remix_of", "tags", "text", "released")
CONTRIBUTOR_COLUMNS = ("username", "credit_name", "country")
#: The role a contributor gets when the row names none, by the record's kind.
DEFAULT_ROLE = {"video": "video", "animation": "animation", "music": "music", "voice": "voice",
                "photo": "photography", "illustration": "illustration", "text": "writing"}


@dataclass(frozen=True, slots=True)
class Credit:
    username: str  # as written in the row; matched case-insensitively
    role: str


@dataclass(frozen=True, slots=True)
class Contributor:
    username: str
    credit_name: str
    country: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """One row of submissions.csv."""

    record_id: str
    file: str  # relative to the call-out folder; "" for a text record typed into the form
    kind: str
    title: str
    credits: tuple[Credit, ...]
    remix_of: tuple[str, ...]
    tags: tuple[str, ...]
    text: str
    released: bool
    line: int  # where the row starts in submissions.csv
    transcript: str = ""  # optional column: the words spoken (or sung), inline or a .txt/.srt/.vtt in the call-out


@dataclass(frozen=True)
class CallOut:
    """A parsed call-out. ``warnings`` name file and line for every row that was skipped or fixed."""

    root: Path
    id: str
    title: str
    brief: str
    opened: str
    closed: str
    records: tuple[Record, ...]
    contributors: Mapping[str, Contributor]  # key: username.casefold()
    warnings: tuple[str, ...] = ()
    _by_id: Mapping[str, Record] = field(default_factory=dict, repr=False)

    def record(self, record_id: str) -> Record | None:
        return self._by_id.get(record_id)

    def contributor(self, username: str) -> Contributor:
        """The contributor for ``username`` (any capitalisation); unknown ones are credited by username."""
        return self.contributors.get(username.casefold()) or Contributor(username, username)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(";") if p.strip())


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 ({exc.reason}); save the file as UTF-8") from None


def _rows(path: Path, required: tuple[str, ...]):
    """Yield (line, row dict) for each data row; raise UserError when the header is unusable."""
    if not path.is_file():
        raise UserError(f"{path}: missing; a call-out folder needs callout.yaml, submissions.csv, contributors.csv")
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise UserError(f"{path}:1: the file is empty; it needs a header row: {','.join(required)}") from None
    except csv.Error as exc:
        raise UserError(f"{path}:1: unreadable header ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(f"{path}:1: header lacks column(s) {', '.join(missing)}; expected {','.join(required)}")
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, None, f"malformed CSV ({exc})"
            line = reader.line_num + 1
            continue
        start, line = line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield start, None, f"has {len(cells)} fields, the header has {len(header)} (check quoting)"
            continue
        yield start, dict(zip(header, cells)), ""


def load_callout(folder: Path | str) -> CallOut:
    """Read and validate a call-out folder. Malformed rows become warnings and are skipped."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise UserError(f"{folder}: no such call-out folder")
    meta = _meta(root / "callout.yaml")
    warnings: list[str] = []
    contributors = _contributors(root / "contributors.csv", warnings)
    spath = root / "submissions.csv"
    by_id: dict[str, Record] = {}
    for line, row, problem in _rows(spath, SUBMISSION_COLUMNS):
        if row is None:
            warnings.append(f"{spath}:{line}: skipped: {problem}")
            continue
        rec = _record(row, f"{spath}:{line}", line, by_id, contributors, warnings)
        if rec is not None:
            by_id[rec.record_id] = rec
    records = list(by_id.values())
    for rec in records:
        for parent in rec.remix_of:
            if parent == rec.record_id:
                warnings.append(f"{spath}:{rec.line}: {rec.record_id} lists itself in remix_of; ignored")
            elif parent not in by_id:
                warnings.append(f"{spath}:{rec.line}: {rec.record_id} remixes {parent}, which is not in this call-out")
    return CallOut(
        root=root, id=str(meta["id"]), title=str(meta.get("title", meta["id"])), brief=str(meta.get("brief", "")),
        opened=str(meta.get("opened", "")), closed=str(meta.get("closed", "")), records=tuple(records),
        contributors=MappingProxyType(contributors), warnings=tuple(warnings), _by_id=MappingProxyType(by_id),
    )


def _meta(meta_path: Path) -> dict:
    """callout.yaml, which must name the call-out's ``id``."""
    if not meta_path.is_file():
        raise UserError(f"{meta_path}: missing; a call-out folder needs callout.yaml (id, title, brief, opened, closed)")
    try:
        meta = yaml.safe_load(_read_text(meta_path)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"{meta_path}:{mark.line + 1 if mark else 1}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(meta, dict) or not meta.get("id"):
        raise UserError(f"{meta_path}:1: id: required (a short name for the call-out)")
    return meta


def _contributors(cpath: Path, warnings: list[str]) -> dict[str, Contributor]:
    """contributors.csv by casefolded username (the first row of a username wins)."""
    contributors: dict[str, Contributor] = {}
    for line, row, problem in _rows(cpath, CONTRIBUTOR_COLUMNS):
        if row is None:
            warnings.append(f"{cpath}:{line}: skipped: {problem}")
            continue
        username = row["username"].strip()
        if not username:
            warnings.append(f"{cpath}:{line}: skipped: empty username")
            continue
        key = username.casefold()
        if key in contributors:
            warnings.append(f"{cpath}:{line}: username {username!r} listed twice; keeping the first")
            continue
        contributors[key] = Contributor(username, row["credit_name"].strip() or username, row["country"].strip())
    return contributors


def _record(row: dict[str, str], where: str, line: int, by_id: Mapping[str, Record],
            contributors: Mapping[str, Contributor], warnings: list[str]) -> Record | None:
    """One submissions.csv row as a Record, or None (with a warning saying why) when it cannot be one."""
    rid = row["record_id"].strip()
    kind = row["kind"].strip().lower()
    errors = []
    if not rid:
        errors.append("record_id is empty")
    elif rid in by_id:
        errors.append(f"record_id {rid} already used on line {by_id[rid].line}")
    if kind not in KINDS:
        errors.append(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    file = row["file"].strip()
    if not file and not (kind == "text" and row["text"].strip()):
        errors.append("file is empty (only a text record may omit it, and then text must be given)")
    credits = []
    for item in _split(row["contributors"]):
        username, _, role = item.partition(":")
        if username.strip():
            credits.append(Credit(username.strip(), role.strip().lower() or DEFAULT_ROLE.get(kind, kind)))
    if not credits:
        errors.append("contributors is empty (every record needs at least one username)")
    released = row["released"].strip().lower()
    if released not in ("yes", "no", ""):
        warnings.append(f"{where}: released {row['released']!r} is not yes/no; treated as no")
    if errors:
        warnings.append(f"{where}: skipped {rid or 'row'}: " + "; ".join(errors))
        return None
    for c in credits:
        if c.username.casefold() not in contributors:
            warnings.append(f"{where}: {rid}: contributor {c.username!r} is not in contributors.csv; credited by username")
    return Record(
        record_id=rid, file=file, kind=kind, title=row["title"].strip() or rid, credits=tuple(credits),
        remix_of=_split(row["remix_of"]), tags=tuple(t.lower() for t in _split(row["tags"])),
        text=row["text"], released=released == "yes", line=line, transcript=row.get("transcript", ""),
    )
