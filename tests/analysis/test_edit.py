"""The planner's helpers: trimming dead heads and tails, best excerpts on shot boundaries, beats, flash exclusion."""

from __future__ import annotations

import itertools

from render.analysis import edit
from render.analysis.audio import AudioAnalysis, Span
from render.analysis.loudness import Loudness
from render.analysis.pictures import FlashRange, PictureAnalysis
from render.analysis.scenes import ShotInfo
from render.core.timebase import FrameRange


def shot(a, b, sharp=200.0, shake=0.1):
    return ShotInfo(a, b, sharp, 0.45, 0.0, 0.0, shake, 0.2)


def pics(shots, black=(), frozen=(), flashes=(), frames=None):
    return PictureAnalysis(frames or shots[-1].end, 256, 144, tuple(shots), tuple(black), tuple(frozen), tuple(flashes))


def sound(samples, dead_air=(), beats=()):
    return AudioAnalysis(samples, Loudness(-20, 5, -3, -18), tuple(dead_air), tuple(dead_air), (), 0, "music", 0, 1,
                         beats=tuple(beats), beat_frames=tuple(b * 30000 // 1001 // 48000 for b in beats))


def test_black_head_and_frozen_tail_are_trimmed():
    p = pics([shot(0, 100), shot(100, 300)], black=[FrameRange(0, 20)], frozen=[FrameRange(240, 300)])
    assert edit.usable_range(300, pictures=p) == (20, 240)


def test_dead_air_trimmed_for_sound_records_only_by_default():
    a = sound(480000, dead_air=[Span(0, 48000), Span(432000, 480000)])  # 1 s head, 1 s tail of 10 s
    # frames that hold any sound are kept: sound starts at 1.0 s, inside frame 29 (0.968..1.001 s),
    # and stops at 9.0 s, inside frame 269 (8.976..9.009 s)
    assert edit.usable_range(300, audio=a) == (29, 270)
    p = pics([shot(0, 300)])
    assert edit.usable_range(300, audio=a, pictures=p) == (0, 300)
    assert edit.usable_range(300, audio=a, pictures=p, trim_silence=True) == (29, 270)


def test_nothing_left_means_keep_all():
    p = pics([shot(0, 100)], black=[FrameRange(0, 100)])
    assert edit.usable_range(100, pictures=p) == (0, 100)


def test_best_excerpt_starts_on_the_best_shot_and_avoids_flashes():
    shots = [shot(0, 90, sharp=20), shot(90, 200, sharp=900), shot(200, 400, sharp=400)]
    p = pics(shots)
    assert edit.best_excerpt(p, 90) == 90
    flashing = pics(shots, flashes=[FlashRange(100, 150, "luminance", 5.0, 1.0)])
    start = edit.best_excerpt(flashing, 90)
    assert start == 200 and edit.flash_free(flashing, start, start + 90)
    assert edit.best_excerpt(pics([shot(0, 100)], flashes=[FlashRange(0, 100, "red", 5, 1)]), 50) is None


def test_beat_cuts_keep_a_minimum_gap():
    beats = [round(i * 0.25 * 48000) for i in range(40)]  # 240 bpm: a beat every 7.5 frames
    a = sound(480000, beats=beats)
    cuts = edit.beat_cuts(a, 0, 300, min_gap=15)
    assert cuts[0] == 0 and all(b - a >= 15 for a, b in itertools.pairwise(cuts))
    assert set(cuts) <= set(a.beat_frames)
