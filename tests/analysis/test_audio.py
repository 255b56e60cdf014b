"""Sound analysis on real corpus files and generated media: silence, clipping, speech/music, tempo, beats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from render.analysis import audio, loudness
from render.core.cache import Cache
from tests.support.media import corpus, lavfi, source_of


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Cache:
    return Cache(tmp_path_factory.mktemp("analysis-cache"))


def analyze(path: Path, cache: Cache, kind: str = "music") -> audio.AudioAnalysis:
    result = audio.analyze_audio(source_of(path, cache, kind), cache)
    assert result is not None
    return result


@pytest.mark.parametrize("name,seconds", [
    ("silence_ac3_44k_stereo.ac3", 3.69),
    ("silence_aiff_11k_mono_2s.aif", 2.0),
    ("silent_black_h264_aac_320x240_10s.mp4", 10.0),
])
def test_silent_files_are_one_silence(name, cache, seconds):
    a = analyze(corpus(name), cache, kind="video" if name.endswith("mp4") else "voice")
    assert a.content == "silence"
    assert a.silent and a.loudness.silent
    assert len(a.silences) == 1 and len(a.dead_air) == 1
    span = a.silences[0]
    assert span.start == 0 and span.end == a.samples
    assert a.seconds == pytest.approx(seconds, abs=0.1)
    assert a.head_silence == a.samples
    assert a.tempo_bpm is None and a.beats == ()


def test_silence_in_the_middle_and_at_the_ends(tmp_path, cache):
    # 1 s quiet, 2 s tone, 2 s quiet, 2 s tone, 0.5 s quiet
    expr = "if(between(t\\,1\\,3)+between(t\\,5\\,7)\\,0.3*sin(2*PI*440*t)\\,0)"
    path = lavfi(tmp_path / "gaps.wav", f"aevalsrc={expr}:s=48000:d=7.5", "-c:a", "pcm_s16le")
    a = analyze(path, cache, kind="voice")
    got = [(round(s.start / 48000, 2), round(s.end / 48000, 2)) for s in a.silences]
    assert got == [(0.0, 1.0), (3.0, 5.0), (7.0, 7.5)], got
    assert [s.start for s in a.dead_air] == [s.start for s in a.silences]  # head, 2 s gap, tail
    assert a.head_silence == 48000
    assert a.tail_silence == 24000
    f0, f1 = a.silences[1].frames()
    assert (f0, f1) == (89, 150)  # 3.0 s is inside frame 89 (2.969..3.003 s); 5.0 s ends frame 149


def test_clipping_is_found_and_clean_sound_is_not(tmp_path, cache):
    clipped = lavfi(tmp_path / "clip.wav", "aevalsrc=clip(1.6*sin(2*PI*200*t)\\,-1\\,1):s=48000:d=3", "-c:a", "pcm_s16le")
    clean = lavfi(tmp_path / "clean.wav", "aevalsrc=0.5*sin(2*PI*200*t):s=48000:d=3", "-c:a", "pcm_s16le")
    a = analyze(clipped, cache, kind="voice")
    assert a.clipped and a.clipped_samples > 48000 * 3 * 0.3  # 1.6x over: ~ 45% of samples at full scale
    assert a.clipping[0].start < 480 and a.clipping[-1].end > 3 * 48000 - 480
    b = analyze(clean, cache, kind="voice")
    assert not b.clipped and b.clipping == ()


@pytest.mark.parametrize("name,content", [
    ("librispeech_reading_vorbis_22k_mono.ogg", "speech"), ("librispeech_reading2_vorbis_22k_mono.ogg", "speech"),
    ("jfk_speech_flac_44k_stereo_s32.flac", "speech"), ("piano_music_pcm_s16_44k_stereo.wav", "music"),
    ("outfoxing_the_fox_music_mp3_44k_stereo.mp3", "music"),
    ("brahms_hungarian_dance_strings_vorbis_22k_mono.ogg", "music"),
])
def test_speech_reads_as_speech_and_music_as_music(name, content, cache):
    a = analyze(corpus(name), cache, kind="voice" if content == "speech" else "music")
    assert a.content == content, (a.speech_fraction, a.music_fraction)
    assert (a.speech_fraction if content == "speech" else a.music_fraction) >= 0.6


def check_beats(a: audio.AudioAnalysis, low: float, high: float) -> np.ndarray:
    assert a.tempo_bpm is not None and low <= a.tempo_bpm <= high, a.tempo_bpm
    beats = np.asarray(a.beats)
    assert np.all(np.diff(beats) > 0) and beats[0] >= 0 and beats[-1] <= a.samples
    period = np.median(np.diff(beats)) / 48000
    assert 60 / high * 0.9 <= period <= 60 / low * 1.1
    assert a.beat_frames == tuple(audio.sample_to_frame(b) for b in a.beats)
    return beats


def test_click_track_at_120_bpm(tmp_path, cache):
    # 10 ms 1 kHz clicks every 0.5 s, 20 s
    path = lavfi(tmp_path / "click.wav", "aevalsrc=if(lt(mod(t\\,0.5)\\,0.01)\\,0.8*sin(2*PI*1000*t)\\,0):s=44100:d=20",
                 "-c:a", "pcm_s16le")
    a = analyze(path, cache, kind="music")
    beats = check_beats(a, 118, 122)
    # every beat sits on a click: within 25 ms of a multiple of 0.5 s
    phase = (beats / 48000) % 0.5
    assert np.all(np.minimum(phase, 0.5 - phase) < 0.025), phase
    # exact frames: a beat at 10.0 s is on screen in frame 299 (9.977..10.010 s)
    assert audio.sample_to_frame(480000) == 299


# Expected tempi: the beat tracker's answer cross-checked by the strongest peaks of the onset
# autocorrelation (piano 103 bpm; "Outfoxing the Fox" a 160-family pulse, 80/161; the trumpet
# loop 120), each within a range a person tapping along would land in.
@pytest.mark.parametrize("name,low,high", [
    ("piano_music_pcm_s16_44k_stereo.wav", 96, 110),
    ("outfoxing_the_fox_music_mp3_44k_stereo.mp3", 150, 166),
    ("jazz_trumpet_loop_vorbis_22k_mono.ogg", 112, 128),
])
def test_music_tempo_and_beats(name, low, high, cache):
    a = analyze(corpus(name), cache, kind="music")
    check_beats(a, low, high)


def test_cached_by_content(tmp_path, cache):
    path = corpus("piano_music_pcm_s16_44k_stereo.wav")
    first = analyze(path, cache)
    again = analyze(path, cache)
    assert again == first
    assert audio.AudioAnalysis.from_json(first.to_json()) == first


def test_final_mix_file(tmp_path):
    path = lavfi(tmp_path / "mix.m4a", "aevalsrc=0.1*sin(2*PI*440*t)|0.1*sin(2*PI*440*t):s=48000:d=4", "-c:a", "aac")
    a = audio.analyze_audio_file(path)
    assert a.samples == pytest.approx(4 * 48000, abs=2048)
    assert -25 < a.loudness.integrated_lufs < -15
    assert a.clipping == ()


def test_speex_frames_without_a_channel_layout_are_analysed(tmp_path, cache):
    # Speex decodes to frames with a channel count but no layout: both the meter and the sample
    # decode must pin one, or the build would quarantine the record that intake accepted
    tone = lavfi(tmp_path / "tone.spx", "sine=f=440:r=32000:d=3,aformat=channel_layouts=stereo",
                 "-c:a", "libspeex", "-ac", "2")
    a = analyze(tone, cache, kind="voice")
    assert a.seconds == pytest.approx(3, abs=0.1)
    assert not a.silent and -40 < a.loudness.integrated_lufs < -5


@pytest.mark.parametrize("name,short_term", [
    ("wav_extensible_float32_48k_6ch.wav", False),  # 0.5 s: shorter than one 3 s short-term window
    ("jfk_speech_flac_44k_stereo_s32.flac", True),
    ("lets_go_fishin_song_vorbis_22k_mono.ogg", True),
])
def test_the_analysis_meters_loudness_in_its_own_decode_as_the_meter_alone_does(name, short_term, tmp_path):
    """One decode feeds both the meter and the samples: its figures equal a separate ebur128 pass,
    and a fresh analysis caches them for intake to reuse."""
    cache = Cache(tmp_path / "cache")
    src = source_of(corpus(name), cache, "music")
    result = audio.analyze_audio(src, cache)
    alone = loudness.measure(["-i", str(corpus(name))], f"0:{src.media.audio.index}")
    assert result.loudness == alone
    assert (result.loudness.max_short_term_lufs > loudness.FLOOR) == short_term  # its values were read
    assert loudness.cached_source(src, cache) == alone
