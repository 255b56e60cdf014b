"""Words with times in a record's sound: forced alignment of a known text, or a recognised draft.

pocketsphinx (5.x, its bundled US-English acoustic model, dictionary and language model) does both,
offline. Alignment of a known text is fast (tens of times realtime) and exact to 10 ms; recognition
is slow (about realtime on one core) and a draft, never FCC-accurate: it is marked unreviewed, and an
editor corrects it by supplying the transcript (see ``transcripts``).

Results are cached by the record's content hash plus the transcript's hash, so a rebuild aligns only
a record whose sound or words changed. pocketsphinx holds Python's GIL while it decodes, so threads
cannot share the work: ``prepare`` decodes the records not yet cached in worker processes, one a core
(``python -m render.deliver.captions.speech``), run as every other command is (``core.ffmpeg.run``:
stopped with the build, timed out, memory-limited).
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render.core import ffmpeg
from render.core.cache import Cache, key_of
from render.core.errors import FfmpegError
from render.intake.records import Source

SPEECH_VERSION = 2  # 2: drafts capitalise I and each utterance's first word
SAMPLE_RATE_HZ = 16_000  # the acoustic model's rate
FRAME_MS = 10            # pocketsphinx's frame
MIN_ALIGNED_SHARE = 0.5  # a transcript aligning fewer of its words than this does not fit its sound
PAUSE_MS = 300           # a silence this long between words is a phrase boundary
WORD_MS = 300            # an unaligned word at either end of the aligned ones is given this long
#: At most 10 000 active HMMs a frame (default 30 000): recognition a third faster on the corpus's JFK clip,
#: with the same words or better; 3 000 was faster again but lost words.
RECOGNISER = {"maxhmmpf": 10_000}
_ALIGN_TRIES = 12        # re-alignments from where the last one stopped, before giving up on the rest


@dataclass(frozen=True, slots=True)
class Word:
    """One displayed word with its time in the record's sound (milliseconds from its start).

    ``text`` keeps the transcript's spelling and punctuation; ``aligned`` is False for a word whose time
    was interpolated between its neighbours (not in the dictionary, or the alignment lost it);
    ``turn`` marks a change of speaker before it; ``line_break`` a line end in the transcript."""

    text: str
    start_ms: int
    end_ms: int
    aligned: bool = True
    turn: bool = False
    line_break: bool = False

    def to_json(self) -> list:
        return [self.text, self.start_ms, self.end_ms, int(self.aligned), int(self.turn), int(self.line_break)]

    @classmethod
    def from_json(cls, d: list) -> Word:
        return cls(d[0], int(d[1]), int(d[2]), bool(d[3]), bool(d[4]), bool(d[5]))


@dataclass(frozen=True, slots=True)
class Token:
    """A word of a known text before alignment, with a time when the text came with times (a sidecar)."""

    text: str
    turn: bool = False
    line_break: bool = False
    start_ms: int | None = None
    end_ms: int | None = None


_decoders = threading.local()  # loading the models takes a while: one decoder per thread and use, reused


def _decoder(use: str):
    """The thread's decoder for ``align`` (no language model: alignment needs only the dictionary) or
    ``recognise`` (with the bundled US-English language model)."""
    dec = getattr(_decoders, use, None)
    if dec is None:
        import pocketsphinx  # a heavy import, only where speech is decoded

        dec = pocketsphinx.Decoder(loglevel="FATAL", **({"lm": None} if use == "align" else RECOGNISER))
        setattr(_decoders, use, dec)
    return dec


def pcm16k(source: Source, timeout_s: float = 600) -> bytes:
    """A record's sound as 16 kHz mono 16-bit PCM (the acoustic model's input)."""
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "error",
            *ffmpeg.untrusted_input(source.link, source.demuxer), "-map", f"0:{source.media.audio.index}",
            "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE_HZ), "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1"]
    return ffmpeg.run(argv, timeout_s=timeout_s).stdout


_KEEP = re.compile(r"[^a-z0-9']+")


def dictionary_form(text: str) -> str:
    """A displayed word as the dictionary spells it: lower case, no punctuation ('' when nothing is left)."""
    return _KEEP.sub("", text.lower().replace("’", "'")).strip("'")


def _align_once(pcm: bytes, words: list[str]) -> list[tuple[int, int]]:
    """Times (ms) of the prefix of ``words`` that pocketsphinx aligned to ``pcm``; it may stop early."""
    dec = _decoder("align")
    try:
        dec.set_align_text(" ".join(words))
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
    except RuntimeError:
        return []
    if dec.hyp() is None:
        return []
    return [(s.start_frame * FRAME_MS, (s.end_frame + 1) * FRAME_MS) for s in dec.seg()
            if s.word not in ("<s>", "</s>", "<sil>") and not s.word.startswith("[")]


def align(pcm: bytes, tokens: list[Token]) -> list[Word]:
    """Force-align ``tokens`` to the sound; words it cannot place are interpolated (``aligned`` False).

    pocketsphinx's aligner returns the prefix it could follow; it is started again from where that
    prefix ended with the words left, and a word it cannot start at all is skipped, a few times over,
    so one mumbled or mis-spelled word does not lose the rest of the text."""
    dec = _decoder("align")
    keys = [dictionary_form(t.text) for t in tokens]
    known = [i for i, k in enumerate(keys) if k and dec.lookup_word(k) is not None]
    times: dict[int, tuple[int, int]] = {}
    at_ms, todo, tries = 0, known, 0
    while todo and tries < _ALIGN_TRIES:
        tries += 1
        got = _align_once(pcm[at_ms * SAMPLE_RATE_HZ // 1000 * 2:], [keys[i] for i in todo])
        # the aligner ends on the best path's last word; that last word is often forced onto trailing
        # noise when the text ran out of sound, so a stopped run keeps all but its last word
        keep = got if len(got) == len(todo) else got[:-1]
        for i, (a, b) in zip(todo, keep):
            times[i] = (at_ms + a, at_ms + b)
        if keep:
            at_ms = times[todo[len(keep) - 1]][1]
            todo = todo[len(keep):]
        else:
            todo = todo[1:]  # this word cannot be followed from here: leave it to interpolation
    total_ms = len(pcm) * 1000 // (2 * SAMPLE_RATE_HZ)
    return _interpolate(tokens, times, total_ms)


def _interpolate(tokens: list[Token], times: dict[int, tuple[int, int]], total_ms: int) -> list[Word]:
    """Words with the aligned times; the others spread between their aligned neighbours, at most
    ``WORD_MS`` each next to a single neighbour (a lost first word sits just before the second),
    or, with nothing aligned, at the times the text itself gave."""
    out: list[Word] = []
    i = 0
    while i < len(tokens):
        if i in times:
            t = tokens[i]
            out.append(Word(t.text, *times[i], True, t.turn, t.line_break))
            i += 1
            continue
        j = i
        while j < len(tokens) and j not in times:
            j += 1
        if not times:
            out += [Word(t.text, t.start_ms or 0, max(t.start_ms or 0, t.end_ms or 0), False, t.turn, t.line_break)
                    for t in tokens[i:j]]
            i = j
            continue
        lo = out[-1].end_ms if out else None
        hi = times[j][0] if j < len(tokens) else None
        if lo is None:
            lo = max(0, hi - WORD_MS * (j - i))
        if hi is None:
            hi = min(total_ms, lo + WORD_MS * (j - i))
        hi = max(hi, lo)
        step = Fraction(hi - lo, j - i)
        out += [Word(t.text, round(lo + step * n), round(lo + step * (n + 1)), False, t.turn, t.line_break)
                for n, t in enumerate(tokens[i:j])]
        i = j
    return out


def recognise(pcm: bytes) -> list[Word]:
    """A draft of the words spoken, by pocketsphinx's recogniser, utterance by utterance (its voice
    activity detector splits the sound at pauses, which become the draft's phrase boundaries)."""
    from pocketsphinx import Segmenter  # heavy, and only here

    dec = _decoder("recognise")
    out: list[Word] = []
    for utt in Segmenter(sample_rate=SAMPLE_RATE_HZ).segment(_Reader(pcm)):
        dec.start_utt()
        dec.process_raw(utt.pcm, full_utt=True)
        dec.end_utt()
        base = round(utt.start_time * 1000)
        said = [s for s in dec.seg() if s.word not in ("<s>", "</s>", "<sil>") and not s.word.startswith(("[", "+"))]
        for n, s in enumerate(said):
            out.append(Word(_draft_spelling(s.word, n == 0), base + s.start_frame * FRAME_MS,
                            base + (s.end_frame + 1) * FRAME_MS, True, False, n == len(said) - 1))
    return out


def _draft_spelling(word: str, first: bool) -> str:
    """A dictionary word as a caption shows it: no alternate-pronunciation mark (``the(2)``), ``I`` and
    ``I'm`` capitalised, and the first word of an utterance too."""
    word = re.sub(r"\(\d+\)$", "", word)
    if word == "i" or word.startswith("i'"):
        return "I" + word[1:]
    return word[:1].upper() + word[1:] if first else word


class _Reader:
    """``bytes`` as the file-like stream the Segmenter reads."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def read(self, n: int) -> bytes:
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk


@dataclass(frozen=True, slots=True)
class Heard:
    """What the sound of one record says: its words, and how they were found.

    ``how``: ``transcript`` (a known text, aligned), ``timed`` (a sidecar's own times: the text did not
    align), ``recognition`` (an unreviewed draft). ``aligned_share``: of a known text's words, the share
    alignment placed."""

    words: tuple[Word, ...]
    how: str
    aligned_share: float = 1.0


def transcript_key(tokens: list[Token]) -> str:
    return key_of([(t.text, t.turn, t.line_break, t.start_ms, t.end_ms) for t in tokens])


def _key(source: Source, tokens: list[Token] | None) -> str:
    kind = "align" if tokens else "recognise"
    return key_of("speech", SPEECH_VERSION, kind, source.content_hash, transcript_key(tokens) if tokens else RECOGNISER)


def heard(source: Source, tokens: list[Token] | None, cache: Cache) -> Heard:
    """The words of a record's sound: ``tokens`` aligned (cached by content + transcript; a timed sidecar
    that does not align keeps its own times), or, with no tokens, a recognised draft (cached by content).
    Raises FfmpegError when the sound cannot be decoded."""
    key = _key(source, tokens)
    found = cache.read_json("captions", key)
    if found is not None:
        return Heard(tuple(Word.from_json(w) for w in found["words"]), found["how"], found["share"])
    pcm = pcm16k(source, timeout_s=120 + 4 * float(source.duration_s or 60))
    if tokens:
        words = align(pcm, tokens)
        share = round(sum(w.aligned for w in words) / len(words), 3) if words else 0.0
        if share < MIN_ALIGNED_SHARE and all(t.start_ms is not None for t in tokens):
            result = Heard(tuple(_interpolate(tokens, {}, 0)), "timed", share)  # a sidecar's own times
        else:
            result = Heard(tuple(words), "transcript", share)
    else:
        result = Heard(tuple(recognise(pcm)), "recognition", 0.0)
    cache.write_json("captions", key, {"words": [w.to_json() for w in result.words], "how": result.how,
                                       "share": result.aligned_share})
    return result



Job = tuple[Source, "list[Token] | None"]


def prepare(jobs: Sequence[Job], cache: Cache, workers: int | None = None) -> None:
    """Decode into the cache every job (a record, and its tokens or None to recognise) not there yet,
    in up to ``workers`` processes side by side (default: one a core), longest records first. A job
    that fails is left for ``heard`` to fail on and report; so is any job of a worker that failed."""
    keyed = {_key(s, list(t) if t else None): (s, tuple(t) if t else None) for s, t in jobs}
    todo = [job for key, job in keyed.items() if cache.read_json("captions", key) is None]
    if not todo:
        return
    n = max(1, min(len(todo), workers or len(os.sched_getaffinity(0))))
    if n == 1:
        _decode_all(todo, cache)
        return
    batches: list[list] = [[] for _ in range(n)]
    load = [0.0] * n
    for job in sorted(todo, key=lambda j: -float(j[0].duration_s or 60)):
        i = load.index(min(load))
        batches[i].append(job)
        load[i] += float(job[0].duration_s or 60)
    with tempfile.TemporaryDirectory(prefix="remixtv-speech-") as tmp, ThreadPoolExecutor(n) as pool:
        runs = []
        for i, batch in enumerate(batches):
            path = Path(tmp) / f"jobs-{i}.pickle"
            path.write_bytes(pickle.dumps((str(cache.root), batch)))
            argv = [sys.executable, "-m", __name__, str(path)]
            # recognition runs at about a third of realtime a core: five times the sound is a hung worker
            runs.append(pool.submit(ffmpeg.run, argv, timeout_s=120 + 5 * load[i]))
        for run in runs:
            try:
                run.result()
            except FfmpegError:
                pass  # what it did not cache, ``heard`` decodes here, and reports if it fails again


def _decode_all(jobs: Sequence[tuple[Source, tuple[Token, ...] | None]], cache: Cache) -> None:
    for source, tokens in jobs:
        try:
            heard(source, list(tokens) if tokens else None, cache)
        except (FfmpegError, RuntimeError):
            pass  # reported by the build's own ``heard`` of this record


if __name__ == "__main__":  # a worker of ``prepare``: decode a pickled batch of jobs into the cache
    root, batch = pickle.loads(Path(sys.argv[1]).read_bytes())
    _decode_all(batch, Cache(Path(root)))
