"""Transitions (issue 5): cut, crossfade and dip to black, within and between segments, measured in the
rendered episode. A transition sits on its cut and never changes a length: the runtime stays exact."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from render.compose import pieces as compose
from render.compose.store import piece_key
from render.core.errors import SpecError
from render.core.house import PROFILES
from render.edit.spec import load_spec
from render.edit.timeline import Segment, Shot, Timeline, Transition
from tests.support.callouts import write_callout
from tests.support.media import ffprobe, lavfi

RATE = Fraction(30000, 1001)
SR = 48000
# a flat colour and a steady tone per clip: each side of a blend is told apart by colour channel and pitch
CLIPS = {  # record: (colour, tone Hz)
    "RED": ("0xFF0000", 440),
    "BLUE": ("0x2040FF", 1320),
    "GREEN": ("0x00C000", 660),
    "YELLOW": ("0xFFD000", 880),
}
SPEC = """\
title: "RE: Transitions"
callout: callout
runtime: "0:13"
segments:
  - {{id: mix, type: montage, shot_seconds: 3, transition: {{type: crossfade, seconds: 1}},
     select: {{records: [RED, BLUE], order: listed}}}}
  - {{id: dip, type: feature, record: GREEN, seconds: 3, transition_in: "dip 1s"}}
  - {{id: over, type: feature, record: YELLOW, seconds: 3, start: 0.5,
     transition_in: {{type: crossfade, seconds: {over}}}}}
  - {{id: end, type: card, text: "The End", seconds: 1, transition_in: {{type: crossfade, seconds: 4}}}}
"""
CUT_MIX, CUT_DIP, CUT_OVER = 90, 180, 270  # programme frames of the cuts (3 s shots: 90 frames each)


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, cache_dir):
    """The spec built once, then again with the boundary crossfade lengthened."""
    root = tmp_path_factory.mktemp("transitions")
    media = root / "media"
    media.mkdir()
    files = {}
    for rid, (colour, hz) in CLIPS.items():
        files[f"m/{rid.lower()}.mp4"] = lavfi(
            media / f"{rid.lower()}.mp4", f"color=c={colour}:s=320x180:r=30000/1001:d=4[out0];sine=f={hz}:d=4[out1]",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest")
    write_callout(root / "callout", [
        {"record_id": rid, "file": f"m/{rid.lower()}.mp4", "kind": "video", "title": rid.title(), "contributors": "ana"}
        for rid in CLIPS], [("ana", "Ana", "MX")], files)
    from flows.pipeline import build_flow

    spec = root / "spec.yaml"
    spec.write_text(SPEC.format(over=0.5))
    first = build_flow(str(spec), "preview", str(root / "out"), str(cache_dir))
    folder = root / "out" / "spec" / "preview"
    episode = {"frames": _frames(folder / "episode.mp4"), "sound": _sound(folder / "episode.mp4"),
               "probe": ffprobe(folder / "episode.mp4")}
    spec.write_text(SPEC.format(over=0.8))
    second = build_flow(str(spec), "preview", str(root / "out"), str(cache_dir))
    return first, episode, second, folder


def _frames(path) -> np.ndarray:
    """Every frame's mean colour over the picture's centre (RGB, 0-255)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf", "scale=64:36,format=rgb24",
                          "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 36, 64, 3).astype(float)
    return frames[:, 9:27, 16:48].mean(axis=(1, 2))


def _sound(path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(SR), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).astype(np.float64)


def _tones(sound: np.ndarray, frame: int, *hz: int) -> list[float]:
    """Magnitude of each tone in the programme frame ``frame`` (a Hann-windowed frame-long FFT)."""
    a = round(frame / RATE * SR)
    block = sound[a:a + 1600] * np.hanning(1600)
    spectrum = np.abs(np.fft.rfft(block, 16000))
    return [float(spectrum[round(f * 16000 / SR)]) for f in hz]


def _luma(rgb: np.ndarray) -> float:
    return float(16 + (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) * 219 / 255)


def test_transitions_never_change_the_runtime(built):
    build, episode, _, _ = built
    frames = round(13 * RATE)
    assert build["frames"] == frames
    video = next(s for s in episode["probe"]["streams"] if s["codec_type"] == "video")
    audio = next(s for s in episode["probe"]["streams"] if s["codec_type"] == "audio")
    assert int(video["nb_frames"]) == len(episode["frames"]) == frames  # the same as the cut with cuts only
    assert abs(float(audio["duration"]) - frames / RATE) < 0.03
    cuts = {s["id"]: s["start_frame"] for s in build["segments"]}
    assert cuts == {"mix": 0, "dip": CUT_DIP, "over": CUT_OVER, "end": 360}  # every cut where the cut spec has it
    shots = [h for s in build["segments"] for h in s["shots"]]
    assert [h.get("transition") for h in shots] == [
        None,
        {"kind": "crossfade", "frames": 30, "cut_frame": CUT_MIX, "cut": "00:00:03.003"},
        {"kind": "dip", "frames": 30, "cut_frame": CUT_DIP, "cut": "00:00:06.006"},
        {"kind": "crossfade", "frames": 15, "cut_frame": CUT_OVER, "cut": "00:00:09.009"},
        {"kind": "crossfade", "frames": 60, "cut_frame": 360, "cut": "00:00:12.012"},
    ]


def test_a_crossfade_blends_picture_and_sound_across_the_cut(built):
    _, episode, _, _ = built
    frames, sound = episode["frames"], episode["sound"]
    half = 15 + 2
    red, mixed, blue = frames[CUT_MIX - half], frames[CUT_MIX], frames[CUT_MIX + half]
    assert red[0] > 180 and red[2] < 30, red  # pure outgoing before the crossfade
    assert blue[0] < 60 and blue[2] > 200, blue  # pure incoming after it
    assert 90 < mixed[0] < 170 and 90 < mixed[2] < 170, mixed  # half of each at the cut
    # the blend runs one way, frame by frame: red's share falls steadily over the crossfade's 30 frames
    reds = frames[CUT_MIX - 15:CUT_MIX + 15, 0]
    assert np.all(np.diff(reds) < 0), reds
    lo, hi = _tones(sound, CUT_MIX - half, 440, 1320), _tones(sound, CUT_MIX + half, 440, 1320)
    at = _tones(sound, CUT_MIX, 440, 1320)
    assert lo[1] < 0.05 * lo[0] and hi[0] < 0.05 * hi[1], (lo, hi)  # one tone each side
    assert 0.3 * lo[0] < at[0] < 0.7 * lo[0] and 0.3 * hi[1] < at[1] < 0.7 * hi[1], (lo, at, hi)  # both at the cut


def test_a_dip_goes_through_black_and_silence(built):
    _, episode, _, _ = built
    frames, sound = episode["frames"], episode["sound"]
    assert _luma(frames[CUT_DIP]) <= 20, frames[CUT_DIP]
    for f in (CUT_DIP - 17, CUT_DIP + 17):
        assert _luma(frames[f]) > 60, (f, frames[f])
    assert frames[CUT_DIP - 17][2] > 200 and frames[CUT_DIP + 17][1] > 150  # blue out, green in

    def rms(frame: int) -> float:
        a = round(frame / RATE * SR)
        return float(np.sqrt(np.mean(sound[a - 400:a + 400] ** 2)))

    assert rms(CUT_DIP) < 0.1 * min(rms(CUT_DIP - 30), rms(CUT_DIP + 30)), [rms(f) for f in (150, 180, 210)]


def test_a_crossfade_across_segments_is_seamless_and_rerenders_only_its_neighbours(built):
    first, episode, second, _ = built
    frames, sound = episode["frames"], episode["sound"]
    # 0.5 s = 15 frames: 7 before the cut (rendered by 'dip''s piece), 8 after (by 'over''s)
    green, yellow = frames[CUT_OVER - 9], frames[CUT_OVER + 10]
    assert green[1] > 150 and green[0] < 30 and yellow[0] > 200, (green, yellow)
    # red's share rises in even steps across the window, straight through the join between the pieces
    share = (frames[CUT_OVER - 7:CUT_OVER + 8, 0] - green[0]) / (yellow[0] - green[0])
    assert np.all(np.abs(np.diff(share) - 1 / 15) < 0.03), share
    assert 0.35 < share[7] < 0.65, share
    at = _tones(sound, CUT_OVER, 660, 880)
    lo, hi = _tones(sound, CUT_OVER - 12, 660, 880), _tones(sound, CUT_OVER + 12, 660, 880)
    assert 0.3 * lo[0] < at[0] < 0.7 * lo[0] and 0.3 * hi[1] < at[1] < 0.7 * hi[1], (lo, at, hi)
    assert first["pieces"]["rendered"] == first["pieces"]["total"] == 4
    # the crossfade lengthened: the segments on either side of it re-render, the others come from the cache
    assert sorted(second["pieces"]["rendered_segments"]) == ["dip", "over"], second["pieces"]
    over = next(s for s in second["segments"] if s["id"] == "over")
    assert over["shots"][0]["transition"]["frames"] == 24 and second["segments"][2]["start_frame"] == CUT_OVER


def test_a_transition_longer_than_its_shots_is_shortened_with_a_warning(built):
    build, episode, _, folder = built
    end = next(s for s in build["segments"] if s["id"] == "end")
    assert end["end_frame"] - end["start_frame"] == 30 and end["shots"][0]["frames"] == 30
    assert end["shots"][0]["transition"]["frames"] == 60  # 4 s asked; a 1 s card holds its half of 2 s
    warning = next(w for w in build["warnings"] if w.startswith("segment end: transition_in (crossfade)"))
    assert "shortened from 00:00:04.004 to 00:00:02.002 (60 frames)" in warning, warning
    assert len(episode["frames"]) == round(13 * RATE)  # and the runtime is still exact
    saved = json.loads((folder / "build.json").read_text())
    assert any("shortened" in w for w in saved["warnings"])


@pytest.mark.parametrize(("field", "value", "says"), [
    ("transition", "{type: wipe, seconds: 1}", "5: segments[0].transition.type: unknown transition type 'wipe'"),
    ("transition", "{type: crossfade, seconds: -0.5}", "5: segments[0].transition.seconds: must be longer than zero"),
    ("transition", "crossfade -1", "5: segments[0].transition: a duration cannot be negative"),
    ("transition", "{type: dip, seconds: 6}", "5: segments[0].transition.seconds: at most 4 s"),
    ("transition", "crosfade", ("5: segments[0].transition: unknown transition type 'crosfade' (did you mean "
                                "'crossfade'?)")),
    ("transition_in", "dip", "5: segments[0].transition_in: the first segment has nothing before it"),
])
def test_transition_mistakes_name_the_line(tmp_path, field, value, says):
    path = tmp_path / "ep.yaml"
    path.write_text(f"title: x\ncallout: .\nruntime: '0:10'\nsegments:\n"
                    f"  - {{id: a, type: montage, select: {{kinds: [video]}}, {field}: {value}}}\n"
                    f"  - {{id: b, type: fill}}\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert any(str(p).startswith(f"{path}:") and says in str(p) for p in err.value.problems), err.value.problems


def test_house_transitions_come_from_defaults(tmp_path):
    path = tmp_path / "ep.yaml"
    path.write_text("title: x\ncallout: .\nruntime: '0:10'\n"
                    "defaults: {all: {transition_in: crossfade}, montage: {transition: 'dip 0.5s'}}\n"
                    "segments:\n"
                    "  - {id: a, type: montage, select: {kinds: [video]}}\n"
                    "  - {id: b, type: act_break}\n"
                    "  - {id: c, type: card, text: hi, transition_in: cut}\n")
    a, b, c = load_spec(path).segments
    assert (a.transition.type, a.transition.seconds) == ("dip", Fraction(1, 2))
    assert a.transition_in.type == "cut"  # nothing before the first segment: the house default does not apply
    assert (b.transition_in.type, b.transition_in.seconds) == ("crossfade", Fraction(1, 2))
    assert c.transition_in.type == "cut"  # a segment's own field wins


def _timeline(over: int, end: int) -> Timeline:
    """Three segments; crossfades between them of ``over`` and ``end`` frames."""
    a = (Shot("card", 60, text="A"), Shot("card", 60, text="B", enter=Transition("crossfade", 10)))
    b = (Shot("card", 90, text="C", enter=Transition("crossfade", over)),)
    c = (Shot("card", 90, text="D", enter=Transition("dip", end)),)
    return Timeline("t", RATE, (Segment("a", "montage", 0, 120, a), Segment("b", "card", 120, 90, b),
                                Segment("c", "card", 210, 90, c)))


def test_pieces_carry_their_neighbours_and_key_on_them():
    first = compose.pieces(_timeline(12, 20), max_seconds=3)  # 'a' splits in two: the crossfade spans a piece edge
    assert [(p.segment_id, p.index, p.frames) for p in first] == [("a", 0, 60), ("a", 1, 60), ("b", 0, 90),
                                                                  ("c", 0, 90)]
    a0, a1, b, c = first
    assert a0.after is not None and a0.after.text == "B" and a0.exit == Transition("crossfade", 10)
    assert a1.before is not None and a1.before.text == "A" and a1.after.text == "C"
    assert b.before.text == "B" and b.after is None and b.exit == Transition("dip", 20)  # a dip needs no neighbour
    assert c.before is None and c.exit == Transition()

    def keys(timeline):
        return [piece_key(p, {}, PROFILES["preview"], "blur") for p in compose.pieces(timeline, max_seconds=3)]

    same, longer, deeper = keys(_timeline(12, 20)), keys(_timeline(16, 20)), keys(_timeline(12, 24))
    assert same == keys(_timeline(12, 20))
    assert [x != y for x, y in zip(same, longer)] == [False, True, True, False]  # either side of the change
    assert [x != y for x, y in zip(same, deeper)] == [False, False, True, True]


def test_the_planner_clamps_in_programme_order_and_keeps_act_breaks_black(tmp_path):
    from render.edit import plan

    path = tmp_path / "ep.yaml"
    path.write_text("title: x\ncallout: .\nruntime: '0:10'\nsegments:\n"
                    "  - {id: a, type: montage, select: {kinds: [video]}, transition: {type: crossfade, seconds: 1}}\n"
                    "  - {id: b, type: act_break, transition_in: {type: crossfade, seconds: 1}}\n"
                    "  - {id: c, type: card, text: hi, transition_in: {type: crossfade, seconds: 1}}\n"
                    "  - {id: d, type: card, text: ho, transition_in: {type: dip, seconds: 0.02}}\n")
    spec = load_spec(path)
    laid = [(spec.segments[0], (Shot("video", 40, "A"), Shot("video", 10, "B"))),
            (spec.segments[1], (Shot("black", 60),)), (spec.segments[2], (Shot("card", 90),)),
            (spec.segments[3], (Shot("card", 90),))]
    planner = plan._Planner(spec, None, {}, plan.Analysis({}))
    placed = planner.transitions(laid)
    assert [[s.frames for s in shots] for shots in placed] == [[40, 10], [60], [90], [90]]  # no length changes
    enters = [s.enter for shots in placed for s in shots]
    # 30 frames asked into a 10-frame shot: it holds 20 (10 after the cut). Crossfades into and out of the act
    # break are dips; into it, the 10-frame shot has nothing left for the first half: a cut. A 1-frame dip is none
    assert enters == [Transition(), Transition("crossfade", 20), Transition(), Transition("dip", 30), Transition()]
    assert planner.warnings[0].startswith("segment a: crossfade into shot 2 shortened from 00:00:01.001 to "
                                          "00:00:00.667 (20 frames)"), planner.warnings
    assert planner.warnings[1].startswith("segment b: transition_in (dip) dropped to a cut"), planner.warnings
    assert planner.warnings[2].startswith("segment d: transition_in (dip) dropped to a cut"), planner.warnings
