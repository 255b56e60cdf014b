"""Caption files beside the episode (SCC for broadcast, SRT and WebVTT for the web) and their QC (the
join puts the SRT into the episode as its subtitle track: ``master.programme.join``).

pycaption writes all three. Its SCC writer (``drop_frame=True``) writes CEA-608 pop-on captions with
drop-frame timecode and starts loading each caption early by the time its code words take to send, so
it appears on its frame; it places a caption by its layout's vertical origin (row 1 at 5 %). Two
things are done here, once: times are handed to it in whole microseconds rounded *up* (it floors
microseconds to frames, and a time rounded down lands a frame early), and text is reduced to the
CEA-608 character set (``to_608``: it writes any other character as a pound sign).

The deliverables carry the same files (``Written``): the SCC as the mezzanine's ``c608`` track
(``scc_clock`` puts it on the mezzanine's clock), the SRT as the web file's ``mov_text`` track.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render.core.cache import write_text_atomic
from render.core.timebase import dropframe_frames
from render.deliver.captions.layout import MIN_SECONDS, READING_CPS, ROW_CHARS, ROWS, Cue, pauses
from render.edit.timeline import Timeline

PROGRAMME_START = "00:00:00;00"
_TO_608 = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": "--", "–": "-", "…": "...",
                         "\u00a0": " "})


def to_608(text: str) -> str:
    """``text`` in CEA-608's characters: typographic quotes, dashes and ellipses as their ASCII forms, any
    other character 608 cannot show left out (pycaption would write a pound sign in its place)."""
    from pycaption.scc.constants import CHARACTER_TO_CODE, SPECIAL_OR_EXTENDED_CHAR_TO_CODE

    text = text.translate(_TO_608)
    return " ".join("".join(ch for ch in text if ch in CHARACTER_TO_CODE or ch in SPECIAL_OR_EXTENDED_CHAR_TO_CODE)
                    .split())


def _microseconds(frame: int, rate: Fraction) -> int:
    return math.ceil(Fraction(frame) / rate * 1_000_000)


def caption_set(cues: Sequence[Cue], rate: Fraction, offset_frames: int = 0, for_608: bool = False):
    """The cues as a pycaption CaptionSet (times from ``offset_frames``); ``for_608``: CEA-608 characters."""
    from pycaption import Caption, CaptionList, CaptionNode, CaptionSet  # only where captions are written
    from pycaption.geometry import (
        Alignment,
        HorizontalAlignmentEnum,
        Layout,
        Point,
        Size,
        UnitEnum,
        VerticalAlignmentEnum,
    )

    centre = Alignment(HorizontalAlignmentEnum.CENTER, VerticalAlignmentEnum.TOP)
    top = Layout(origin=Point(Size(10, UnitEnum.PERCENT), Size(5, UnitEnum.PERCENT)), alignment=centre,
                 webvtt_positioning="line:5%")
    bottom = Layout(alignment=centre, webvtt_positioning="")
    out = []
    for c in cues:
        nodes = []
        for n, line in enumerate(c.lines):
            if n:
                nodes.append(CaptionNode.create_break())
            nodes.append(CaptionNode.create_text(to_608(line) if for_608 else line))
        out.append(Caption(_microseconds(c.start_frame + offset_frames, rate),
                           _microseconds(c.end_frame + offset_frames, rate), nodes,
                           layout_info=top if c.top else bottom))
    return CaptionSet({"en": CaptionList(out)})


def write(cues: Sequence[Cue], rate: Fraction, folder: Path, start_timecode: str = PROGRAMME_START) -> dict[str, Path]:
    """captions.scc (CEA-608 pop-on, drop-frame, from ``start_timecode``), captions.srt and captions.vtt."""
    from pycaption import SCCWriter, SRTWriter, WebVTTWriter

    offset = dropframe_frames(start_timecode)
    files = {"scc": folder / "captions.scc", "srt": folder / "captions.srt", "vtt": folder / "captions.vtt"}
    texts = {"scc": SCCWriter(drop_frame=True).write(caption_set(cues, rate, offset, for_608=True)),
             "srt": SRTWriter().write(caption_set(cues, rate)),
             "vtt": WebVTTWriter().write(caption_set(cues, rate))}
    for kind, path in files.items():
        write_text_atomic(path, texts[kind])
    return files


@dataclass(frozen=True, slots=True)
class Written:
    """The caption files beside an episode, as a delivery carries them: the SCC (its programme's first
    frame at ``start_timecode``), the SRT and the WebVTT (programme time), holding ``captions`` captions."""

    scc: Path
    srt: Path
    vtt: Path
    start_timecode: str
    captions: int


def scc_clock(start_timecode: str, programme_frame: int, rate: Fraction) -> str:
    """The ``setts`` bitstream filter that puts the packets ffmpeg reads from an SCC (its programme at
    ``start_timecode``) on a file's clock whose programme starts at frame ``programme_frame``.

    ffmpeg 5.1's SCC reader stamps a line ``HH:MM:SS;FF`` at (HH*3600 + MM*60 + SS) s + FF*33 ms,
    ignoring the dropped labels, so its times run up to 2 frames early within each ten minutes. The
    filter reads the label back out of that stamp and turns it into its exact frame. The last packet
    gets one frame's duration: the MOV muxer leaves out a last packet without one, and in an SCC that
    is the clear of the last caption."""
    frame_ms = Fraction(1000) / rate
    label = ("(floor(TS/1000)*30+mod(TS\\,1000)/33"
             "-2*(floor(TS/60000)-floor(TS/600000)))")  # the label's drop-frame count, as dropframe_frames
    at = programme_frame - dropframe_frames(start_timecode)
    return (f"setts=ts=round(({label}{at:+d})*{frame_ms.numerator}/{frame_ms.denominator})"
            f":duration=if(DURATION\\,DURATION\\,{math.ceil(frame_ms)})")


def _check(name: str, limit, findings: list[dict]) -> dict:
    return {"check": name, "limit": limit, "verdict": "fail" if findings else "pass", "count": len(findings),
            "findings": findings[:20]}


def qc(cues: Sequence[Cue], timeline: Timeline, speech: Sequence[tuple[int, int]]) -> list[dict]:
    """Caption checks, each with its limit: characters per row, rows, minimum time on screen, reading
    rate, speech no caption covers for over 2 s, and a speech caption with no speech under it
    (``speech``: programme frame ranges where the analysis heard speech)."""
    rate = timeline.rate

    def at(c: Cue) -> dict:
        return {"start": round(float(Fraction(c.start_frame) / rate), 3), "text": c.text}

    seconds = [Fraction(c.end_frame - c.start_frame) / rate for c in cues]
    covered = [(c.start_frame, c.end_frame) for c in cues]
    uncovered = [{"start": round(float(a / rate), 3), "seconds": round(float((b - a) / rate), 2)}
                 for x, y in speech for a, b in pauses(covered, x, y, int(2 * rate) + 1)]
    return [
        _check("row_characters", ROW_CHARS, [at(c) for c in cues if any(len(r) > ROW_CHARS for r in c.lines)]),
        _check("rows", ROWS, [at(c) for c in cues if len(c.lines) > ROWS]),
        _check("minimum_seconds", float(MIN_SECONDS), [at(c) | {"seconds": round(float(s), 2)}
                                                       for c, s in zip(cues, seconds) if s < MIN_SECONDS]),
        _check("reading_cps", READING_CPS, [at(c) | {"cps": round(len(c.text) / float(s), 1)}
                                            for c, s in zip(cues, seconds) if len(c.text) > READING_CPS * s]),
        _check("uncaptioned_speech_seconds", 2, uncovered),
        _check("caption_without_speech", 0, [at(c) for c in cues if c.how != "music" and not any(
            a < c.end_frame and c.start_frame < b for a, b in speech)] if speech else []),
    ]
