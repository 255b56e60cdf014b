"""Known words for a record: an editor's ``transcripts/`` folder beside the spec, else the call-out's
``transcript`` column (inline text, or a ``.txt``, ``.srt`` or ``.vtt`` file in the call-out).

Plain text is split into words; a line starting with ``>>`` (or ``-``) is a new speaker, and each line
end is a phrase boundary (poems and lyrics keep their lines). A timed sidecar (SRT, WebVTT) is read with
pycaption; its cue times are kept as a fallback should the text not align. A sidecar that does not parse
is a warning naming its file and line, with the parser's words, and the record is captioned without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from render.callout.folder import CallOut, Record
from render.core.errors import MediaRejected
from render.deliver.captions.speech import Token
from render.intake.records import decode_text

SIDECARS = (".txt", ".srt", ".vtt")
FOLDER = "transcripts"  # beside the spec
MAX_BYTES = 2_000_000
_TURN = re.compile(r"^\s*(>>|-\s)")
_TAGS = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class Transcript:
    """A record's known words and where they came from (a file path, or ``submissions.csv:LINE``)."""

    tokens: tuple[Token, ...]
    origin: str


def _plain(text: str) -> list[Token]:
    out: list[Token] = []
    for line in text.splitlines():
        turn = bool(_TURN.match(line))
        words = _TURN.sub("", line, count=1).split() if turn else line.split()
        for n, w in enumerate(words):
            out.append(Token(w, turn=turn and n == 0, line_break=n == len(words) - 1))
    return out


def _error_line(text: str, message: str) -> int:
    """The line a parser's complaint is about: the first line holding the text it quotes (else 1)."""
    quoted = re.findall(r"'([^']+)'", message)
    for n, line in enumerate(text.splitlines(), 1):
        if any(q in line for q in quoted):
            return n
    return 1


def _timed(text: str, path: Path) -> list[Token]:
    """Tokens of an SRT or WebVTT file, each cue's words spread over the cue. Raises ValueError with
    ``path:line: why``."""
    from pycaption import CaptionReadError, SRTReader, WebVTTReader  # only for sidecars

    reader = WebVTTReader() if path.suffix.lower() == ".vtt" else SRTReader()
    try:
        captions = reader.read(text)
    except CaptionReadError as exc:
        why = " ".join(str(a) for a in exc.args) or type(exc).__name__
        raise ValueError(f"{path}:{_error_line(text, why)}: {why}") from None
    out: list[Token] = []
    for lang in captions.get_languages():
        for cue in captions.get_captions(lang):
            if cue.end < cue.start:
                raise ValueError(f"{path}:{_error_line(text, repr(cue.format_end()))}: a cue ends "
                                 f"({cue.format_end()}) before it starts ({cue.format_start()})")
            words = _plain(_TAGS.sub("", cue.get_text()))
            span = (cue.end - cue.start) / max(1, len(words))
            for n, t in enumerate(words):
                out.append(Token(t.text, t.turn, t.line_break or n == len(words) - 1,
                                 round((cue.start + span * n) / 1000), round((cue.start + span * (n + 1)) / 1000)))
        break  # one language: the record's
    return out


def read_sidecar(path: Path) -> list[Token]:
    """Tokens of a ``.txt``, ``.srt`` or ``.vtt`` file. Raises ValueError naming the file and line."""
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{path}:1: longer than {MAX_BYTES // 1_000_000} MB; not a transcript")
    try:
        text = decode_text(raw, str(path))
    except MediaRejected as exc:
        raise ValueError(f"{path}:1: {exc.reason}") from None
    return _timed(text, path) if path.suffix.lower() in (".srt", ".vtt") else _plain(text)


def folder_of(spec: Path) -> Path:
    """The editor's transcripts folder of the spec ``spec``: ``transcripts/`` beside it."""
    return Path(spec).parent / FOLDER


def is_transcript(path: Path) -> bool:
    """Whether ``path`` names a transcript (``<record_id>.txt``, ``.srt`` or ``.vtt``, not an editor's
    hidden working file)."""
    return path.suffix.lower() in SIDECARS and not path.name.startswith(".")


def _in_callout(callout: CallOut, value: str) -> Path | None:
    """The call-out file a ``transcript`` cell names, or None when the cell is inline text."""
    if "\n" in value or not value.lower().endswith(SIDECARS):
        return None
    path = (callout.root / value).resolve()
    return path if path.is_relative_to(callout.root) and path.is_file() else None


def find(record: Record, callout: CallOut, folder: Path | None) -> tuple[Transcript | None, tuple[str, ...]]:
    """The record's known words (None: none given, or unreadable) and any warnings about them.

    ``folder``: the editor's ``transcripts/`` folder (``<record_id>.txt``, ``.srt`` or ``.vtt``), which
    wins over the call-out, so a correction needs no change to the submissions."""
    candidates: list[Path] = [folder / f"{record.record_id}{ext}" for ext in SIDECARS] if folder else []
    value = record.transcript.strip()
    where = f"{callout.root / 'submissions.csv'}:{record.line}"
    if value:
        path = _in_callout(callout, value)
        if path is None and "\n" not in value and value.lower().endswith(SIDECARS):
            why = f"{where}: {record.record_id}: transcript file {value!r} is not in the call-out; captioned without it"
            return None, (why,)
        if path is not None:
            candidates.append(path)
    for path in candidates:
        if path.is_file():
            try:
                tokens = read_sidecar(path)
            except ValueError as exc:
                return None, (f"{exc} ({record.record_id}: captioned without this transcript)",)
            except OSError as exc:
                return None, (f"{path}: unreadable ({exc.strerror or exc}); {record.record_id}: captioned without it",)
            return (Transcript(tuple(tokens), str(path)), ()) if tokens else (None, ())
    if value:
        return Transcript(tuple(_plain(value)), where), ()
    return None, ()
