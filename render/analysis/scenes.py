"""Shot boundaries (PySceneDetect 0.7), per-shot quality and thumbnails (OpenCV).

scenedetect is imported here and nowhere else (OpenCV also in ``pictures``). We never let scenedetect open a
file (its backends would bypass ffmpeg's protocol and demuxer allow-lists): ``pictures``
decodes the record through ``ffmpeg.untrusted_input`` at the project rate and feeds the small
BGR frames to ``ShotMeter.feed``, which passes each to scenedetect's ``AdaptiveDetector``
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
from fractions import Fraction

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, FrameTimecode

from render.core.house import RATE

VERSION = 1
MIN_SHOT_FRAMES = 15        # half a second: flashes and fast pans do not make shots shorter than this
THUMB_EVERY = 5             # candidate thumbnail every 5th frame (JPEG-encoded at once, ~8 kB each)
THUMB_QUALITY = 85


class ShotMeter:
    def __init__(self, width: int, height: int, min_shot_frames: int = MIN_SHOT_FRAMES, rate: Fraction = RATE):
        self.w, self.h, self.rate = width, height, rate
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
        self.last_tc: FrameTimecode | None = None

    def _cut(self, timecodes) -> None:
        for tc in timecodes:
            n = tc.frame_num if hasattr(tc, "frame_num") else int(tc)
            if n > 0:
                self.cuts.add(int(n))

    def feed(self, frames: np.ndarray, first_index: int) -> None:
        for k in range(frames.shape[0]):  # frames, not pixels
            i = first_index + k
            img = frames[k]
            tc = FrameTimecode(i, fps=self.rate)
            self._cut(self.detector.process_frame(tc, img))
            self.last_tc = tc
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            self.sharp.append(float(cv2.Laplacian(gray, cv2.CV_32F).var()))
            self.bright.append(float(gray.mean()) / 255)
            self.over.append(float(np.count_nonzero(gray >= 250)) / gray.size)
            self.under.append(float(np.count_nonzero(gray <= 5)) / gray.size)
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
            if i % THUMB_EVERY == 0:
                ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
                if ok:
                    self.candidates[i] = jpeg.tobytes()

    def finish(self, frames: int, black=()) -> list[tuple]:
        """``[(ShotInfo, jpeg bytes), ...]`` covering frames ``[0, frames)``."""
        from render.analysis.pictures import ShotInfo

        if self.last_tc is not None:
            self._cut(self.detector.post_process(self.last_tc))
        if frames <= 0:
            return []
        bounds = [0, *sorted(c for c in self.cuts if 0 < c < frames), frames]
        is_black = np.zeros(frames, bool)
        for r in black:
            is_black[r.start:r.end] = True
        sharp = np.asarray(self.sharp[:frames])
        diag = math.hypot(self.w, self.h)
        dx, dy = np.asarray(self.dx[:frames]), np.asarray(self.dy[:frames])
        out = []
        for a, b in itertools.pairwise(bounds):
            sl = slice(a, b)
            # motion inside the shot (the first sample compares with the previous shot)
            mx, my = dx[a + 1:b], dy[a + 1:b]
            keep = ~np.isnan(mx)
            mx, my = mx[keep], my[keep]
            if mx.size >= 3:
                mag = np.hypot(mx, my)
                k = min(9, mx.size)
                kernel = np.ones(k) / k
                jx = mx - np.convolve(mx, kernel, mode="same")
                jy = my - np.convolve(my, kernel, mode="same")
                shake = float(np.sqrt(np.mean(jx ** 2 + jy ** 2))) / diag * 100
                motion = float(mag.mean()) / diag * 100
            else:
                shake = motion = 0.0
            # thumbnail: the sharpest non-black candidate in the middle 80% of the shot
            margin = (b - a) // 10
            cands = [i for i in range(a + margin, b - margin) if i in self.candidates and not is_black[i]]
            if not cands:
                cands = [i for i in range(a, b) if i in self.candidates]
            best = max(cands, key=lambda i: sharp[i]) if cands else -1
            out.append((ShotInfo(
                start=a, end=b, sharpness=round(float(sharp[sl].mean()), 2),
                brightness=round(float(np.mean(self.bright[a:b])), 4),
                over_exposed=round(float(np.mean(self.over[a:b])), 4),
                under_exposed=round(float(np.mean(self.under[a:b])), 4),
                shakiness=round(shake, 4), motion=round(motion, 4), thumbnail_frame=best,
            ), self.candidates.get(best, b"")))
        return out
