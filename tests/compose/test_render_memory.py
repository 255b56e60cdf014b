"""A piece renders as a stream: ffmpeg holds a few frames at a time, never the piece's pictures.

A montage cut to music (the bed replaces the shots' own sound) once decoded every shot's sound into
a null sink. A sink always wants more, so ffmpeg read every shot's file at once and the conformed
1080p pictures of the whole piece queued before the concat: 3 GB for the demo's cold open.
Real corpus media, real ffmpeg; no Prefect (this is the engine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from fractions import Fraction

import numpy as np

from tests.support.media import corpus, source_of

RATE = Fraction(30000, 1001)
VIDEOS = ("frog_toy_h264_aac_720x480_30fps.mp4", "chaplin_bw_film_h264_mp3_640x360_25fps.mp4",
          "greenscreen_man_h264_aac_1280x720_30fps.mp4", "cc_logo_h264_aac_640x480_29.97fps.mp4",
          "bunny_vp8_vorbis_320x240_30fps.webm", "carphone_h264_176x144_29.97fps_lowquality.mp4")
SONG = "outfoxing_the_fox_music_mp3_44k_stereo.mp3"
_PEAK = ("import json, resource, subprocess, sys\n"
         "rc = subprocess.run(sys.argv[1:]).returncode\n"
         "print(json.dumps([rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n")


def test_a_montage_under_music_holds_a_few_frames_not_the_whole_piece(tmp_path):
    from render.compose import graph
    from render.compose.pieces import Piece
    from render.core.cache import Cache
    from render.core.house import profile
    from render.edit.timeline import Bed, Shot

    cache, house = Cache(tmp_path / "cache"), profile("master")
    videos = [source_of(corpus(name), cache, "video") for name in VIDEOS]
    song = source_of(corpus(SONG), cache, "music")
    sources = {s.record.record_id: s for s in (*videos, song)}
    shots = tuple(Shot("video", 75, v.record.record_id) for v in videos + videos[:2])  # 8 shots, 600 frames
    piece = Piece("montage", 0, shots, bed=Bed(song.record.record_id, Fraction(10), mix="replace"))
    argv = graph.build_command(piece.shots, sources, house, "blur", tmp_path, None, tmp_path / "sound.wav",
                               piece.bed, piece.edges)
    done = subprocess.run([sys.executable, "-c", _PEAK, *argv], capture_output=True, text=True, timeout=300, check=False)
    rc, peak_kib = json.loads(done.stdout.strip().splitlines()[-1])
    assert rc == 0, done.stderr[-2000:]
    piece_bytes = piece.frames * house.width * house.height * 3 // 2  # every conformed frame, yuv420p
    assert peak_kib * 1024 < piece_bytes / 3, f"ffmpeg peaked at {peak_kib // 1024} MiB for a " \
                                              f"{piece_bytes >> 20} MiB piece"
    # and the sound is the song's, not the phones': as long as the piece, and not silence
    with wave.open(str(tmp_path / "sound.wav")) as w:
        assert w.getnframes() == round(Fraction(piece.frames) / RATE * 48000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
    assert np.sqrt(np.mean(pcm ** 2)) > 1000, "the piece is silent"
