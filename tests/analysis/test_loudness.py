"""The loudness meter against EBU Tech 3341 (integrated, short-term) and Tech 3342 (LRA) cases.

Each case is generated from its definition by ffmpeg's own ``aevalsrc`` (a 1 kHz stereo sine at
given dBFS levels for given durations), so no reference files are needed.
"""

from __future__ import annotations

import pytest

from render.analysis import loudness


def tone(levels_dbfs: list[tuple[float, float]], rate: int = 48000) -> list[str]:
    """ffmpeg input args: a stereo 1 kHz sine at each (dBFS, seconds) in turn (peak = 10^(dBFS/20))."""
    expr, t0 = "0", 0.0
    bounds = []
    for level, seconds in levels_dbfs:
        bounds.append((t0, t0 + seconds, 10 ** (level / 20)))
        t0 += seconds
    for start, end, amp in reversed(bounds):
        expr = f"if(lt(t\\,{end})\\,{amp:.9f}\\,{expr})"
    wave = f"({expr})*sin(2*PI*1000*t)"
    return ["-f", "lavfi", "-i", f"aevalsrc={wave}|{wave}:s={rate}:d={t0}"]


def meter(levels):
    return loudness.measure(tone(levels), "0:a:0", timeout_s=120)


def test_tech3341_case1_steady_sine_reads_minus23():
    value = meter([(-23.0, 20.0)])
    assert value.integrated_lufs == pytest.approx(-23.0, abs=0.1)
    assert value.max_short_term_lufs == pytest.approx(-23.0, abs=0.1)
    assert value.true_peak_dbtp == pytest.approx(-23.0, abs=0.3)
    assert value.lra_lu == pytest.approx(0.0, abs=0.5)


@pytest.mark.parametrize("levels", [
    [(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)],      # Tech 3341 case 3 (relative gate)
    [(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)],      # Tech 3341 case 5
], ids=["case3", "case5"])
def test_tech3341_gated_sequences_read_minus23(levels):
    value = meter(levels)
    assert value.integrated_lufs == pytest.approx(-23.0, abs=0.1)


def test_max_short_term_is_the_loudest_three_seconds():
    value = meter([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)])
    assert value.max_short_term_lufs == pytest.approx(-20.0, abs=0.1)


@pytest.mark.parametrize("levels,lra", [
    ([(-20.0, 20.0), (-30.0, 20.0)], 10.0),
    ([(-20.0, 20.0), (-15.0, 20.0)], 5.0),
    ([(-40.0, 20.0), (-20.0, 20.0)], 20.0),
    ([(-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)], 15.0),
], ids=["case1", "case2", "case3", "case4"])
def test_tech3342_loudness_range(levels, lra):
    assert meter(levels).lra_lu == pytest.approx(lra, abs=1.0)


def test_digital_silence_is_silent():
    value = meter([(-200.0, 5.0)])
    assert value.silent
    assert value.max_short_term_lufs <= -70


def test_json_round_trip():
    value = loudness.Loudness(-23.0, 5.0, -1.0, -20.0)
    assert loudness.Loudness.from_json(value.to_json()) == value
    # documents written before max short-term was measured still load
    assert loudness.Loudness.from_json({"integrated_lufs": -23.0, "lra_lu": 5.0, "true_peak_dbtp": -1.0}).max_short_term_lufs is None
