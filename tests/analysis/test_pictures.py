"""Picture analysis on real corpus files and generated clips: shots, black, frozen, flashing, quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from render.analysis import pictures
from render.core.cache import Cache
from tests.support.media import corpus, lavfi, source_of


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Cache:
    return Cache(tmp_path_factory.mktemp("analysis-cache"))


def analyze(path: Path, cache: Cache) -> pictures.PictureAnalysis:
    result = pictures.analyze_pictures(source_of(path, cache, "video"), cache)
    assert result is not None
    return result


def test_scene_cuts_on_the_frame(cache):
    # Looked at frame by frame: the 25 fps clip cuts at its frames 30, 76, 137, 187 and 242
    # (1.20, 3.04, 5.48, 7.48, 9.68 s; the clip's own plot panel marks the same five). At
    # 30000/1001 the first frame of each new shot is the nearest project frame.
    a = analyze(corpus("scene_cuts_h264_yuv444_1280x272_25fps.mp4"), cache)
    assert a.frames == 300
    assert (a.width, a.height) == (256, 54)
    assert a.cuts == (36, 91, 164, 224, 290), a.cuts
    assert [s.start for s in a.shots] == [0, 36, 91, 164, 224, 290]
    assert a.shots[-1].end == a.frames
    for shot in a.shots:
        assert shot.thumbnail and pictures.thumbnail_path(cache, shot).read_bytes()[:2] == b"\xff\xd8"
        assert shot.start <= shot.thumbnail_frame < shot.end
        assert shot.sharpness > 10 and 0.05 < shot.brightness < 0.95
    assert a.black == () and a.flashes == ()


def test_black_and_silent_clip_is_black_throughout(cache):
    a = analyze(corpus("silent_black_h264_aac_320x240_10s.mp4"), cache)
    assert a.frames == 300
    assert a.black == (pictures.FrameRange(0, 300),)
    assert len(a.shots) == 1
    # a black still is also frozen: nothing moves for 10 s
    assert a.frozen and a.frozen[0].start == 0 and a.frozen[0].end == 300


def test_five_hertz_flicker_is_flagged_and_calm_clip_is_not(tmp_path, cache):
    flicker = lavfi(tmp_path / "flicker.mp4",
                    "color=c=black:s=320x240:r=30:d=4,geq=lum='255*lt(mod(T*5\\,1)\\,0.5)':cb=128:cr=128")
    calm = lavfi(tmp_path / "calm.mp4", "testsrc2=s=320x240:r=30:d=4")
    a = analyze(flicker, cache)
    assert a.flash_risk
    lum = [f for f in a.flashes if f.kind == "luminance"]
    assert lum and lum[0].start <= 5 and lum[-1].end >= a.frames - 5
    assert lum[0].flashes_per_s >= 4 and lum[0].area > 0.9
    assert not analyze(calm, cache).flash_risk


def test_red_flashes_are_flagged(tmp_path, cache):
    red = lavfi(tmp_path / "red.mp4",
                "color=c=red:s=320x240:r=30:d=3,geq=r='255*lt(mod(T*5\\,1)\\,0.5)':g=0:b=0")
    a = analyze(red, cache)
    assert any(f.kind == "red" for f in a.flashes), a.flashes


def test_three_hertz_is_under_the_limit(tmp_path, cache):
    slow = lavfi(tmp_path / "slow.mp4",
                 "color=c=black:s=320x240:r=30:d=4,geq=lum='255*lt(mod(T*2.5\\,1)\\,0.5)':cb=128:cr=128")
    assert not analyze(slow, cache).flash_risk


def test_frozen_tail_and_black_head(tmp_path, cache):
    # 1 s black, 3 s moving test pattern, then its last frame held for 3 s
    clip = lavfi(tmp_path / "frozen.mp4", "testsrc2=s=320x240:r=30:d=3,tpad=start_duration=1:stop_duration=3:stop_mode=clone")
    a = analyze(clip, cache)
    assert a.black and a.black[0].start == 0 and abs(a.black[0].end - 30) <= 1
    assert a.frozen and abs(a.frozen[-1].start - 120) <= 2 and a.frozen[-1].end == a.frames


def test_shaky_shot_reads_shakier_than_steady(tmp_path, cache):
    steady = lavfi(tmp_path / "steady.mp4", "testsrc2=s=640x360:r=30:d=3,crop=480:270:80:45")
    shaky = lavfi(tmp_path / "shaky.mp4", "testsrc2=s=640x360:r=30:d=3,crop=480:270:'80+40*sin(n*2.1)':'45+25*cos(n*2.9)'")
    s, k = analyze(steady, cache), analyze(shaky, cache)
    assert len(s.shots) == 1
    assert max(x.shakiness for x in k.shots) > 5 * max(0.05, s.shots[0].shakiness)


def test_cached_by_content(cache):
    path = corpus("scene_cuts_h264_yuv444_1280x272_25fps.mp4")
    first = analyze(path, cache)
    assert analyze(path, cache) == first
    assert pictures.PictureAnalysis.from_json(first.to_json()) == first


def test_stills_and_audio_have_no_picture_analysis(cache):
    assert pictures.analyze_pictures(source_of(corpus("london_photo_1020x768.jpg"), cache, "photo"), cache) is None
    assert pictures.analyze_pictures(source_of(corpus("piano_music_pcm_s16_44k_stereo.wav"), cache, "music"), cache) is None
