"""Typesetting: every word on screen is an ASS document rendered by libass inside ffmpeg.

Why libass rather than drawtext: ffmpeg 5.1's drawtext has no text shaping or bidi, so
Arabic, Hebrew, Devanagari and combining marks come out wrong; libass shapes with HarfBuzz,
orders with FriBidi and falls back through fontconfig for CJK. Documents are written in a
fixed 1920x1080 script space and libass scales them to any profile, so one layout serves
preview and master alike.
"""

from __future__ import annotations

import unicodedata
from fractions import Fraction
from pathlib import Path

PLAY_W, PLAY_H = 1920, 1080
FONTS_DIR = Path(__file__).resolve().parents[2] / "assets" / "fonts"
FONT = "DejaVu Sans"
SAFE_X, SAFE_Y = PLAY_W // 10, PLAY_H // 10  # title-safe: 10% in from each edge


def escape(text: str) -> str:
    """Literal text for an ASS event (no override tags, no line breaks)."""
    return (text.replace("\\", "\u29f5").replace("{", "\\{").replace("}", "\\}")
            .replace("\r", " ").replace("\n", " ").strip())


def paragraphs(text: str) -> str:
    """Literal multi-line text: paragraphs kept as ASS hard line breaks."""
    lines = [escape(line) for line in text.replace("\r\n", "\n").split("\n")]
    return "\\N".join(lines).strip("\\N")


def ass_time(seconds: Fraction | float) -> str:
    cs = max(0, round(Fraction(seconds) * 100))
    h, rem = divmod(cs, 360000)
    m, rem = divmod(rem, 6000)
    s, cs = divmod(rem, 100)
    return f"{h}:{m:02d}:{s:02d}.{cs:02d}"


def style(name: str, size: int, *, bold: bool = False, align: int = 5, colour: str = "&H00FFFFFF",
          outline: float = 0, margin_v: int = SAFE_Y, encoding: int = 1) -> str:
    """An ASS style line (``align`` is numpad-style: 5 centre, 2 bottom centre, 8 top centre).

    ``encoding=-1`` makes libass pick each line's base direction from its text (FriBidi's
    auto), so a right-to-left name with digits or Latin in it reads in the right order.
    """
    return (f"Style: {name},{FONT},{size},{colour},&H000000FF,&H00000000,&H80000000,{-1 if bold else 0},0,0,0,"
            f"100,100,0,0,1,{outline},0,{align},{SAFE_X},{SAFE_X},{margin_v},{encoding}")


def estimate_width(text: str, size: int, bold: bool = False) -> Fraction:
    """A generous estimate of ``text``'s rendered width in script px at font ``size``.

    No font metrics here (libass picks fallback fonts at render time), so per character:
    combining marks and format controls take no room, wide/fullwidth (CJK) and emoji a full
    em, capitals 0.72 em and everything else 0.62 em (DejaVu Sans averages under that); bold
    adds a tenth.
    """
    em = Fraction(0)
    for c in unicodedata.normalize("NFC", text):
        cat = unicodedata.category(c)
        if cat in ("Mn", "Me", "Cf") or unicodedata.combining(c):
            continue
        if unicodedata.east_asian_width(c) in ("W", "F") or (cat == "So" and ord(c) >= 0x2600):
            em += 1
        elif cat == "Lu":
            em += Fraction(72, 100)
        else:
            em += Fraction(62, 100)
    return em * size * (Fraction(11, 10) if bold else 1)


def document(styles: list[str], events: list[str]) -> str:
    """A complete ASS script in the 1920x1080 script space."""
    return "\n".join([
        "[Script Info]", "ScriptType: v4.00+", f"PlayResX: {PLAY_W}", f"PlayResY: {PLAY_H}",
        "WrapStyle: 0", "ScaledBorderAndShadow: yes", "",
        "[V4+ Styles]",
        ("Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
         "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
         "Alignment, MarginL, MarginR, MarginV, Encoding"),
        *styles, "",
        "[Events]", "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
        *events, "",
    ])


def event(text: str, end_s: Fraction | float, style_name: str = "Default", start_s: Fraction | float = 0,
          layer: int = 0) -> str:
    return f"Dialogue: {layer},{ass_time(start_s)},{ass_time(end_s)},{style_name},,0,0,0,,{text}"


def card(title: str, subtitle: str, seconds: Fraction) -> str:
    """A title card: big centred title, optional smaller line under it, with a gentle fade."""
    fade = "{\\fad(300,300)}"
    events = [event(fade + escape(title), seconds, "Title")]
    if subtitle:
        events.append(event(fade + escape(subtitle), seconds, "Sub"))
    return document([style("Title", 96, bold=True), style("Sub", 48, align=2, colour="&H00C8D2DC",
                                                         margin_v=SAFE_Y + 140)], events)


def text_card(body: str, byline: str, title: str, seconds: Fraction) -> str:
    """A text record set as a card: the words, sized to their length, and who wrote them."""
    n = len(body)
    size = 64 if n <= 120 else 52 if n <= 320 else 42 if n <= 640 else 34
    if n > 1400:
        body = body[:1400].rsplit(" ", 1)[0] + " …"
    fade = "{\\fad(300,300)}"
    events = [event(fade + paragraphs(body), seconds, "Body")]
    if byline or title:
        events.append(event(fade + escape(" — ".join(x for x in (title, byline) if x)), seconds, "By"))
    return document([style("Body", size, align=5), style("By", 36, align=2, colour="&H00A0C8E8")], events)


def audio_label(title: str, byline: str, seconds: Fraction) -> str:
    """Title and credit names over an audio record's waveform."""
    return document(
        [style("Title", 72, bold=True, align=8), style("By", 44, align=8, colour="&H00A0C8E8", margin_v=SAFE_Y + 110)],
        [event(escape(title), seconds, "Title"), event(escape(byline), seconds, "By")],
    )


def lower_third(title: str, byline: str, seconds: Fraction) -> str:
    """Attribution over a picture: the record's title and its contributors' credit names, bottom
    left inside title-safe, on a translucent band so it reads over any picture; fades in and out."""
    fade = "{\\fad(250,250)}"
    band = "&H60000000"  # ASS alpha 0x60: the box behind the words lets the picture through
    styles = [
        (f"Style: LTTitle,{FONT},52,&H00FFFFFF,&H000000FF,{band},{band},-1,0,0,0,100,100,0,0,3,14,0,1,"
         f"{SAFE_X},{SAFE_X},{SAFE_Y + 62},-1"),
        (f"Style: LTBy,{FONT},38,&H00A0C8E8,&H000000FF,{band},{band},0,0,0,0,100,100,0,0,3,12,0,1,"
         f"{SAFE_X},{SAFE_X},{SAFE_Y},-1"),
    ]
    events = [event(fade + escape(title), seconds, "LTTitle")] if title else []
    if byline:
        events.append(event(fade + escape(byline), seconds, "LTBy"))
    return document(styles, events)


def filter_path(path: Path | str) -> str:
    """A path quoted for an ffmpeg filter option value: escaped for the option, then for the graph."""
    def esc(value: str, special: str) -> str:
        return "".join("\\" + c if c in special else c for c in value)

    return esc(esc(str(path), "\\':"), "\\'[],;")
