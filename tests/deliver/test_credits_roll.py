"""The credits roll keeps every name readable: by its arithmetic, by the ASS it writes, and in
rendered frames (rows where and when the layout says; real glyphs for every script, not boxes)."""

import math
import re
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from render.callout.folder import load_callout
from render.compose.pieces import Piece
from render.compose.store import render_piece
from render.core import house, text
from render.core.cache import Cache
from render.core.errors import UserError
from render.deliver.credits import NAME_H, column_width, compute, layout, roll
from render.edit.timeline import Shot
from tests.support.callouts import write_callout
from tests.support.credits import HARD_NAMES, timeline

H, W = text.PLAY_H, text.PLAY_W
PREVIEW = house.PROFILES["preview"]
SCALE = Fraction(PREVIEW.height, H)  # script px -> preview px
EVENT = re.compile(r"^Dialogue: \d+,(\d+):(\d\d):(\d\d)\.(\d\d),(\d+):(\d\d):(\d\d)\.(\d\d),(\w+),,0,0,0,,"
                   r"\{[^}]*\\move\(([\d.]+),([\d.-]+),([\d.]+),([\d.-]+)(?:,(\d+),(\d+))?\)\}(.*)$")
LONG_NAME = "Maximiliana Esperanza Wolfeschlegelsteinhausen-Bergerdorff"


def credits_of(tmp_path, names, roles=("writer",)):
    rows = [{"record_id": f"R{i}", "file": "", "kind": "text", "text": "t", "contributors": f"u{i}:{roles[i % len(roles)]}"}
            for i in range(len(names))]
    c = load_callout(write_callout(tmp_path / "c", rows, [(f"u{i}", n, "") for i, n in enumerate(names)]))
    return compute(timeline(*[f"R{i}" for i in range(len(names))]), c)


def events(doc):
    """(start s, end s, style, position at t seconds, text) for every Dialogue line of the roll."""
    out = []
    for line in doc.splitlines():
        if not line.startswith("Dialogue:"):
            continue
        m = EVENT.match(line)
        assert m, line
        g = m.groups()
        start = int(g[0]) * 3600 + int(g[1]) * 60 + int(g[2]) + int(g[3]) / 100
        end = int(g[4]) * 3600 + int(g[5]) * 60 + int(g[6]) + int(g[7]) / 100
        x0, y0, _, y1 = map(float, g[9:13])
        t1, t2 = (int(g[13]) / 1000, int(g[14]) / 1000) if g[13] else (0.0, end - start)

        def y_at(t, y0=y0, y1=y1, t1=t1, t2=t2, start=start):  # libass's \move: linear between t1 and t2
            k = min(max((t - start - t1) / (t2 - t1), 0.0), 1.0) if t2 > t1 else 1.0
            return y0 + (y1 - y0) * k

        out.append((start, end, g[8], y_at, x0, g[15]))
    return out


def seconds_fully_visible(ev, rate=PREVIEW.rate, seconds=None):
    """Frames (as seconds) in which the event's whole row is inside the frame, sampled per frame."""
    start, end, _, y_at, _, _ = ev
    n = 0
    for f in range(math.floor(start * rate), math.ceil(end * rate) + 1):
        t = f / rate
        if start <= t < end and 0 <= y_at(t) and y_at(t) + NAME_H <= H:
            n += 1
    return n / rate


def test_426_artists_fit_a_90_second_roll_and_every_name_is_readable_in_the_ass(tmp_path):
    credits = credits_of(tmp_path, [f"Artist {i:03d}" for i in range(426)], roles=("writer", "camera", "music"))
    lay = layout(credits, Fraction(90), Fraction(3, 2))
    assert lay.name_on_screen_s >= Fraction(3, 2)
    doc = roll(credits, Fraction(90), Fraction(3, 2))
    names = [e for e in events(doc) if e[2] == "Name"]
    assert len(names) == 426 and {e[5] for e in names} == {f"Artist {i:03d}" for i in range(426)}
    # sampled frame by frame from the document libass will play, first and last names included
    shortest = min(seconds_fully_visible(e) for e in names)
    assert shortest >= 1.5 and shortest >= float(lay.name_on_screen_s) - 0.1
    first, last = names[0], names[-1]
    assert seconds_fully_visible(first) >= 1.5 and seconds_fully_visible(last) >= 1.5
    # the last row ends centred in the frame, held there to the end of the slot
    assert last[1] == pytest.approx(90, abs=0.01)
    assert last[3](90) == pytest.approx((H - NAME_H) / 2, abs=0.5)


def test_the_layout_arithmetic_agrees_with_itself_for_every_line(tmp_path):
    credits = credits_of(tmp_path, [f"N{i}" for i in range(120)], roles=("writer", "director", "sound design"))
    for seconds in (Fraction(20), Fraction(45), Fraction(300)):
        lay = layout(credits, seconds)
        for line in lay.lines:
            start, end = lay.fully_visible(line.y)
            assert end - start >= lay.name_on_screen_s
            assert lay.screen_y(line.y, start) == H - NAME_H  # wholly in view from here...
            assert 0 <= lay.screen_y(line.y, end) <= H - NAME_H  # ...to here
        assert lay.screen_y(lay.last_row_y, seconds) == lay.stop_y == (H - NAME_H) / 2
        assert lay.scroll_s <= seconds


def test_a_roll_that_cannot_fit_names_the_slot_that_would(tmp_path):
    credits = credits_of(tmp_path, [f"Artist {i:03d}" for i in range(2000)])
    with pytest.raises(UserError, match=r"needs a slot of at least (\d+) s") as err:
        layout(credits, Fraction(60), Fraction(2))
    need = int(re.search(r"at least (\d+) s", str(err.value)).group(1))
    assert layout(credits, Fraction(need), Fraction(2)).name_on_screen_s >= 2
    with pytest.raises(UserError):
        layout(credits, Fraction(need - 1), Fraction(2))


def test_columns_are_added_only_when_needed(tmp_path):
    few = credits_of(tmp_path / "few", [f"N{i}" for i in range(10)])
    assert layout(few, Fraction(60)).columns == 1
    many = credits_of(tmp_path / "many", [f"N{i}" for i in range(426)])
    lay = layout(many, Fraction(60))
    assert lay.columns > 1 and lay.name_on_screen_s >= 3


def test_long_and_wide_names_are_squeezed_into_their_column(tmp_path):
    credits = credits_of(tmp_path, [LONG_NAME, "李小龍" * 8] + [f"N{i}" for i in range(400)])
    doc = roll(credits, Fraction(60))
    assert layout(credits, Fraction(60)).columns > 1
    for name in (LONG_NAME, "李小龍" * 8):
        line = next(ln for ln in doc.splitlines() if ln.endswith(name))
        assert "\\fscx" in line and "\\q2" in line
    role = "assistant to the regional sound designer and foley artist supervisor, second unit"
    doc = roll(credits_of(tmp_path / "role", ["Ana"], roles=(role,)), Fraction(10))
    heading = next(ln for ln in doc.splitlines() if ln.endswith(role.upper()))
    assert "\\fscx" in heading


# --- rendered frames ---------------------------------------------------------------------------

def render(doc: str, frames: int, tmp_path) -> str:
    piece = Piece("credits", 0, (Shot("credits", frames, text=doc),))
    return str(render_piece(piece, {}, PREVIEW, "blur", Cache(tmp_path / "cache")).video)


def grab(video: str, numbers: list[int]) -> np.ndarray:
    """Luma of the given frame numbers, as uint8 arrays of (frame, y, x)."""
    select = "+".join(f"eq(n\\,{n})" for n in numbers)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", video, "-vf", f"select='{select}'", "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    out = np.frombuffer(raw, np.uint8).reshape(-1, PREVIEW.height, PREVIEW.width)
    assert len(out) == len(numbers)
    return out


INK = 128  # text is white on the house background (luma ~30)


def test_rendered_roll_shows_each_row_where_and_when_the_layout_says(tmp_path):
    names = HARD_NAMES + [LONG_NAME] + [f"Person {i:02d}" for i in range(44)]
    credits = credits_of(tmp_path, names, roles=("writer", "director", "music"))
    seconds = Fraction(12)
    lay = layout(credits, seconds)
    assert lay.columns == 2
    frames = round(seconds * PREVIEW.rate)
    video = render(roll(credits, seconds), frames, tmp_path)
    numbers = [20, 75, 150, 230, 290, frames - 1]
    heights = {"Title": 80, "Head": 52, "Name": NAME_H}
    col_w = column_width(lay.columns)
    checked = 0
    for n, img in zip(numbers, grab(video, numbers)):
        t = Fraction(n) / PREVIEW.rate
        ink = img > INK
        expected_rows = np.zeros(PREVIEW.height, bool)
        for line in lay.lines:
            y = lay.screen_y(line.y, t)
            top, bottom = math.floor((y - 8) * SCALE), math.ceil((y + heights[line.style] + 8) * SCALE)
            expected_rows[max(0, top): max(0, bottom)] = True
            if 0 <= y and y + heights[line.style] <= H:  # wholly in view: its ink is there, inside its column
                half = col_w / 2 if line.style == "Name" else (W - 2 * text.SAFE_X) / 2
                band = ink[math.floor(y * SCALE): math.ceil((y + heights[line.style]) * SCALE)]
                inside = band[:, math.floor((line.x - half) * SCALE): math.ceil((line.x + half) * SCALE)]
                assert inside.sum() > 20, (n, line.text)
                if line.style == "Name":
                    for edge in (line.x - half, line.x + half):  # nothing crosses a column boundary
                        x = round(edge * SCALE)
                        assert not band[:, x - 1: x + 1].any(), (n, line.text)
                checked += 1
        stray = ink.any(axis=1) & ~expected_rows
        assert not stray.any(), (n, np.flatnonzero(stray)[:10])
    assert checked > 40
    # the end: the last row held mid-frame, the first row long gone
    last = lay.lines[-1]
    end_band = grab(video, [frames - 1])[0][math.floor((H - NAME_H) / 2 * SCALE): math.ceil((H + NAME_H) / 2 * SCALE)]
    assert (end_band > INK).sum() > 20, last.text


def _slot(i: int) -> tuple[int, int]:
    """Top-left (script px) of slot ``i`` in a grid of 3 columns x 9 rows."""
    return 40 + 640 * (i // 9), 40 + 110 * (i % 9)


def _static(lines: list[str], size: int = 80) -> str:
    """A still document with each string left-aligned in its own grid slot, for glyph checks."""
    assert len(lines) <= 27
    evs = []
    for i, words in enumerate(lines):
        x, y = _slot(i)
        evs.append(text.event(f"{{\\an7\\q2\\pos({x},{y})}}" + text.escape(words), Fraction(2), "Name"))
    return text.document([text.style("Name", size, encoding=-1)], evs)


def _crop(img: np.ndarray, i: int) -> np.ndarray:
    """The inked bounding box of slot ``i`` of a ``_static`` document (preview px)."""
    x, y = _slot(i)
    band = img[round(y * SCALE): round((y + 110) * SCALE), round(x * SCALE): round((x + 620) * SCALE)] > INK
    ys, xs = np.nonzero(band)
    assert len(ys), f"line {i} has no ink"
    return band[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Same glyphs up to a pixel of anti-aliasing or placement."""
    if abs(a.shape[0] - b.shape[0]) > 1 or abs(a.shape[1] - b.shape[1]) > 1:
        return False
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return (a[:h, :w] != b[:h, :w]).mean() < 0.08


def test_every_script_renders_real_glyphs_in_the_right_order(tmp_path):
    tofu = "\u0378"  # unassigned: no font has it, so libass draws the missing-glyph box
    samples = {"arabic": "علي حسن", "hebrew": "דוד לוי", "devanagari": "अनीता", "cjk": "李小龍", "hangul": "김민지",
               "emoji": "🎸🌈🦄", "combining": "e\u0301a\u0308o\u0302", "greek": "Σοφία"}
    lines = [*samples.values(),
             *(tofu * len(s) for s in samples.values()),
             "\u05d0\u05d1\u05d2\u05d3",  # Hebrew alef-bet-gimel-dalet, logical order
             "\u202d\u05d3\u05d2\u05d1\u05d0\u202c",  # the same letters forced left-to-right, reversed
             "\u202d\u05d0\u05d1\u05d2\u05d3\u202c",  # forced left-to-right in logical order: the wrong look
             "\u0639\u0644\u064a",  # Arabic, joined by shaping
             "\u0639\u200c\u0644\u200c\u064a",  # the same letters kept apart: isolated forms
             "\u00e9\u00e4\u00f4", "e\u0301a\u0308o\u0302"]  # precomposed vs combining marks
    video = render(_static(lines, size=80), 30, tmp_path)
    img = grab(video, [15])[0]
    n = len(samples)
    assert _same(_crop(img, n + 3), _crop(img, n + 4))  # the comparison does see boxes as boxes
    for i, script in enumerate(samples):
        assert not _same(_crop(img, i), _crop(img, n + i)), f"{script} renders as missing-glyph boxes"
    assert not _same(_crop(img, 0), _crop(img, 1))  # and different scripts differ from each other
    k = 2 * n
    assert _same(_crop(img, k), _crop(img, k + 1)), "right-to-left text is not reordered"
    assert not _same(_crop(img, k), _crop(img, k + 2))
    assert not _same(_crop(img, k + 3), _crop(img, k + 4)), "Arabic is not shaped (letters not joined)"
    assert _same(_crop(img, k + 5), _crop(img, k + 6)), "combining marks do not compose"
