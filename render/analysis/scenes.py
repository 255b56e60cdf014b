"""Shot boundaries (PySceneDetect 0.7), per-shot quality and thumbnails (OpenCV).

scenedetect is imported here and nowhere else (OpenCV also in ``pictures``), and only when a
``ShotMeter`` is made: the picture meter's users (QC) do not pay for it. We never let scenedetect open a
file (its backends would bypass ffmpeg's protocol and demuxer allow-lists): ``pictures``
decodes the record through ``ffmpeg.untrusted_input`` at the project rate and feeds the small
BGR frames to ``ShotMeter.feed`` (``pictures`` depends on this module, never the reverse), which passes each to scenedetect's ``AdaptiveDetector``
(ContentDetector's HSV difference, compared with its neighbours' so camera motion does not
read as a cut) with project frame numbers as timecodes.

Per frame (OpenCV C code over a <=256x144 picture; Python only loops over frames):
- sharpness: variance of the Laplacian of the luma (relative to the analysis size);
- exposure: mean luma, fractions of pixels at >=250 and <=5;
- global motion: ``cv2.phaseCorrelate`` shift from the previous frame. Shakiness is the RMS of
  the motion minus its 9-frame moving average (jitter, not a deliberate pan), in % of the
  picture diagonal; frames repeated by the rate change are skipped.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from render.core.house import RATE
from render.core.timebase import FrameRange, timecode

VERSION = 1
MIN_SHOT_FRAMES = 15        # half a second: flashes and fast pans do not make shots shorter than this
THUMB_EVERY = 5             # candidate thumbnail every 5th frame (JPEG-encoded at once, ~8 kB each)
THUMB_QUALITY = 85


@dataclass(frozen=True, slots=True)
class ShotInfo(FrameRange):
    """One shot: project frames ``[start, end)`` and its picture quality."""

    sharpness: float           # mean variance of the Laplacian of the 256-px-wide luma (relative: >100 is crisp)
    brightness: float          # mean luma, 0..1
    over_exposed: float        # mean fraction of pixels at or over 250/255
    under_exposed: float       # mean fraction of pixels at or under 5/255
    shakiness: float           # RMS frame-to-frame jitter of global motion, % of the picture diagonal
    motion: float              # mean global motion, % of the diagonal per frame
    thumbnail: str = ""        # file name in the cache's "thumbs" folder (a small JPEG)
    thumbnail_frame: int = -1

    @property
    def quality(self) -> float:
        """A 0..1 score for choosing shots: sharp, well exposed, steady."""
        sharp = min(1.0, math.log10(1 + max(0.0, self.sharpness)) / 2.5)
        exposure = max(0.0, 1 - 2 * abs(self.brightness - 0.45)) * (1 - min(1.0, 2 * (self.over_exposed + self.under_exposed)))
        steady = 1 / (1 + self.shakiness)
        return round(0.4 * sharp + 0.35 * exposure + 0.25 * steady, 4)

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "start_tc": timecode(self.start, RATE),
                "sharpness": self.sharpness, "brightness": self.brightness, "over_exposed": self.over_exposed,
                "under_exposed": self.under_exposed, "shakiness": self.shakiness, "motion": self.motion,
                "quality": self.quality, "thumbnail": self.thumbnail, "thumbnail_frame": self.thumbnail_frame}

    @classmethod
    def from_json(cls, d: dict) -> ShotInfo:
        return cls(int(d["start"]), int(d["end"]), float(d["sharpness"]), float(d["brightness"]),
                   float(d["over_exposed"]), float(d["under_exposed"]), float(d["shakiness"]), float(d["motion"]),
                   d.get("thumbnail", ""), int(d.get("thumbnail_frame", -1)))


class ShotMeter:  # one concept, the shot detector's state over one decode; each method is short
    """Cuts, per-frame quality and thumbnail candidates, fed chunks of BGR frames; ``finish`` makes the shots."""

    def __init__(self, width: int, height: int, min_shot_frames: int = MIN_SHOT_FRAMES, rate: Fraction = RATE):
        from scenedetect import AdaptiveDetector, FrameTimecode  # confined to this module, loaded on use

        self.w, self.h, self.rate = width, height, rate
        self.timecode = FrameTimecode
        self.detector = AdaptiveDetector(min_scene_len=min_shot_frames)
        self.cuts: set[int] = set()
        self.sharp: list[float] = []
        self.bright: list[float] = []
        self.over: list[float] = []
        self.under: list[float] = []
        self.dx: list[float] = []
        self.dy: list[float] = []
        self.candidates: dict[int, bytes] = {}
        self.prev: np.ndarray | None = None
        self.prev_u8: np.ndarray | None = None
        self.hann = cv2.createHanningWindow((width, height), cv2.CV_32F)
        self.last_tc = None

    def _cut(self, timecodes) -> None:
        for tc in timecodes:
            n = tc.frame_num if hasattr(tc, "frame_num") else int(tc)
            if n > 0:
                self.cuts.add(int(n))

    def feed(self, frames: np.ndarray, first_index: int) -> None:
        for k in range(frames.shape[0]):  # frames, not pixels
            i = first_index + k
            img = frames[k]
            tc = self.timecode(i, fps=self.rate)
            self._cut(self.detector.process_frame(tc, img))
            self.last_tc = tc
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            self._exposure(gray)
            self._motion(gray)
            if i % THUMB_EVERY == 0:
                ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
                if ok:
                    self.candidates[i] = jpeg.tobytes()

    def _exposure(self, gray: np.ndarray) -> None:
        self.sharp.append(float(cv2.Laplacian(gray, cv2.CV_32F).var()))
        self.bright.append(float(gray.mean()) / 255)
        self.over.append(float(np.count_nonzero(gray >= 250)) / gray.size)
        self.under.append(float(np.count_nonzero(gray <= 5)) / gray.size)

    def _motion(self, gray: np.ndarray) -> None:
        g32 = gray.astype(np.float32)
        if self.prev is None or (self.prev_u8 is not None and cv2.norm(gray, self.prev_u8, cv2.NORM_L1) < 0.05 * gray.size):
            # the first frame, or a frame repeated by the rate change: no motion sample
            self.dx.append(math.nan)
            self.dy.append(math.nan)
        else:
            (sx, sy), _response = cv2.phaseCorrelate(self.prev, g32, self.hann)
            self.dx.append(float(sx))
            self.dy.append(float(sy))
        self.prev, self.prev_u8 = g32, gray

    def finish(self, frames: int, black=()) -> list[tuple[ShotInfo, bytes]]:
        """``[(ShotInfo, jpeg bytes), ...]`` covering frames ``[0, frames)``."""
        if self.last_tc is not None:
            self._cut(self.detector.post_process(self.last_tc))
        if frames <= 0:
            return []
        bounds = [0, *sorted(c for c in self.cuts if 0 < c < frames), frames]
        is_black = np.zeros(frames, bool)
        for r in black:
            is_black[r.start:r.end] = True
        sharp = np.asarray(self.sharp[:frames])
        dx, dy = np.asarray(self.dx[:frames]), np.asarray(self.dy[:frames])
        out = []
        for a, b in itertools.pairwise(bounds):
            shake, motion = self._shake_and_motion(dx[a + 1:b], dy[a + 1:b])
            best = self._thumbnail_frame(a, b, sharp, is_black)
            out.append((ShotInfo(
                start=a, end=b, sharpness=round(float(sharp[a:b].mean()), 2),
                brightness=round(float(np.mean(self.bright[a:b])), 4),
                over_exposed=round(float(np.mean(self.over[a:b])), 4),
                under_exposed=round(float(np.mean(self.under[a:b])), 4),
                shakiness=round(shake, 4), motion=round(motion, 4), thumbnail_frame=best,
            ), self.candidates.get(best, b"")))
        return out

    def _shake_and_motion(self, mx: np.ndarray, my: np.ndarray) -> tuple[float, float]:
        """Jitter and mean global motion (% of the diagonal) of a shot's motion samples (after its first frame:
        the first sample compares with the previous shot)."""
        keep = ~np.isnan(mx)
        mx, my = mx[keep], my[keep]
        if mx.size < 3:
            return 0.0, 0.0
        diag = math.hypot(self.w, self.h)
        k = min(9, mx.size)
        kernel = np.ones(k) / k
        jx = mx - np.convolve(mx, kernel, mode="same")
        jy = my - np.convolve(my, kernel, mode="same")
        shake = float(np.sqrt(np.mean(jx ** 2 + jy ** 2))) / diag * 100
        return shake, float(np.hypot(mx, my).mean()) / diag * 100

    def _thumbnail_frame(self, a: int, b: int, sharp: np.ndarray, is_black: np.ndarray) -> int:
        """The sharpest non-black candidate in the middle 80% of shot ``[a, b)`` (-1 when it has none)."""
        margin = (b - a) // 10
        cands = [i for i in range(a + margin, b - margin) if i in self.candidates and not is_black[i]]
        if not cands:
            cands = [i for i in range(a, b) if i in self.candidates]
        return max(cands, key=lambda i: sharp[i]) if cands else -1
