"""A deterministic demo call-out ("RE: The Number One"), made entirely from ffmpeg's own sources.

It gives tests, benchmarks and the demo episode a realistic folder without shipping media:
~170 records by ~140 contributors in every kind, container, codec, rate and orientation a
submission site sees, with remix chains, unreleased records and a few broken uploads.
Everything follows from ``seed``; nothing reads the clock or the network.
"""

from __future__ import annotations

import csv
import os
import random
import re
import shutil
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

import yaml

from render.callout.folder import CONTRIBUTOR_COLUMNS, SUBMISSION_COLUMNS
from render.core import ffmpeg

#: Bump whenever the output changes, so folders made by an older generator are rebuilt.
GENERATOR_VERSION = 5  # 2: test-chart uploads move (QC flagged them as frozen pictures); 3: colour washes too;
# 4: the same seed makes the same bytes (washes' colours were random, containers carried random ids);
# 5: voice memos come with the words their speakers typed (the optional transcript column)

_FONTS = Path(__file__).resolve().parents[2] / "assets" / "fonts"
_FONT = _FONTS / "DejaVuSans.ttf"
_FONT_BOLD = _FONTS / "DejaVuSans-Bold.ttf"

TAGS = ("one", "first", "single", "alone", "number", "lawn", "street", "night", "music", "voice", "portrait", "loop")
FEATURED = "R0042"  # the record the demo episode features
CHAIN = ("R0012", "R0047", "R0088", "R0131")  # a 4-deep remix chain, original first

_KIND_COUNTS = {"video": 59, "animation": 22, "music": 18, "voice": 18, "photo": 21, "illustration": 16, "text": 16}
#: Kinds pinned by record number: R0001-R0010 show every kind, plus the featured record and the chain.
_FIXED_KINDS = {1: "video", 2: "music", 3: "photo", 4: "animation", 5: "voice", 6: "text", 7: "illustration",
                8: "video", 9: "music", 10: "photo", 12: "video", 42: "video", 47: "video", 88: "animation",
                131: "video"}
_CHAIN_TITLES = ("First One on the Street", "RE: First One on the Street", "RE: RE: First One (animated)",
                 "RE: First One, Forever")
_ROLES = {"video": ("director", "camera", "editor", "performer"), "animation": ("animator", "director", "editor"),
          "music": ("composer", "performer"), "voice": ("narrator", "performer", "writer"),
          "photo": ("photographer",), "illustration": ("illustrator",), "text": ("writer",)}
_ONE_TAGGED_MOVING = 32  # released video/animation records tagged "one" (besides R0042)
_UNRELEASED = 14

_CALLOUT = {
    "id": "demo",
    "title": "RE: The Number One",
    "brief": "Film it, sing it, draw it, say it: what does it mean to be number one? The first, the only, "
             "the single one, alone on the lawn or out on the street at night. Anything you upload can be "
             "remixed by everyone else.",
    "opened": "2014-03-03",
    "closed": "2014-03-31",
}

# -- people -----------------------------------------------------------------------------------------

#: Credit names every consumer must survive: accents, ß, right-to-left, CJK, Devanagari,
#: combining marks (decomposed on purpose) and emoji.
_FEATURED_PEOPLE = (
    ("José Ñúñez", "MX"), ("Jürgen Straß", "DE"), ("Zoe\u0308 Bronte\u0308", "GB"),
    (unicodedata.normalize("NFD", "Nguyễn Thị Lan"), "VN"), ("محمد العلي", "EG"), ("ليلى حداد", "LB"),
    ("נועה כהן", "IL"), ("דוד לוי", "IL"), ("王小明", "CN"), ("山田 花子", "JP"), ("김민준", "KR"),
    ("प्रिया शर्मा", "IN"), ("Lu 🌙 Moreno", "AR"), ("Sam Ortiz 🎸", "AU"), ("Αλέξης Παπαδόπουλος", "GR"),
    ("Олена Коваленко", "UA"), ("Çağrı Yılmaz", "TR"), ("Siobhán Ní Bhriain", "IE"), ("Åsa Öberg", "SE"),
    ("Łukasz Wójcik", "PL"), ("François Lefèvre", "FR"), ("Guðrún Þórsdóttir", "IS"),
)
#: (country, first names, family names, family name first, separator)
_CULTURES = (
    ("US", ("Emma", "Liam", "Olivia", "Noah", "Ava", "Mason", "Harper"),
     ("Smith", "Johnson", "Brown", "Miller", "Davis"), False, " "),
    ("ES", ("Lucía", "Mateo", "Martina", "Álvaro", "Inés", "Iñigo"),
     ("García", "Fernández", "López", "Martínez", "Gómez"), False, " "),
    ("DE", ("Lena", "Jonas", "Jürgen", "Hannah", "Lukas", "Jörg"),
     ("Müller", "Schäfer", "Weiß", "Groß", "Köhler"), False, " "),
    ("FR", ("Chloé", "Théo", "Léa", "Hélène", "Rémi", "Zoé"),
     ("Dubois", "Lefèvre", "Moreau", "Girard", "Faure"), False, " "),
    ("BR", ("João", "Ana", "Luíza", "Caio", "Bárbara", "Tomás"),
     ("Silva", "Araújo", "Gonçalves", "Conceição", "Souza"), False, " "),
    ("JP", ("花子", "蓮", "陽菜", "大翔", "さくら"), ("山田", "佐藤", "鈴木", "高橋", "田中"), True, " "),
    ("CN", ("伟", "芳", "静", "磊", "婷"), ("王", "李", "张", "刘", "陈"), True, ""),
    ("KR", ("민준", "서연", "지호", "하은", "도윤"), ("김", "이", "박", "최", "정"), True, ""),
    ("IN", ("प्रिया", "अर्जुन", "आदित्य", "अनन्या", "रोहन"), ("शर्मा", "वर्मा", "पटेल", "गुप्ता", "मेहता"), False, " "),
    ("EG", ("محمد", "أحمد", "فاطمة", "ليلى", "يوسف"), ("العلي", "حسن", "حداد", "منصور", "سالم"), False, " "),
    ("IL", ("נועה", "דוד", "יעל", "איתי", "תמר"), ("כהן", "לוי", "מזרחי", "פרץ", "ביטון"), False, " "),
    ("GR", ("Νίκος", "Ελένη", "Γιώργος", "Μαρία"), ("Παππάς", "Οικονόμου", "Γεωργίου", "Νικολάου"), False, " "),
    ("UA", ("Олена", "Андрій", "Ірина", "Тарас"), ("Коваленко", "Шевченко", "Бондаренко", "Ткаченко"), False, " "),
    ("PL", ("Zofia", "Łukasz", "Małgorzata", "Paweł"), ("Wójcik", "Kowalczyk", "Szymański", "Dąbrowski"), False, " "),
    ("TR", ("Çağrı", "Ayşe", "Emre", "Gül"), ("Yılmaz", "Şahin", "Öztürk", "Çelik"), False, " "),
    ("VN", ("Lan", "Minh", "Hương", "Đức"), ("Nguyễn", "Trần", "Lê", "Phạm"), True, " "),
    ("NG", ("Chidi", "Ngozi", "Tunde", "Amaka"), ("Okafor", "Adeyemi", "Eze", "Balogun"), False, " "),
    ("SE", ("Åsa", "Björn", "Linnéa", "Måns"), ("Öberg", "Lindqvist", "Ågren", "Sjöström"), False, " "),
    ("MX", ("Ximena", "Santiago", "Valeria", "Diego"), ("Ñúñez", "Hernández", "Peña", "Ramírez"), False, " "),
)
_USER_STEMS = ("ana", "bo", "kai", "mika", "yuki", "li", "omar", "noa", "priya", "sven", "zoe", "leo", "ines", "tomo",
               "raj", "dara", "ivo", "nia", "eli", "sol", "max", "jun", "ada", "ren", "tal", "lu", "kofi", "emi",
               "olu", "vik", "juno", "pia", "ash", "rio", "sam", "tess", "wen", "yara", "finn", "hana")
_USER_WORDS = ("cam", "beats", "draws", "films", "sings", "one", "lawn", "loops", "tapes", "ink")

# -- words ------------------------------------------------------------------------------------------

_TITLE_HEADS = ("Number One", "The First", "One", "The Only One", "Alone", "First Light", "Single File",
                "The Lonely One", "Uno", "Número Uno", "Eins", "Le Premier", "Primeira Vez", "Just One")
_TITLE_TAILS = ("on the Lawn", "in the Street", "at Night", "Again", "Forever", "(Take 2)", "for Nobody",
                "and Only", "by Myself", "at the Bus Stop", "in the Rain", "After Midnight", "Counting Down")
#: Titles that must survive CSV quoting and filter-graph escaping.
_AWKWARD_TITLES = ('"One" Is Enough', "One, Two, One", "Nobody's Number One", "100% One",
                   "Straße Nummer Eins", "[One]; Alone: Again")
_SPEECH = (
    "Number one, number one, this is take one.", "I was the first one on the lawn this morning.",
    "The street is empty, and I am the only one here.", "Count with me. One. That is it. Just one.",
    "At night the city feels like it belongs to one person.", "This is my single, my one and only song.",
    "Every remix starts with one idea.", "Being alone is not the same as being lonely.",
    "One more time, from the top.", "Somebody painted a big number one on the wall of my street.",
    "First light, first coffee, first word of the day.", "Hello from the lawn. Over and out.",
    "I'm not first, I'm not last, I'm just the one who showed up.",
)
_VOICES = ("kal", "awb", "slt", "rms")
_TEXTS = (
    "I was first in line at the bakery at six.\nNobody else was awake.\nFor one minute the whole street was mine.",
    "Uno no es poco. Uno es el comienzo de todo lo demás.",
    "一つだけの月が\n静かな通りを\n照らしている",
    "Eins ist keine Zahl, sagt meine Großmutter. Eins ist ein Anfang.",
    "الرقم واحد هو البداية دائماً",
    "אחד זה מספיק.",
    "एक से ही शुरुआत होती है।",
    "하나, 그리고 또 하나.",
    "Rules for being number one:\n1. Show up.\n2. Stay.\n3. Forget rule 1.",
    "The lawn has one dandelion left. I am not going to pick it.",
    "Numéro un, c'est moi — mais seulement le dimanche.",
    "Single, adj.: one; alone; also a song you play once and then forever.",
    "At night the street lamp counts to one, over and over.",
    'She said "you\'re the one," and I said "which one?"',
    "Zoë's café: the first customer gets the one good chair ☕",
    "第一次一个人走在夜晚的街上。",
    "Ένα, μόνο ένα.",
)

# -- media shapes -----------------------------------------------------------------------------------

_LANDSCAPE = ((320, 180), (426, 240), (480, 270), (640, 360), (854, 480))
_LANDSCAPE_WEIGHTS = (3, 3, 2, 2, 1)  # encoding time grows with pixels: mostly small ones
_ANIMATION_SIZES = ((320, 180), (426, 240), (480, 270), (640, 360), (480, 480), (400, 400))
_COMMON_RATES = ("24", "25", "30", "30000/1001")
_PHOTO_SIZES = ((1024, 768), (1280, 720), (1600, 900), (800, 600), (1920, 1080))
_PORTRAIT_STILLS = ((768, 1024), (1080, 1350), (720, 1280))
_ILLUSTRATION_SIZES = ((1080, 1080), (800, 800), (1200, 900), (1000, 1000))
#: The transform that stores an upright picture so that this ffmpeg (5.1), reading the given
#: ``rotate`` tag back as a display matrix, shows it upright again (checked with autorotate).
_STORE_ROTATED = {90: "transpose=clock", 180: "hflip,vflip", 270: "transpose=cclock"}
_VIDEO_CODECS = {  # name: (muxer, video codec args, audio codec args)
    "mp4": ("mp4", ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "26", "-pix_fmt", "yuv420p"],
            ["-c:a", "aac", "-b:a", "96k"]),
    "mov": ("mov", ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "26", "-pix_fmt", "yuv420p"],
            ["-c:a", "aac", "-b:a", "96k"]),
    "webm8": ("webm", ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "16", "-b:v", "600k"],
              ["-c:a", "libvorbis", "-q:a", "3"]),
    "webm9": ("webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
                       "-b:v", "500k"], ["-c:a", "libopus", "-b:a", "64k"]),
    "avi": ("avi", ["-c:v", "mpeg4", "-q:v", "5"], ["-c:a", "libmp3lame", "-q:a", "4"]),
    "gif": ("gif", [], []),
}
_EXT = {"mp4": "mp4", "mov": "mov", "webm8": "webm", "webm9": "webm", "avi": "avi", "gif": "gif"}
_AUDIO_CODECS = {  # extension: (muxer, codec args)
    "mp3": ("mp3", ["-c:a", "libmp3lame", "-q:a", "4"]), "wav": ("wav", ["-c:a", "pcm_s16le"]),
    "ogg": ("ogg", ["-c:a", "libvorbis", "-q:a", "4"]), "flac": ("flac", ["-c:a", "flac"]),
    "m4a": ("ipod", ["-c:a", "aac", "-b:a", "128k"]),
}
_STILL_CODECS = {  # pixel formats pinned so that only the sticker carries alpha
    "png": ["-c:v", "png", "-pix_fmt", "rgb24"], "png alpha": ["-c:v", "png", "-pix_fmt", "rgba"],
    "jpg": ["-c:v", "mjpeg", "-q:v", "3"], "webp": ["-c:v", "libwebp", "-quality", "75", "-pix_fmt", "yuv420p"]}
_VIDEO_SOURCES = ("testsrc2", "testsrc2", "testsrc2",  # repeated: the most common look
                  "smptebars", "smptehdbars", "pal75bars", "testsrc",
                  "mandelbrot", "life", "cellauto", "gradients", "bounce")
_HD_SOURCES = ("testsrc2", "smptehdbars", "testsrc")
_ANIMATION_SOURCES = ("mandelbrot", "life", "cellauto", "sierpinski", "gradients", "bounce")
_STILL_SOURCES = ("testsrc2", "smptehdbars", "gradients", "mandelbrot", "rgbtestsrc", "colorspectrum", "sierpinski")
_ILLUSTRATION_SOURCES = ("mandelbrot", "sierpinski", "cellauto", "life", "gradients", "colorspectrum", "bounce")
_HAND_NAMED = re.compile(r"[^\w ()-]")  # what a person keeps of a title when naming a file
#: Sources computed per pixel, many times dearer than the test patterns: they stay small.
_COSTLY_SOURCES = ("mandelbrot", "gradients", "life", "cellauto")
_COLORS = ("0x1f3b73", "0x7a1f5c", "0x0f5e3c", "0x8a4b08", "0x3d3d3d", "0x5b2a86", "0x0b6e75")
_WASHES = ("0xf2a541", "0x53d8fb", "0xf25f5c", "0x9bc53d", "0xe4e4e4", "0xc879ff")  # bright ends of colour washes


# -- the plan ---------------------------------------------------------------------------------------

@dataclass
class _Record:
    n: int
    kind: str
    title: str = ""
    file: str = ""
    credits: list[str] = field(default_factory=list)
    remix_of: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # while planning: hints from the media (portrait, loop)
    text: str = ""
    released: bool = True
    broken: str = ""  # how the upload is damaged: truncated, noise, empty, mislabelled
    transcript: str = ""  # the words a voice memo says, as its speaker typed them into the form

    @property
    def rid(self) -> str:
        return f"R{self.n:04d}"

    def row(self) -> list[str]:
        return [self.rid, self.file, self.kind, self.title, ";".join(self.credits), ";".join(self.remix_of),
                ";".join(self.tags), self.text, "yes" if self.released else "no", self.transcript]


@dataclass(frozen=True)
class _Moving:
    """A video or animation to synthesize."""

    rid: str
    title: str
    source: str  # a name _source knows
    seed: int
    width: int  # as displayed
    height: int
    rate: str
    seconds: float
    codec: str  # key of _VIDEO_CODECS
    audio: str  # "", "tone" or "speech"
    speech: str = ""
    voice: str = "slt"
    tone_hz: int = 220
    sample_rate: int = 48000
    rotate: int = 0  # the rotate tag written into the container

    def cost(self) -> float:
        """Rough CPU seconds, so the longest jobs start first."""
        factor = {"webm9": 3.0, "webm8": 2.5, "gif": 3.0}.get(self.codec, 1.0)
        if self.source == "mandelbrot":
            factor *= 3
        return self.seconds * self.width * self.height * float(Fraction(self.rate)) * factor / 2e7


@dataclass(frozen=True)
class _Job:
    cost: float
    make: Callable[[Path], None]  # writes one file under the given call-out root


def _esc(value: object) -> str:
    """Escape a filter option value: once for the option parser, once for the filter-graph parser."""
    once = re.sub(r"([\\:'])", r"\\\1", str(value))
    return re.sub(r"([\\'\[\],;])", r"\\\1", once)


def _filter(name: str, **options: object) -> str:
    return name + "=" + ":".join(f"{k}={_esc(v)}" for k, v in options.items())


def _text(text: str, size: int, y: str, *, bold: bool = True, expansion: str = "none") -> str:
    return _filter("drawtext", fontfile=_FONT_BOLD if bold else _FONT, text=text, expansion=expansion, fontsize=size,
                   fontcolor="white", x="(w-tw)/2", y=y, box=1, boxcolor="black@0.55", boxborderw=max(3, size // 5))


def _labels(rid: str, title: str, w: int, h: int, *, clock: bool) -> str:
    """Record id and title on top (so every frame says where it came from), a running clock below."""
    short = min(w, h)
    small = max(12, short // 16)
    parts = [_text(rid, max(16, short // 7), "h*0.05"), _text(title, small, f"h*0.05+{short // 6}", bold=False)]
    if clock:
        parts.append(_text("%{pts:hms}", small, "h-th-h*0.05", bold=False, expansion="normal"))
    return ",".join(parts)


def _source(name: str, w: int, h: int, rate: str, seed: int) -> str:
    """A lavfi video source, endless (the caller bounds the duration)."""
    size = f"{w}x{h}"
    if name == "mandelbrot":  # the default 7189 iterations is far slower than we need
        return _filter(name, s=size, r=rate, maxiter=400, start_scale=2.5, end_scale=0.05, end_pts=600)
    if name == "life":
        return _filter(name, s=size, r=rate, seed=seed, ratio=0.3, mold=8, life_color="0x33cc66",
                       death_color="0x802020")
    if name == "cellauto":
        return _filter(name, s=size, r=rate, seed=seed, ratio=0.5, rule=(30, 90, 110, 150)[seed % 4])
    if name == "gradients":  # at its default speed a wash changes ~0.15/255 a frame: any freeze meter's still
        # Colours are chosen here: the filter's default ("random") ignores the seed.
        c0, c1 = _COLORS[seed % len(_COLORS)], _WASHES[seed // len(_COLORS) % len(_WASHES)]
        return _filter(name, s=size, r=rate, seed=seed, speed=0.05, c0=c0, c1=c1)
    if name == "sierpinski":
        return _filter(name, s=size, r=rate, seed=seed)
    if name == "bounce":  # a big "1" drifting over a plain colour: the theme, as motion graphics
        plate = _filter("color", c=_COLORS[seed % len(_COLORS)], s=size, r=rate)
        one = _filter("drawtext", fontfile=_FONT_BOLD, text="1", fontsize=h * 3 // 5, fontcolor="white@0.85",
                      x=f"(w-tw)/2+sin(t*1.{seed % 9 + 1})*w/4", y=f"(h-th)/2+cos(t*0.{seed % 7 + 3})*h/6")
        return f"{plate},{one}"
    if name in ("smptebars", "smptehdbars", "pal75bars"):  # bars scroll: a phone filming a chart is never still
        return f"{_filter(name, s=size, r=rate)},scroll=horizontal=0.004"
    return _filter(name, s=size, r=rate)


def _base() -> list[str]:
    return [ffmpeg.FFMPEG, "-hide_banner", "-loglevel", "error", "-y"]


def _output(muxer: str, path: Path) -> list[str]:
    # Bit-exact: no random Ogg serials or Matroska UIDs, so one seed gives the same bytes every time
    # (and a regenerated call-out hits every content-hashed cache).
    return ["-fflags", "+bitexact", "-flags", "+bitexact", "-f", muxer, str(path)]


# -- makers (run in worker threads; they only read their arguments) --------------------------------

def _make_moving(spec: _Moving, rel: str, root: Path) -> None:
    # Sources come in as lavfi inputs, not -filter_complex: ffmpeg 5.1 then feeds fixed-frame-size
    # audio encoders (opus, vorbis) the frame size they need.
    out = root / rel
    muxer, vcodec, acodec = _VIDEO_CODECS[spec.codec]
    w, h = spec.width, spec.height
    video = f"{_source(spec.source, w, h, spec.rate, spec.seed)},{_labels(spec.rid, spec.title, w, h, clock=True)}"
    if spec.codec == "gif":  # palettegen waits for the end of its input, so end the input itself
        video += f",trim=duration={spec.seconds},split[a][b];[a]palettegen=max_colors=96[p];[b][p]paletteuse"
    else:
        video += ",format=yuv420p"
    if spec.rotate:
        video += "," + _STORE_ROTATED[spec.rotate]
    inputs, args = ["-f", "lavfi", "-i", video + "[out0]"], [*vcodec]
    if spec.audio:
        sound = _filter("sine", f=spec.tone_hz, beep_factor=4, sample_rate=spec.sample_rate) + ",volume=0.25"
        if spec.audio == "speech":
            words = _filter("flite", text=spec.speech, voice=spec.voice)
            sound = (f"{sound}[bed];{words},aresample={spec.sample_rate},adelay=delays=700:all=1,apad[sp];"
                     "[bed][sp]amix=inputs=2:duration=first:normalize=0")
        inputs += ["-f", "lavfi", "-i", sound + "[out0]"]
        args += [*acodec, "-ar", str(spec.sample_rate), "-ac", "2"]
    target = out.with_name(f".{out.name}.pass1") if spec.rotate else out
    # One encoder thread: the pool already runs one ffmpeg per core.
    ffmpeg.run([*_base(), *inputs, *args, "-threads", "1", "-t", str(spec.seconds), *_output(muxer, target)],
               timeout_s=120)
    if spec.rotate:  # phones store the sensor's pixels plus a rotation; a stream copy adds ours
        ffmpeg.run([*_base(), "-i", str(target), "-map", "0", "-c", "copy", "-metadata:s:v:0", f"rotate={spec.rotate}",
                    *_output(muxer, out)], timeout_s=120)
        target.unlink()


def _make_truncated(spec: _Moving, rel: str, root: Path) -> None:
    """An interrupted upload: the first 30% of a real mp4, whose index (at the end) is lost."""
    whole = f".{Path(rel).name}.whole"
    _make_moving(spec, whole, root)
    data = (root / whole).read_bytes()
    (root / rel).write_bytes(data[: len(data) * 3 // 10])
    (root / whole).unlink()


def _beat(bpm: int, root_hz: float, progression: tuple[int, ...], step: int) -> str:
    """An aevalsrc expression: kick on every beat, off-beat hi-hat, a bass line per bar, a pentatonic melody."""
    p = 60 / bpm
    since = f"mod(t,{p:.6f})"  # seconds since the last beat
    kick = f"sin(2*PI*(45*{since}+25*(1-exp(-30*{since}))))*exp(-9*{since})"
    hat = f"(random(0)-0.5)*0.5*exp(-60*mod(t+{p / 2:.6f},{p:.6f}))"
    bar = f"mod(floor(t/{4 * p:.6f}),4)"
    bass_semis = "+".join(f"eq({bar},{i})*{s}" for i, s in enumerate(progression))
    bass = f"0.35*sin(2*PI*{root_hz:.3f}*pow(2,({bass_semis})/12)*t)"
    note = f"mod(floor(t/{p:.6f})*{step},5)"
    melody_semis = "+".join(f"eq({note},{i})*{s}" for i, s in enumerate((0, 2, 4, 7, 9)))
    melody = f"0.2*sin(2*PI*{root_hz * 4:.3f}*pow(2,({melody_semis})/12)*t)*exp(-3*{since})"
    return f"0.5*({kick}+{hat}+{bass}+{melody})"


def _make_music(bpm: int, expr: str, seconds: float, rate: int, channels: int, rel: str, root: Path) -> None:
    muxer, codec = _AUDIO_CODECS[Path(rel).suffix[1:].lower()]
    # Evaluating the expression costs ~2 us a sample, so compute four bars once and loop them.
    loop = round(16 * 60 / bpm * rate)
    graph = (f"{_filter('aevalsrc', exprs=expr, s=rate, d=loop / rate + 0.1)},aloop=loop=-1:size={loop},"
             f"afade=t=in:d=0.3,afade=t=out:st={seconds - 2:.1f}:d=2")
    ffmpeg.run([*_base(), "-f", "lavfi", "-i", graph, *codec, "-ar", str(rate), "-ac", str(channels),
                "-t", str(seconds), *_output(muxer, root / rel)], timeout_s=120)


def _make_voice(speech: str, voice: str, noise_seed: int, rate: int, channels: int, rel: str, root: Path) -> None:
    muxer, codec = _AUDIO_CODECS[Path(rel).suffix[1:].lower()]
    graph = f"{_filter('flite', text=speech, voice=voice)},aresample={rate},apad=whole_dur=4"
    if noise_seed:  # recorded outdoors: a little street noise under the words
        graph += (f"[w];{_filter('anoisesrc', color='brown', amplitude=0.03, seed=noise_seed, r=rate)}[n];"
                  "[w][n]amix=inputs=2:duration=first:normalize=0[out0]")
    ffmpeg.run([*_base(), "-f", "lavfi", "-i", graph, *codec, "-ar", str(rate), "-ac", str(channels), "-t", "20",
                *_output(muxer, root / rel)], timeout_s=120)


def _make_still(source: str, rid: str, title: str, size: tuple[int, int], seed: int, fmt: str, rel: str,
                root: Path) -> None:
    w, h = size
    graph = f"{_source(source, w, h, '25', seed)},{_labels(rid, title, w, h, clock=False)}"
    if fmt == "png alpha":  # a round sticker: opaque disc, transparent corners
        graph += ",format=rgba," + _filter("geq", r="r(X,Y)", g="g(X,Y)", b="b(X,Y)",
                                           a="if(lt(hypot(X-W/2,Y-H/2),W*0.46),255,0)")
    ffmpeg.run([*_base(), "-f", "lavfi", "-i", graph, "-frames:v", "1", *_STILL_CODECS[fmt],
                "-update", "1", *_output("image2", root / rel)], timeout_s=120)


def _make_bytes(data: bytes, rel: str, root: Path) -> None:
    (root / rel).write_bytes(data)


# -- planning: every random choice happens here, in one fixed order --------------------------------

def _slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_title.lower()).strip("_")[:32] or "untitled"


def _ids(records: list[_Record]) -> list[str]:
    return [r.rid for r in records]


def _deck(rng: random.Random, n: int, default: Callable[[], object], specials: dict) -> list:
    """n items: exactly ``specials[item]`` of each special item, the rest drawn from ``default()``, shuffled."""
    items = [item for item, count in specials.items() for _ in range(count)]
    items += [default() for _ in range(n - len(items))]
    rng.shuffle(items)
    return items


def _people(rng: random.Random, count: int = 140) -> list[tuple[str, str, str]]:
    """(username, credit_name, country) for ``count`` contributors, the featured names first."""
    people = list(_FEATURED_PEOPLE)
    names = {name for name, _ in people}
    while len(people) < count:
        country, firsts, lasts, family_first, sep = rng.choice(_CULTURES)
        first, last = rng.choice(firsts), rng.choice(lasts)
        name = f"{last}{sep}{first}" if family_first else f"{first}{sep}{last}"
        if name not in names:
            names.add(name)
            people.append((name, country))
    usernames: list[str] = []
    while len(usernames) < count:
        stem = rng.choice(_USER_STEMS)
        user = rng.choice((f"{stem}_{rng.choice('abcdefghijklmnopqrstuvwxyz')}", f"{stem}{rng.randrange(10, 100)}",
                           f"{stem}_{rng.choice(_USER_WORDS)}", f"{stem}{rng.choice(_USER_STEMS)}"))
        if user not in usernames:
            usernames.append(user)
    return [(user, name, country) for user, (name, country) in zip(usernames, people)]


def _title(rng: random.Random) -> str:
    if rng.random() < 0.06:
        return rng.choice(_AWKWARD_TITLES)
    return f"{rng.choice(_TITLE_HEADS)} {rng.choice(_TITLE_TAILS)}"


def _speech(rng: random.Random, seconds: float) -> str:
    """Sentences for about ``seconds`` of flite speech (it says ~15 characters a second)."""
    lines: list[str] = []
    while sum(len(s) for s in lines) < seconds * 15:
        lines.append(rng.choice(_SPEECH))
    return " ".join(lines)


def _records(rng: random.Random, people: list[tuple[str, str, str]]) -> list[_Record]:
    """Kinds, damage, release, credits, titles and remixes of every record."""
    total = sum(_KIND_COUNTS.values())
    pool = dict(_KIND_COUNTS)
    for kind in _FIXED_KINDS.values():
        pool[kind] -= 1
    free_kinds = [kind for kind, count in pool.items() for _ in range(count)]
    rng.shuffle(free_kinds)
    records = [_Record(n, _FIXED_KINDS.get(n) or free_kinds.pop()) for n in range(1, total + 1)]
    protected = {r.rid for r in records[:10]} | {FEATURED, *CHAIN}

    # Broken uploads are released, so intake (not the release flag) must catch them.
    free_videos = [r for r in records if r.kind == "video" and r.rid not in protected]
    for record, how in zip(rng.sample(free_videos, 3), ("truncated", "noise", "empty")):
        record.broken = how
    rng.choice([r for r in records if r.kind == "photo" and r.rid not in protected]).broken = "mislabelled"
    for record in rng.sample([r for r in records if r.rid not in protected and not r.broken], _UNRELEASED):
        record.released = False

    # Everyone is credited at least once and some more often; 1-3 credits a record.
    users = [p[0] for p in people]
    primaries = users + rng.choices(users, k=total - len(users))
    rng.shuffle(primaries)
    for record, primary in zip(records, primaries):
        others = rng.sample([u for u in users if u != primary], rng.choices((0, 1, 2), (60, 30, 10))[0])
        record.credits = [f"{user}:{rng.choice(_ROLES[record.kind])}" if rng.random() < 0.6 else user
                          for user in (primary, *others)]

    # Later records build on earlier ones, on remixes a little more often, so chains grow.
    depth: dict[str, int] = {}
    for record in records:
        if record.rid in CHAIN:
            i = CHAIN.index(record.rid)
            record.title, record.remix_of = _CHAIN_TITLES[i], [CHAIN[i - 1]] if i else []
        elif record.rid == FEATURED:
            record.title = "The One on the Lawn"
        elif record.n > 10 and rng.random() < 0.38:
            earlier = records[: record.n - 1]
            count = rng.choices((1, 2), (85, 15))[0]
            weights = [depth[r.rid] for r in earlier]
            record.remix_of = sorted({rng.choices(earlier, weights)[0].rid for _ in range(count)})
            parent = records[int(record.remix_of[0][1:]) - 1].title
            record.title = rng.choice((f"RE: {parent}", f"{parent} (remix)", _title(rng)))
            if len(record.title) > 60:
                record.title = _title(rng)
        else:
            record.title = _title(rng)
        depth[record.rid] = 1 + max((depth[p] for p in record.remix_of), default=0)
    return records


def _plan_moving(rng: random.Random, records: list[_Record]) -> dict[str, _Job]:
    videos = [r for r in records if r.kind == "video" and not r.broken and r.rid != FEATURED]
    animations = [r for r in records if r.kind == "animation"]
    codecs = dict(zip(_ids(videos), _deck(rng, len(videos), lambda: ("mp4", True), {
        ("mov", True): 7, ("webm8", True): 5, ("webm9", True): 5, ("avi", True): 5,
        ("mp4", False): 3, ("webm9", False): 1, ("mov", False): 1})))
    codecs |= dict(zip(_ids(animations), _deck(rng, len(animations), lambda: ("mp4", True), {
        ("gif", False): 3, ("webm9", True): 3, ("webm8", True): 2, ("mov", True): 2, ("mp4", False): 3})))
    sizes = dict(zip(_ids(videos), _deck(rng, len(videos), lambda: rng.choices(_LANDSCAPE, _LANDSCAPE_WEIGHTS)[0], {
        (1280, 720): 3, (360, 640): 4, (270, 480): 2, (480, 480): 3, (360, 360): 1, (640, 480): 2})))
    rates = dict(zip(_ids(videos), _deck(rng, len(videos), lambda: rng.choice(_COMMON_RATES), {
        "50": 3, "60": 3, "15": 1})))
    long_ones = {r.rid for r in rng.sample([r for r in videos if sizes[r.rid] in _LANDSCAPE[:3]], 5)}
    turnable = [r for r in videos if r.released and codecs[r.rid] == ("mp4", True)]
    rotations = dict(zip(_ids(rng.sample(turnable, 5)), (270, 270, 90, 180, 270)))

    jobs: dict[str, _Job] = {}
    for record in (r for r in records if r.kind in ("video", "animation")):
        seed = rng.randrange(1, 2**31)
        codec, has_audio = codecs.get(record.rid, ("mp4", True))
        rotate = rotations.get(record.rid, 0)
        if record.rid == FEATURED:
            source, (w, h), rate, seconds = "testsrc2", (854, 480), "30000/1001", 32.0
        elif record.kind == "animation":
            source = rng.choice(_ANIMATION_SOURCES)
            w, h = rng.choice(((320, 180), (240, 240))) if codec == "gif" else rng.choice(_ANIMATION_SIZES)
            rate = "25" if codec == "gif" else rng.choice(("24", "25", "30"))
            seconds = rng.uniform(3, 6) if codec == "gif" else rng.uniform(4, 24)
        else:
            w, h = sizes.get(record.rid, _LANDSCAPE[3])
            source = rng.choice(_HD_SOURCES if w * h > 854 * 480 else _VIDEO_SOURCES)
            if rotate:  # the picture as seen; it is stored turned (see _STORE_ROTATED)
                w, h = (640, 360) if rotate == 180 else (360, 640)
            rate = rates.get(record.rid, "25")
            if record.rid in long_ones:
                seconds = rng.uniform(60, 90)
            elif w * h > 854 * 480:
                seconds = rng.uniform(8, 20)
            else:
                seconds = rng.uniform(10, 36) if rng.random() < 0.75 else rng.uniform(6, 10)
        while source in _COSTLY_SOURCES and w * h > 480 * 270:
            w, h = w // 4 * 2, h // 4 * 2  # halved, still even
        if w < h:
            record.tags.append("portrait")
        if codec == "gif" or (record.kind == "animation" and seconds < 8):
            record.tags.append("loop")
        audio = "" if not has_audio else "speech" if record.rid == FEATURED or rng.random() < 0.45 else "tone"
        spec = _Moving(record.rid, record.title, source, seed, w, h, rate, round(seconds, 1), codec, audio,
                       _speech(rng, min(seconds, 24) * 0.7), rng.choice(_VOICES), rng.choice((165, 220, 262, 330, 440)),
                       48000 if codec == "webm9" else 44100 if codec == "avi" else rng.choice((44100, 48000)), rotate)

        ext = "mov" if record.broken == "empty" else _EXT[codec]
        record.file = f"media/{record.rid}_{_slug(record.title)}.{ext}"
        if not record.broken and not rotate and codec in ("mp4", "mov") and rng.random() < 0.15:
            record.file = (f"media/from phone/IMG_{4000 + record.n}.MOV" if codec == "mov"
                           else f"media/from phone/VID_201403{record.n % 28 + 1:02d}_{record.n:04d}.mp4")
        if record.broken == "noise":
            jobs[record.rid] = _Job(0, partial(_make_bytes, rng.randbytes(150_000), record.file))
        elif record.broken == "empty":
            jobs[record.rid] = _Job(0, partial(_make_bytes, b"", record.file))
        else:
            make = _make_truncated if record.broken == "truncated" else _make_moving
            jobs[record.rid] = _Job(spec.cost(), partial(make, spec, record.file))
    return jobs


def _plan_stills(rng: random.Random, records: list[_Record]) -> dict[str, _Job]:
    photos = [r for r in records if r.kind == "photo" and not r.broken]
    illustrations = [r for r in records if r.kind == "illustration"]
    formats = dict(zip(_ids(photos), _deck(rng, len(photos), lambda: "jpg", {"png": 5, "webp": 4})))
    formats |= dict(zip(_ids(illustrations), _deck(rng, len(illustrations), lambda: "png", {
        "jpg": 3, "webp": 3, "png alpha": 1})))
    sizes = dict(zip(_ids(photos), _deck(rng, len(photos), lambda: rng.choice(_PHOTO_SIZES), {
        _PORTRAIT_STILLS[0]: 1, _PORTRAIT_STILLS[1]: 1, _PORTRAIT_STILLS[2]: 1, (1080, 1080): 2, (4000, 1200): 1})))
    sizes |= dict(zip(_ids(illustrations), _deck(rng, len(illustrations), lambda: rng.choice(_ILLUSTRATION_SIZES), {
        (900, 1200): 2})))

    jobs: dict[str, _Job] = {}
    for record in records:
        if record.kind not in ("photo", "illustration"):
            continue
        if record.broken:  # the site saved an error page under the photo's name
            record.file = f"media/{record.rid}_{_slug(record.title)}.jpg"
            jobs[record.rid] = _Job(0, partial(_make_bytes, b"<html><body><h1>502 Bad Gateway</h1></body></html>\n",
                                               record.file))
            continue
        fmt, (w, h) = formats[record.rid], sizes[record.rid]
        source = "bounce" if fmt == "png alpha" else rng.choice(
            _STILL_SOURCES if record.kind == "photo" else _ILLUSTRATION_SOURCES)
        if h > w:
            record.tags.append("portrait")
        record.file = f"media/{record.rid}_{_slug(record.title)}.{fmt.split()[0]}"
        if fmt == "jpg" and record.kind == "photo" and rng.random() < 0.2:
            record.file = f"media/from phone/IMG_{4000 + record.n}.JPG"
        make = partial(_make_still, source, record.rid, record.title, (w, h), rng.randrange(1, 2**31), fmt, record.file)
        jobs[record.rid] = _Job(w * h / 4e6, make)
    return jobs


def _plan_sounds(rng: random.Random, records: list[_Record]) -> dict[str, _Job]:
    music = [r for r in records if r.kind == "music"]
    voice = [r for r in records if r.kind == "voice"]
    exts = dict(zip(_ids(music), _deck(rng, len(music), lambda: "mp3", {"wav": 3, "ogg": 3, "flac": 3, "m4a": 3})))
    exts |= dict(zip(_ids(voice), _deck(rng, len(voice), lambda: "m4a", {"mp3": 4, "wav": 4, "ogg": 3, "flac": 2})))

    jobs: dict[str, _Job] = {}
    for record in music + voice:
        ext = exts[record.rid]
        rate = rng.choice((22050, 44100, 44100, 48000))
        record.file = f"media/{record.rid}_{_slug(record.title)}.{ext}"
        if ext == "mp3" and rng.random() < 0.3:  # named by hand on a desktop
            record.file = f"media/{_HAND_NAMED.sub('', record.title)} (final mix {record.n}).mp3"
        if record.kind == "music":
            record.tags.append("music")
            seconds = round(rng.uniform(25, 60), 1)
            progression = (0, *rng.sample((3, 5, 7, 8, 10, -2, -4), 3))
            bpm = rng.randint(80, 160)
            expr = _beat(bpm, 55 * 2 ** (rng.randrange(12) / 12), progression, rng.choice((1, 2, 3, 4)))
            channels = rng.choices((2, 1), (80, 20))[0]
            jobs[record.rid] = _Job(seconds * rate / 2e6,
                                    partial(_make_music, bpm, expr, seconds, rate, channels, record.file))
        else:
            record.tags.append("voice")
            speech = _speech(rng, rng.uniform(4, 17))
            # voice memos come with their words (the form asks for them); videos with speech do not, so
            # a build of the demo captions both ways: aligned transcripts, and recognition's drafts
            record.transcript = speech
            noise_seed = rng.randrange(1, 2**31) if rng.random() < 0.4 else 0
            channels = rng.choices((1, 2), (75, 25))[0]
            jobs[record.rid] = _Job(0.3, partial(_make_voice, speech, rng.choice(_VOICES), noise_seed, rate, channels,
                                                 record.file))
    return jobs


def _plan_texts(rng: random.Random, records: list[_Record]) -> dict[str, _Job]:
    texts = [r for r in records if r.kind == "text"]
    ways = _deck(rng, len(texts), lambda: "utf-8", {"form": 8, "utf-16": 1})
    jobs: dict[str, _Job] = {}
    for record, way, words in zip(texts, ways, rng.sample(_TEXTS, len(texts))):
        if way == "form":  # typed into the submission form: the words live in the CSV
            record.text = words
        else:  # Python's "utf-16" codec writes a byte-order mark
            record.file = f"media/{record.rid}_{_slug(record.title)}.txt"
            jobs[record.rid] = _Job(0, partial(_make_bytes, (words + "\n").encode(way), record.file))
    return jobs


def _tag(rng: random.Random, records: list[_Record]) -> None:
    """1-3 tags a record: the media's own hints, "one" where the theme is plain, and the rest at random."""
    moving = [r for r in records
              if r.kind in ("video", "animation") and r.released and not r.broken and r.rid != FEATURED]
    one = {r.rid for r in rng.sample(moving, _ONE_TAGGED_MOVING)} | {FEATURED}
    others = [t for t in TAGS if t not in ("one", "music", "voice", "portrait", "loop")]
    for record in records:
        tags = (["one"] if record.rid in one or rng.random() < 0.15 else []) + record.tags
        want = rng.randint(1, 3)
        tags += rng.sample(others, max(0, want - len(tags)))
        record.tags = tags[:3]
    next(r for r in records if r.rid == FEATURED).tags = ["one", "lawn"]


def _plan(seed: int) -> tuple[list[tuple[str, str, str]], list[_Record], list[_Job]]:
    rng = random.Random(seed)
    people = _people(rng)
    records = _records(rng, people)
    jobs = {**_plan_moving(rng, records), **_plan_stills(rng, records), **_plan_sounds(rng, records),
            **_plan_texts(rng, records)}
    _tag(rng, records)
    return people, records, list(jobs.values())


# -- writing ----------------------------------------------------------------------------------------

def _stamp(seed: int) -> str:
    return f"remixtv demo call-out\ngenerator {GENERATOR_VERSION}\nseed {seed}\n"


def _is_complete(dest: Path, seed: int) -> bool:
    try:
        return (dest / ".complete").read_text(encoding="utf-8") == _stamp(seed)
    except OSError:
        return False


def _tables(people: list[tuple[str, str, str]], records: list[_Record]) -> dict[str, list[list[str]]]:
    return {"submissions.csv": [[*SUBMISSION_COLUMNS, "transcript"], *(r.row() for r in records)],
            "contributors.csv": [list(CONTRIBUTOR_COLUMNS), *map(list, people)]}


def demo_tables(seed: int = 2014) -> dict[str, list[list[str]]]:
    """The rows (header first) of submissions.csv and contributors.csv for ``seed``, without making media."""
    people, records, _ = _plan(seed)
    return _tables(people, records)


def _write(root: Path, seed: int, progress: Callable[[int, int], None] | None) -> None:
    people, records, jobs = _plan(seed)
    root.mkdir(parents=True)
    for rel in {Path(r.file).parent for r in records if r.file}:
        (root / rel).mkdir(parents=True, exist_ok=True)
    (root / "callout.yaml").write_text(yaml.safe_dump(_CALLOUT, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for name, rows in _tables(people, records).items():
        with open(root / name, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(rows)  # the excel dialect is RFC 4180: CRLF, minimal quoting

    jobs.sort(key=lambda job: -job.cost)  # longest first, so no straggler starts last
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = [pool.submit(job.make, root) for job in jobs]
        try:
            for done, future in enumerate(as_completed(futures), 1):
                future.result()
                if progress:
                    progress(done, len(jobs))
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def generate_demo_callout(dest: Path, seed: int = 2014, progress: Callable[[int, int], None] | None = None) -> Path:
    """Create (or reuse) the demo call-out folder at dest; return dest."""
    dest = Path(dest)
    if _is_complete(dest, seed):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write(tmp, seed, progress)
        (tmp / ".complete").write_text(_stamp(seed), encoding="utf-8")
        if dest.exists():  # incomplete, or from another seed or generator version
            shutil.rmtree(dest)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not _is_complete(dest, seed):  # unless another process just made the same folder
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
