"""Picture analysis of a video record, in one decode pass: shots, black, frozen, flashing, quality.

ffmpeg decodes the record exactly as the render path does up to the frame-rate change
(``setpts=PTS-STARTPTS``, the conform prelude, ``fps=30000/1001``), so frame ``n`` here is frame
``n`` of the shot the compositor would cut starting at the record's first frame: every time is an
exact project frame. Then it scales to a small analysis picture (at most 256x144, BGR) streamed to
numpy through a pipe; no pixel loops through Python. Per-pixel arithmetic (linear light, luma, the
red measure) is OpenCV's over a whole chunk of frames at once: C code that releases the GIL, so two
records analysed on two threads use two cores, at half numpy's cost (589 against 274 us of CPU per
frame on the demo's uploads; numpy's table lookup of uint8 pixels alone took a third). Per-frame
statistics are numpy's. It measures:

- **black**: at least 98% of the picture under 10% luma (ffmpeg blackdetect's defaults);
- **frozen**: the mean absolute change from the previous frame under ``FREEZE_DIFF`` (of 255) for
  at least ``FREEZE_MIN_S`` (freezedetect's 2 s);
- **flashing** (Ofcom / ITC guidance after Harding; W3C's general and red flash thresholds): the
  picture is split in a 16x9 grid; in each block a *transition* is a swing of relative luminance
  (linear sRGB, BT.709 weights) of at least 0.1 whose darker side is under 0.8, or a swing of at
  least 20 in the saturated-red measure (``max(0, R-G-B) * 320`` where ``R/(R+G+B) >= 0.8``). A flash
  is a pair of opposite transitions, so more than 3 flashes a second is 7 or more transitions within
  one second (30 frames). Frames where blocks covering more than 25% of the screen flash that fast
  are flagged, with the second that holds them.

Shot boundaries, per-shot quality and thumbnails come from ``scenes`` (scenedetect + OpenCV).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from render.analysis import scenes
from render.analysis.scenes import ShotInfo, ShotMeter
from render.core import ffmpeg
from render.core.cache import Cache, atomic_path, key_of
from render.core.house import RATE
from render.core.pipe import stream
from render.core.timebase import FrameRange, timecode
from render.intake.conform import display_size, picture_prelude

VERSION = 1
MAX_W, MAX_H = 256, 144
BLACK_LUMA = 26                # 10% of 255
BLACK_RATIO = 0.98
BLACK_MIN_FRAMES = 3
FREEZE_DIFF = 0.6              # mean |change| (of 255) under which a frame repeats the previous one
FREEZE_MIN_S = 2.0
GRID = (16, 9)                 # blocks across, down, for flashing
FLASH_DELTA = 0.10             # relative luminance swing that is a transition
FLASH_DARK = 0.80              # ... when its darker side is under this
RED_DELTA = 20.0               # saturated-red swing that is a transition
FLASH_AREA = 0.25              # of the screen
FLASH_MAX_PER_S = 3            # more than this many flashes a second is a risk


def range_json(r: FrameRange) -> dict:
    """A range of project frames as analysis.json writes it (with timecodes for people)."""
    return {"start": r.start, "end": r.end, "start_tc": timecode(r.start, RATE), "end_tc": timecode(r.end, RATE)}


def range_from_json(d: dict) -> FrameRange:
    return FrameRange(int(d["start"]), int(d["end"]))


@dataclass(frozen=True, slots=True)
class FlashRange(FrameRange):
    """Project frames ``[start, end)`` that flash too fast over too much of the screen."""

    kind: str                  # "luminance" or "red"
    flashes_per_s: float       # the most flashes in one second, over the flashing area
    area: float                # the largest fraction of the screen flashing that fast

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "kind": self.kind, "flashes_per_s": self.flashes_per_s,
                "area": self.area, "start_tc": timecode(self.start, RATE), "end_tc": timecode(self.end, RATE)}

    @classmethod
    def from_json(cls, d: dict) -> FlashRange:
        return cls(int(d["start"]), int(d["end"]), d["kind"], float(d["flashes_per_s"]), float(d["area"]))


@dataclass(frozen=True, slots=True)
class PictureAnalysis:
    frames: int                          # project frames decoded
    width: int                           # analysis picture size
    height: int
    shots: tuple[ShotInfo, ...]
    black: tuple[FrameRange, ...]
    frozen: tuple[FrameRange, ...]
    flashes: tuple[FlashRange, ...]

    @property
    def cuts(self) -> tuple[int, ...]:
        """First frames of every shot after the first."""
        return tuple(s.start for s in self.shots[1:])

    @property
    def flash_risk(self) -> bool:
        return bool(self.flashes)

    def to_json(self) -> dict:
        return {"version": VERSION, "frames": self.frames, "width": self.width, "height": self.height,
                "rate": str(RATE), "shots": [s.to_json() for s in self.shots],
                "black": [range_json(r) for r in self.black], "frozen": [range_json(r) for r in self.frozen],
                "flashes": [r.to_json() for r in self.flashes]}

    @classmethod
    def from_json(cls, d: dict) -> PictureAnalysis:
        return cls(int(d["frames"]), int(d["width"]), int(d["height"]),
                   tuple(ShotInfo.from_json(s) for s in d["shots"]),
                   tuple(range_from_json(r) for r in d["black"]),
                   tuple(range_from_json(r) for r in d["frozen"]),
                   tuple(FlashRange.from_json(r) for r in d["flashes"]))


# ---------------------------------------------------------------------------------------------
# numpy meters

def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    if mask.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


# Our parallelism is across records and pieces; OpenCV's own thread pool on top of it only spins:
# one thread measured 274 against 352 us of CPU per frame on the demo's uploads.
cv2.setNumThreads(1)

_SRGB_TO_LINEAR = np.array([(c / 255 / 12.92) if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4
                            for c in range(256)], dtype=np.float32)
_AS_FLOAT = np.arange(256, dtype=np.float32)
# cv2.transform rows over BGR pixels
_LUMA_BGR = np.array([[0.0722, 0.7152, 0.2126]], np.float32)
_RED_EXCESS = np.array([[-1.0, -1.0, 1.0]], np.float32)       # R - G - B
# R >= 0.8 (R + G + B) + 1e-6  <=>  R - 4 (G + B) >= 5e-6 (cv2.threshold tests >: equal to float precision)
_RED_SHARE = np.array([[-4.0, -4.0, 1.0]], np.float32)
_RED_MARGIN = 5e-6


def luma_of(frames: np.ndarray) -> np.ndarray:
    """Gamma-encoded BT.709 luma (0..255, float32) of BGR frames ``(n, h, w, 3)`` -> ``(n, h, w)``."""
    n, h, w, _ = frames.shape
    return cv2.transform(cv2.LUT(frames.reshape(n * h, w, 3), _AS_FLOAT), _LUMA_BGR).reshape(n, h, w)


class SwingCounter:
    """Per block, transitions of a signal that swings by at least ``delta`` (hysteresis), vectorised over blocks."""

    def __init__(self, blocks: int, delta: float, dark_limit: float | None = None):
        self.delta = delta
        self.dark = dark_limit
        self.ext: np.ndarray | None = None     # extreme since the last transition
        self.dir = np.zeros(blocks, np.int8)   # +1 rising, -1 falling, 0 not yet known

    def step(self, v: np.ndarray) -> np.ndarray:
        """Feed one frame's block values; return a bool per block: a transition happened here."""
        if self.ext is None:
            self.ext = v.copy()
            return np.zeros(v.shape, bool)
        ext, d = self.ext, self.dir
        ok = np.ones(v.shape, bool) if self.dark is None else np.minimum(ext, v) < self.dark
        up = (v - ext >= self.delta) & ok & (d <= 0)
        down = (ext - v >= self.delta) & ok & (d >= 0)
        # follow the extreme in the current direction
        follow_up = (d > 0) & (v > ext)
        follow_down = (d < 0) & (v < ext)
        ext = np.where(up | down | follow_up | follow_down, v, ext)
        d = np.where(up, 1, np.where(down, -1, d)).astype(np.int8)
        self.ext, self.dir = ext, d
        return up | down


def _block_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``GRID`` blocks of a picture: pixels per block, and the 0/1 matrices that sum rows into block
    rows ``(blocks down, h)`` and columns into block columns ``(w, blocks across)``."""
    gx, gy = GRID
    xe = np.linspace(0, width, gx + 1).astype(int)
    ye = np.linspace(0, height, gy + 1).astype(int)
    ys, xs = np.arange(height), np.arange(width)[:, None]
    rows = ((ys >= ye[:-1, None]) & (ys < ye[1:, None])).astype(np.float32)
    cols = ((xs >= xe[:-1]) & (xs < xe[1:])).astype(np.float32)
    return np.outer(np.diff(ye), np.diff(xe)).ravel(), rows, cols


class PictureMeter:
    """Black, frozen and flashing, fed chunks of BGR frames ``(n, h, w, 3)`` uint8."""

    def __init__(self, width: int, height: int):
        # block means as two products with 0/1 matrices: BLAS over a whole chunk, a third of the
        # cost of summing slices
        self.block_px, self.rows, self.cols = _block_grid(width, height)
        blocks = GRID[0] * GRID[1]
        self.lum = SwingCounter(blocks, FLASH_DELTA, FLASH_DARK)
        self.red = SwingCounter(blocks, RED_DELTA)
        self.black: list[np.ndarray] = []
        self.diff: list[np.ndarray] = []
        self.lum_t: list[np.ndarray] = []
        self.red_t: list[np.ndarray] = []
        self.prev_luma: np.ndarray | None = None

    def _blocks(self, img: np.ndarray) -> np.ndarray:
        """Block means of ``(n, h, w)`` -> ``(n, blocks)``."""
        s = self.rows @ img @ self.cols
        return s.reshape(img.shape[0], -1) / self.block_px

    def feed(self, frames: np.ndarray) -> np.ndarray:
        """Measure a chunk of frames; returns their luma (``luma_of``) for callers that measure more."""
        n, h, w, _ = frames.shape
        luma = luma_of(frames)
        self.black.append((luma < BLACK_LUMA).mean(axis=(1, 2)) >= BLACK_RATIO)
        prev = self.prev_luma if self.prev_luma is not None else luma[:1]
        stacked = np.concatenate([prev, luma], axis=0)
        self.diff.append(np.abs(np.diff(stacked, axis=0)).mean(axis=(1, 2)))
        self.prev_luma = luma[-1:]
        linear = cv2.LUT(frames.reshape(n * h, w, 3), _SRGB_TO_LINEAR)
        rel = self._blocks(cv2.transform(linear, _LUMA_BGR).reshape(n, h, w))
        # the saturated-red measure where red is at least 80% of the light, else 0
        share = cv2.threshold(cv2.transform(linear, _RED_SHARE), _RED_MARGIN, 320.0, cv2.THRESH_BINARY)[1]
        red = self._blocks(cv2.multiply(cv2.transform(linear, _RED_EXCESS), share).reshape(n, h, w))
        for i in range(n):  # frames, not pixels: a 144-block vector each
            self.lum_t.append(self.lum.step(rel[i]))
            self.red_t.append(self.red.step(red[i]))
        return luma

    # -- results ------------------------------------------------------------------------------

    def black_ranges(self) -> tuple[FrameRange, ...]:
        black = np.concatenate(self.black) if self.black else np.zeros(0, bool)
        n = black.size
        return tuple(FrameRange(a, b) for a, b in _runs(black)
                     if b - a >= BLACK_MIN_FRAMES or a == 0 or b == n)

    def frozen_ranges(self) -> tuple[FrameRange, ...]:
        if not self.diff:
            return ()
        still = np.concatenate(self.diff) < FREEZE_DIFF
        still[0] = False  # the first frame has nothing to repeat
        need = math.ceil(FREEZE_MIN_S * RATE)
        # a frozen range starts at the frame that is repeated
        return tuple(FrameRange(a - 1, b) for a, b in _runs(still) if b - a + 1 >= need)

    def flash_ranges(self) -> tuple[FlashRange, ...]:
        out = [r for kind, rows in (("luminance", self.lum_t), ("red", self.red_t)) if rows
               for r in self._flashing(kind, np.stack(rows).astype(np.int32))]
        return tuple(sorted(out, key=lambda f: (f.start, f.kind)))

    def _flashing(self, kind: str, t: np.ndarray) -> list[FlashRange]:
        """Ranges where blocks over ``FLASH_AREA`` of the screen swing too often, from transitions ``t`` (frames x blocks)."""
        window = round(RATE)  # 30 frames, one second
        cs = np.cumsum(np.vstack([np.zeros((1, t.shape[1]), np.int32), t]), axis=0)
        counts = cs[window:] - cs[:-window] if t.shape[0] >= window else cs[-1:] - cs[:1]
        limit = 2 * FLASH_MAX_PER_S + 1  # 7 transitions: more than 3 flashes
        weights = self.block_px / self.block_px.sum()
        area = ((counts >= limit) * weights).sum(axis=1)
        out = []
        for a, b in _runs(area > FLASH_AREA):
            # window index k covers frames [k, k + window)
            start, end = a, min(t.shape[0], b - 1 + window)
            out.append(FlashRange(start, end, kind, round(float(counts[a:b].max()) / 2, 1),
                                  round(float(area[a:b].max()), 3)))
        return out


# ---------------------------------------------------------------------------------------------
# decoding and the analysis

def analysis_size(media) -> tuple[int, int]:
    """The analysis picture: the upright display aspect within MAX_W x MAX_H, even sides."""
    dw, dh = display_size(media)
    scale = min(MAX_W / dw, MAX_H / dh)
    w = max(16, round(dw * scale / 2) * 2)
    h = max(16, round(dh * scale / 2) * 2)
    return w, h


def decode_argv(input_args: list[str], stream_spec: str, media, width: int, height: int) -> list[str]:
    chain = ",".join(["setpts=PTS-STARTPTS", *picture_prelude(media), f"fps={RATE}",
                      f"scale={width}:{height}:flags=area", "setsar=1", "format=bgr24"])
    return [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "error", *input_args, "-map", stream_spec,
            "-an", "-sn", "-dn", "-vf", chain, "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]


def analyze_input(input_args: list[str], stream_spec: str, media, *, thumbs_dir: Path | None = None,
                  thumb_prefix: str = "", timeout_s: float = 900) -> PictureAnalysis:
    """Analyse a video stream given as ffmpeg input args; thumbnails go to ``thumbs_dir`` when given."""
    w, h = analysis_size(media)
    size = w * h * 3
    meter = PictureMeter(w, h)
    shots = ShotMeter(w, h)
    count = [0]

    def on_chunk(data: bytes) -> None:
        frames = np.frombuffer(data, np.uint8).reshape(-1, h, w, 3)
        meter.feed(frames)
        shots.feed(frames, count[0])
        count[0] += frames.shape[0]

    stream(decode_argv(input_args, stream_spec, media, w, h), size, on_chunk, timeout_s=timeout_s, records_per_chunk=32)
    n = count[0]
    black = meter.black_ranges()
    infos = shots.finish(n, black)
    if thumbs_dir is not None:
        named = []
        for i, (info, jpeg) in enumerate(infos):
            name = f"{thumb_prefix}{i:04d}.jpg" if jpeg else ""
            if jpeg:
                target = thumbs_dir / name
                with atomic_path(target) as tmp:
                    tmp.write_bytes(jpeg)
            named.append(dataclasses.replace(info, thumbnail=name))
        shot_list = tuple(named)
    else:
        shot_list = tuple(info for info, _ in infos)
    return PictureAnalysis(n, w, h, shot_list, black, meter.frozen_ranges(), meter.flash_ranges())


def cache_key(content_hash: str) -> str:
    return key_of("pictures", content_hash, VERSION, scenes.VERSION, str(RATE), MAX_W, MAX_H, BLACK_LUMA,
                  BLACK_RATIO, FREEZE_DIFF, FREEZE_MIN_S, GRID, FLASH_DELTA, RED_DELTA, FLASH_AREA)


def thumbnail_path(cache: Cache, shot: ShotInfo) -> Path | None:
    """Where a shot's thumbnail JPEG is (None when it has none)."""
    return cache.root / "thumbs" / shot.thumbnail[:2] / shot.thumbnail if shot.thumbnail else None


def analyze_pictures(source, cache: Cache | None = None, *, timeout_s: float | None = None) -> PictureAnalysis | None:
    """Analyse a video record's pictures (a ``render.intake.records.Source``), cached by content; None for stills/audio."""
    media = source.media
    if media is None or media.video is None or media.is_image:
        return None
    key = cache_key(source.content_hash)
    if cache is not None:
        cached = cache.read_json("analysis-pictures", key)
        if cached is not None and cached.get("version") == VERSION:
            result = PictureAnalysis.from_json(cached)
            if all(thumbnail_path(cache, s) is None or thumbnail_path(cache, s).exists() for s in result.shots):
                return result
    seconds = float(media.duration_s or 60)
    thumbs_dir = None
    if cache is not None:
        thumbs_dir = cache.root / "thumbs" / key[:2]
    result = analyze_input(ffmpeg.untrusted_input(source.link, source.demuxer), f"0:{media.video.index}", media,
                           thumbs_dir=thumbs_dir, thumb_prefix=f"{key}-", timeout_s=timeout_s or 120 + 6 * seconds)
    if cache is not None:
        cache.write_json("analysis-pictures", key, result.to_json())
    return result
