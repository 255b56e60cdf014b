"""The Timeline and the records' words -> caption cues in programme frames (CEA-608 pop-on layout).

Timing follows the cut: a record is heard where the Timeline plays its sound (a video or sound shot,
from its in point for its length, or a bed that replaces a segment's sound), and a word is captioned
when the middle of it falls inside what is heard, so a trim or a cut mid-sentence cuts the captions
with it. A crossfade plays both shots for a moment, but each word belongs to the one shot whose own
frames it falls in, so nothing is captioned twice. A bed mixed under the shots' sound is music under
a voice, never captioned as speech: it gets a music caption only where nobody speaks for 2 s or more.

Layout (CEA-608, as broadcasters ask): at most 2 rows of 32 characters; a caption breaks at a change
of speaker (``>>``), a cut, a pause or a sentence end when it has enough words, and lines break at
phrase boundaries; each caption stays at least 1 s and long enough to read at 20 characters a second
where the speech leaves room; captions rise to the top rows while a lower third is on screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

from render.core.timebase import to_frames
from render.deliver.captions.speech import PAUSE_MS, Heard
from render.edit.timeline import SOUND_KINDS, Timeline

ROW_CHARS = 32
ROWS = 2
MIN_SECONDS = Fraction(1)
READING_CPS = 20
LINGER_SECONDS = Fraction(3, 2)   # a caption stays this long past its last word, room allowing
HOLD_MS = 1000                    # a pause this long always ends a caption
MUSIC_GAP_SECONDS = Fraction(2)   # a bed under voices gets a music caption in pauses this long
NOTE = "♪"
TURN = ">> "
_PHRASE_END = (",", ";", ":", ".", "?", "!", "—", "–")
_SENTENCE_END = (".", "?", "!")


@dataclass(frozen=True, slots=True)
class Cue:
    """One pop-on caption: programme frames [start_frame, end_frame), its rows, where it sits.

    ``how``: ``transcript``, ``timed``, ``recognition`` (an unreviewed draft) or ``music``."""

    start_frame: int
    end_frame: int
    lines: tuple[str, ...]
    top: bool
    how: str
    record_id: str
    speech_frames: int = 0  # from its first word's onset to its last word's end

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(frozen=True, slots=True)
class SoundAt:
    """Where the Timeline plays a record's sound: programme frames [start, end), ``source_in_s`` at ``start``.
    ``under``: a bed mixed under the shots' own sound."""

    record_id: str
    start: int
    end: int
    source_in_s: Fraction
    under: bool = False


def sound_at(timeline: Timeline) -> list[SoundAt]:
    """Every stretch of the programme where a record's own sound plays, in programme order."""
    out: list[SoundAt] = []
    for seg in timeline.segments:
        bed = seg.bed
        if bed is not None and bed.mix == "replace":
            out.append(SoundAt(bed.record_id, seg.start_frame, seg.end_frame, bed.source_in_s))
            continue
        for shot, at in zip(seg.shots, seg.shot_starts()):
            if shot.record_id and shot.kind in SOUND_KINDS:
                out.append(SoundAt(shot.record_id, at, at + shot.frames, shot.source_in_s))
        if bed is not None:
            out.append(SoundAt(bed.record_id, seg.start_frame, seg.end_frame, bed.source_in_s, under=True))
    return out


@dataclass(frozen=True, slots=True)
class _Placed:
    text: str
    start: int
    end: int
    turn: bool
    boundary: bool   # a phrase ends after this word
    sentence: bool   # a sentence ends after this word
    hold: bool = False  # the speaker stops for a second or more after it


def _placed(where: SoundAt, heard: Heard, rate: Fraction) -> list[_Placed]:
    """The record's words that fall in what is heard, in programme frames."""
    first_ms = Fraction(where.source_in_s) * 1000
    last_ms = first_ms + Fraction(where.end - where.start) / rate * 1000
    out: list[_Placed] = []
    words = heard.words
    for i, w in enumerate(words):
        if not first_ms <= Fraction(w.start_ms + w.end_ms, 2) < last_ms:
            continue
        a = where.start + to_frames((w.start_ms - first_ms) / 1000, rate)
        b = where.start + to_frames((w.end_ms - first_ms) / 1000, rate)
        pause_ms = words[i + 1].start_ms - w.end_ms if i + 1 < len(words) else 0
        out.append(_Placed(w.text, max(a, where.start), min(max(b, a + 1), where.end), w.turn,
                           w.line_break or pause_ms >= PAUSE_MS or w.text.endswith(_PHRASE_END),
                           w.text.endswith(_SENTENCE_END), pause_ms >= HOLD_MS))
    return out


def fit_rows(words: list[str], first: str = "") -> tuple[str, ...] | None:
    """``words`` (after ``first``, e.g. ``>> ``) in at most 2 rows of 32 characters, broken after the
    phrase boundary nearest the middle (words ending in punctuation), else as evenly as possible;
    None when they do not fit."""
    one = first + " ".join(words)
    if len(one) <= ROW_CHARS:
        return (one,)
    best, best_score = None, None
    for k in range(1, len(words)):
        top, bottom = first + " ".join(words[:k]), " ".join(words[k:])
        if len(top) > ROW_CHARS or len(bottom) > ROW_CHARS:
            continue
        score = (not words[k - 1].endswith(_PHRASE_END), abs(len(top) - len(bottom)))
        if best_score is None or score < best_score:
            best, best_score = (top, bottom), score
    return best


def _chunks(placed: list[_Placed], prefix: str) -> list[list[_Placed]]:
    """Words grouped into captions: as many as fit, ended early at a sentence end or a phrase
    boundary once the caption is more than half full, and always before a pause of a second (a pop-on
    caption shows all its words at once: words after a pause would be read before they are said);
    moved back to the last phrase boundary when a caption overflows."""
    groups: list[list[_Placed]] = []
    cur: list[_Placed] = []

    def fits(ws: list[_Placed]) -> bool:
        lead = (TURN if ws[0].turn else "") + prefix
        return fit_rows([w.text for w in ws], lead) is not None

    for w in placed:
        if cur and (w.turn or not fits(cur + [w])):
            cut = next((i + 1 for i in range(len(cur) - 1, 0, -1) if cur[i].boundary), len(cur))
            if w.turn or sum(len(x.text) + 1 for x in cur[:cut]) < ROW_CHARS:
                cut = len(cur)  # a boundary this early would leave the caption mostly empty
            groups.append(cur[:cut])
            cur = cur[cut:]
        cur.append(w)
        size = sum(len(x.text) + 1 for x in cur)
        if w.hold or w.sentence and size > ROW_CHARS or w.boundary and size > ROW_CHARS * 3 // 2:
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def _label_ranges(timeline: Timeline) -> list[tuple[int, int]]:
    return [(at, at + shot.label_frames) for seg in timeline.segments
            for shot, at in zip(seg.shots, seg.shot_starts()) if shot.label_frames]


def _merged_short(cues: list[Cue], rate: Fraction) -> list[Cue]:
    """A caption the next one would cut off under 1 s (a word or two before a cut or a quick reply)
    joins the next when both are the same record's speech and fit one caption's rows together: it
    still appears on its first word, and stays up for both."""
    out: list[Cue] = []
    for c in sorted(cues, key=lambda c: c.start_frame):
        last = out[-1] if out else None
        if (last is not None and last.how != "music" and last.how == c.how and last.record_id == c.record_id
                and c.start_frame - last.start_frame < to_frames(MIN_SECONDS, rate) and not c.text.startswith(">>")):
            rows = fit_rows(last.text.split() + c.text.split())
            if rows is not None:
                out[-1] = replace(last, end_frame=max(last.end_frame, c.end_frame), lines=rows, top=last.top or c.top,
                                  speech_frames=c.start_frame + c.speech_frames - last.start_frame)
                continue
        out.append(c)
    return out


def _timed(cues: list[Cue], timeline: Timeline) -> list[Cue]:
    """Ends: at least 1 s and reading time (20 characters a second), lingering past the last word,
    never over the next caption or past the programme. Words come before a music caption: one that
    would cut a speech caption under 1 s starts later (while it keeps 1 s itself)."""
    rate, out = timeline.rate, []
    cues = _merged_short(cues, rate)
    least = to_frames(MIN_SECONDS, rate)
    for i, c in enumerate(cues):
        nxt = cues[i + 1] if i + 1 < len(cues) else None
        if (nxt is not None and c.how != "music" and nxt.how == "music"
                and nxt.start_frame < c.start_frame + least <= nxt.end_frame - least):
            cues[i + 1] = nxt = replace(nxt, start_frame=c.start_frame + least)
        limit = nxt.start_frame if nxt is not None else timeline.frames
        want = max(c.end_frame, c.start_frame + to_frames(max(MIN_SECONDS, Fraction(len(c.text), READING_CPS)), rate))
        if c.how != "music":
            want = max(want, min(c.end_frame + to_frames(LINGER_SECONDS, rate), c.start_frame + 6 * round(rate)))
        out.append(replace(c, end_frame=max(c.start_frame + 1, min(want, limit))))
    return out


def _raised(cue: Cue, labels: list[tuple[int, int]]) -> Cue:
    return replace(cue, top=any(a < cue.end_frame and cue.start_frame < b for a, b in labels))


def _music_cue(where: SoundAt, start: int, end: int, title: str) -> Cue:
    rows = fit_rows(f"{NOTE} {title} {NOTE}".split())
    rows = rows or fit_rows(f"{NOTE} {title[:ROW_CHARS * 2 - 8]}... {NOTE}".split())
    return Cue(start, end, rows or (f"{NOTE}{NOTE}",), False, "music", where.record_id)


def pauses(covered: list[tuple[int, int]], start: int, end: int, least: int) -> list[tuple[int, int]]:
    """Stretches of [start, end) of at least ``least`` frames that no range in ``covered`` covers."""
    out, at = [], start
    for a, b in sorted(covered):
        if b <= at or a >= end:
            continue
        if a - at >= least:
            out.append((at, a))
        at = max(at, b)
    if end - at >= least:
        out.append((at, end))
    return out


def cues(timeline: Timeline, heard: Mapping[str, Heard], music: Mapping[str, str],
         sung: frozenset[str] = frozenset()) -> tuple[Cue, ...]:
    """The programme's captions: ``heard`` records' words laid out where the Timeline plays them,
    ``music`` records (id -> title) as ``♪ title ♪``; ``sung`` records' words (lyrics) carry ``♪``."""
    rate, raw, previous = timeline.rate, [], None
    stretches = sound_at(timeline)
    for where in stretches:
        if where.under or where.record_id not in heard:
            if not where.under and where.record_id in music:
                raw.append(_music_cue(where, where.start, where.end, music[where.record_id]))
            continue
        placed = _placed(where, heard[where.record_id], rate)
        if placed and previous is not None and previous != where.record_id:
            placed[0] = replace(placed[0], turn=True)  # another voice: a change of speaker
        previous = where.record_id if placed else previous
        prefix = f"{NOTE} " if where.record_id in sung else ""
        for group in _chunks(placed, prefix):
            lead = (TURN if group[0].turn else "") + prefix
            rows = fit_rows([w.text for w in group], lead) or (lead + " ".join(w.text for w in group)[:ROW_CHARS],)
            raw.append(Cue(group[0].start, group[-1].end, rows, False, heard[where.record_id].how, where.record_id,
                           group[-1].end - group[0].start))
    laid = _timed(raw, timeline)
    for where in stretches:  # music under voices: captioned only where the voices pause
        if where.under and where.record_id in music:
            laid += [_music_cue(where, a, b, music[where.record_id])
                     for a, b in pauses([(c.start_frame, c.end_frame) for c in laid], where.start, where.end,
                                         to_frames(MUSIC_GAP_SECONDS, rate))]
    labels = _label_ranges(timeline)
    return tuple(_raised(c, labels) for c in sorted(laid, key=lambda c: c.start_frame))
