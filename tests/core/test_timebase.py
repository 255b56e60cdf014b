from fractions import Fraction

import pytest

from render.core.timebase import FrameRange, parse_duration, samples_for, split_samples, timecode, to_frames

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize("text,seconds", [("22:00", 1320), ("1:02:03.5", Fraction(7447, 2)), ("90", 90),
                                          (4.5, Fraction(9, 2)), ("0:04", 4), ("2s", 2)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["22:70", "ten", "-3", "1:60:00"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_22_minutes_is_39560_frames_and_exact_samples():
    frames = to_frames(parse_duration("22:00"), NTSC)
    assert frames == 39560
    assert timecode(frames, NTSC) == "00:21:59.985"
    # 5 frames at 29.97 are exactly 8008 samples at 48 kHz
    assert samples_for(5, NTSC) == 8008


def test_split_samples_sums_exactly():
    parts = [7, 13, 1, 90, 3, 29]
    assert sum(split_samples(parts, NTSC)) == samples_for(sum(parts), NTSC)


def test_frame_range_is_half_open_and_refuses_to_run_backwards():
    r = FrameRange(10, 20)
    assert r.length == 10 and 10 in r and 20 not in r
    assert not r.overlaps(FrameRange(20, 30)) and r.overlaps(FrameRange(19, 30))
    assert r.intersection(FrameRange(15, 40)) == FrameRange(15, 20)
    assert r.intersection(FrameRange(20, 40)) is None
    assert r.shifted(-10) == FrameRange(0, 10)
    assert r.seconds(Fraction(30000, 1001)) == (Fraction(1001, 3000), Fraction(1001, 1500))
    with pytest.raises(ValueError, match="cannot end"):
        FrameRange(5, 4)
