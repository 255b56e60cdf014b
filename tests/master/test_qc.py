"""QC of a rendered episode (qc.json), on an 11 s preview made of real media without Prefect.

The programme, in order: a clip flashing black/white five times a second (no sound track); a 2 s
act break; a black, silent upload cut as two segments of 1.5 s each (so two pieces, neither long
enough to report alone); a title card; a clip whose left half is super-white (luma 250), which
conform legalises.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.support.media import corpus, lavfi, source_of

RATE = Fraction(30000, 1001)
LAYOUT = [("flash", 0, 60), ("break", 60, 120), ("still1", 120, 165), ("still2", 165, 210), ("card", 210, 300),
          ("hot", 300, 330)]


@pytest.fixture(scope="module")
def made(tmp_path_factory, cache_dir):
    from render.compose import pieces as compose
    from render.compose import store
    from render.core.cache import Cache
    from render.core.house import profile
    from render.edit.timeline import Segment, Shot, Timeline
    from render.master import programme

    folder = tmp_path_factory.mktemp("qc")
    cache = Cache(cache_dir)
    tv = ["-c:v", "libx264", "-preset", "ultrafast", "-color_range", "tv", "-colorspace", "bt709"]
    flash = source_of(lavfi(folder / "flash.mp4", "color=c=gray:s=320x180:r=30:d=2",
                            "-vf", r"format=yuv420p,geq=lum='if(lt(mod(N\,6)\,3)\,235\,16)':cb=128:cr=128", *tv),
                      cache, "video")
    hot = source_of(lavfi(folder / "hot.mp4", "color=c=gray:s=320x180:r=30:d=2",
                          "-vf", r"format=yuv420p,geq=lum='if(lt(X\,160)\,250\,128)':cb=128:cr=128", *tv),
                    cache, "video")
    dark = source_of(corpus("silent_black_h264_aac_320x240_10s.mp4"), cache, "video")
    shots = {"flash": Shot("video", 60, flash.record.record_id), "break": Shot("black", 60),
             "still1": Shot("video", 45, dark.record.record_id),
             "still2": Shot("video", 45, dark.record.record_id, source_in_s=Fraction(2)),
             "card": Shot("card", 90, text="A card"), "hot": Shot("video", 30, hot.record.record_id)}
    types = {"break": "act_break", "card": "card"}
    timeline = Timeline("QC", RATE, tuple(Segment(sid, types.get(sid, "feature"), a, b - a, (shots[sid],))
                                          for sid, a, b in LAYOUT))
    sources = {s.record.record_id: s for s in (flash, hot, dark)}
    house = profile("preview")
    episode = programme.render_timeline(timeline, sources, house, "blur", cache, folder / "out" / "episode.mp4")
    rendered = [store.render_piece(p, sources, house, "blur", cache) for p in compose.pieces(timeline)]
    side = json.loads((episode.parent / ".episode.mp4.key").read_text())
    return timeline, rendered, episode, side, sources, house


@pytest.fixture(scope="module")
def report(made):
    from render.master import qc

    timeline, rendered, episode, side, sources, house = made
    doc = qc.run(timeline, rendered, episode, side["loudness"], house, side["key"], episode.with_name("qc.json"),
                 sources)
    assert json.loads(episode.with_name("qc.json").read_text()) == doc
    return doc


def spans(ranges: list[dict]) -> list[tuple[int, int, list[str]]]:
    return [(r["start"], r["end"], r["segments"]) for r in ranges]


def test_black_frozen_and_silent_media_is_one_range_across_pieces_and_the_act_break_is_not_listed(report):
    for name in ("black", "freeze", "silence"):
        check = report["checks"][name]
        assert check["passed"] is False
        # each half alone is 1.5 s, under the 2 s limit: only the merge across the piece boundary finds it
        assert spans(check["ranges"]) == [(120, 210, ["still1", "still2"])], name
        assert not any(r["start"] < 120 and r["end"] > 60 for r in check["ranges"] + check["expected"]), name


def test_what_the_timeline_made_dark_still_or_silent_is_expected_not_failed(report):
    checks = report["checks"]
    assert spans(checks["black"]["expected"]) == [(210, 300, ["card"])]
    assert spans(checks["freeze"]["expected"]) == [(210, 300, ["card"])]
    # the flashing clip and the super-white clip have no sound track; the card is silent by design
    assert spans(checks["silence"]["expected"]) == [(0, 60, ["flash"]), (210, 330, ["card", "hot"])]


def test_a_super_white_upload_is_legalised_by_conform_and_passes_qc(made, report):
    luma = report["checks"]["luma"]
    assert luma["passed"] is True and luma["frames_out_of_range"] == 0, luma
    # pixels: the upload's super-white half (luma 250) is clipped to legal white in the episode
    episode = made[2]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{float(315 / RATE):.4f}", "-i", str(episode),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                         capture_output=True, check=True).stdout
    y = np.frombuffer(raw[:960 * 540], np.uint8).reshape(540, 960)  # the Y plane as coded
    white = y[100:440, 300:400]  # inside the clip's left half, clear of its edges
    assert 232 <= np.median(white) <= 235 and white.max() <= 237, (np.median(white), white.max())


def test_luma_out_of_range_is_reported_where_it_is(tmp_path):
    """QC checks the delivered file rather than trusting conform: a piece that did not come
    through it (luma 250 over the left half of 30 of 60 frames) is reported frame-exactly."""
    from render.compose import measure
    from render.core.house import profile
    from render.core.timebase import FrameRange

    house = profile("preview")
    video = lavfi(tmp_path / "hot.mp4", "color=c=gray:s=960x540:r=30000/1001:d=2.002",
                  "-vf", r"format=yuv420p,geq=lum='if(lt(X\,480)*gte(N\,15)*lt(N\,45)\,250\,128)':cb=128:cr=128",
                  "-frames:v", "60", *house.video_codec_args())
    audio = lavfi(tmp_path / "hot.wav", "anullsrc=r=48000:cl=stereo", "-t", f"{float(60 / RATE):.6f}")
    got = measure.measure_piece(video, audio, 60, house)
    assert got.illegal == (FrameRange(15, 45),) and got.ymax >= 245, (got.illegal, got.ymax)


def test_flashing_is_flagged_within_the_flashing_clip(report):
    flash = report["checks"]["flash"]
    assert flash["passed"] is False and flash["ranges"]
    assert all(0 <= r["start"] < r["end"] <= 60 and r["segments"] == ["flash"] for r in flash["ranges"])
    assert max(r["flashes_per_s"] for r in flash["ranges"]) >= 4


def test_duration_is_exact_and_a_silent_programme_fails_loudness(report):
    checks = report["checks"]
    assert checks["duration"]["passed"] and checks["duration"]["frames"] == 330
    assert checks["duration"]["timecode"] == "00:00:11.011"
    assert checks["loudness"]["passed"] is False and checks["loudness"]["integrated_lufs"] <= -70
    assert report["passed"] is False
    from render.master import qc

    summary = qc.summary(report)
    assert summary["passed"] is False and set(summary["checks"]) == set(qc.CHECKS)
    assert summary["checks"]["black"]["summary"] == "1 range: 00:00:04.004-00:00:07.007 (still1/still2)"


def test_the_same_episode_reuses_qc_json_and_a_new_join_reuses_the_piece_measures(made, report, monkeypatch):
    from render.core import ffmpeg
    from render.master import qc

    timeline, rendered, episode, side, sources, house = made

    def no_media_work(*args, **kwargs):
        raise AssertionError("QC decoded media for an episode it had already checked")

    monkeypatch.setattr(ffmpeg, "run", no_media_work)
    again = qc.run(timeline, rendered, episode, side["loudness"], house, side["key"], episode.with_name("qc.json"),
                   sources)
    assert again == report
    monkeypatch.undo()
    # another join of the same pieces: only the programme-level parts run (a probe), the pieces' measures are reused
    calls: list[list[str]] = []
    real_run = ffmpeg.run
    monkeypatch.setattr(ffmpeg, "run", lambda argv, **kw: calls.append(argv) or real_run(argv, **kw))
    redo = qc.run(timeline, rendered, episode, side["loudness"], house, "another join", episode.with_name("qc.json"),
                  sources)
    assert [Path(argv[0]).name for argv in calls] == ["ffprobe"]
    assert redo["checks"] == report["checks"]


def test_the_render_measures_each_piece_as_a_decode_of_its_file_does(made):
    """QC's picture measures come from the render pass (no second decode); they must be what
    measuring the encoded piece file finds, range for range."""
    from render.compose import measure, store

    _, rendered, _, _, _, house = made
    for p in rendered:
        in_render = store.cached_piece_qc(p.video, p.frames)
        assert in_render is not None, f"{p.segment_id}: the render left no QC measures"
        decoded = measure.measure_piece(p.video, p.audio, p.frames, house)
        for field in ("frames", "black", "still", "silent", "illegal", "flashes"):
            assert getattr(in_render, field) == getattr(decoded, field), (p.segment_id, field)
        assert np.allclose(in_render.first_sig, decoded.first_sig, atol=3), p.segment_id
        assert np.allclose(in_render.last_sig, decoded.last_sig, atol=3), p.segment_id


def test_a_still_photo_is_still_by_design_and_a_frozen_video_is_not(made):
    """A photo's slow push-in reads as a freeze; the timeline made it so, so it is listed as expected.
    The same stillness in a video shot fails."""
    from render.compose.measure import PieceQC
    from render.core.timebase import FrameRange
    from render.edit.timeline import Segment, Shot, Timeline
    from render.master import qc

    episode = made[2]
    timeline = Timeline("stills", RATE, (Segment("photo", "feature", 0, 90, (Shot("image", 90, "P1"),)),
                                         Segment("clip", "feature", 90, 90, (Shot("video", 90, "V1"),))))
    frozen = PieceQC(180, (), (FrameRange(1, 180),), (), (), 0, 16, 235, (), (0.0,) * 144, (0.0,) * 144)
    doc = qc.check(timeline, [frozen], episode, {"integrated_lufs": -24.0, "true_peak_dbtp": -3.0})
    freeze = doc["checks"]["freeze"]
    assert spans(freeze["ranges"]) == [(90, 180, ["clip"])]
    assert spans(freeze["expected"]) == [(0, 90, ["photo"])]
    assert doc["checks"]["black"]["expected"] == []  # a photo is not black by design


def test_a_cached_piece_without_qc_measures_is_rendered_again(made, cache_dir):
    """Pieces from before QC measured in the render are not decoded for their measures (a decode
    reads the codec's ringing): they are rendered again, and carry measures afterwards."""
    from render.compose import pieces as compose
    from render.compose import store
    from render.core.cache import Cache

    timeline, rendered, _, _, sources, house = made
    piece = compose.pieces(timeline)[-1]
    done = rendered[-1]
    (done.video.parent / "qc-piece.json").unlink()
    assert store.cached_piece(piece, sources, house, "blur", Cache(cache_dir)) is None
    again = store.render_piece(piece, sources, house, "blur", Cache(cache_dir))
    assert not again.cached and (again.video.parent / "qc-piece.json").exists()
    assert store.cached_piece(piece, sources, house, "blur", Cache(cache_dir)) is not None
