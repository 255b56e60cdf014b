"""The preview's spliced programme sound: after an edit only the AAC frames whose sound changed are
encoded again, and the result plays like a fresh encode: same sample count and alignment as the
picture, the same fidelity to the pieces' sound at every point (splice points included), and the
programme's loudness on target.

Real corpus media rendered into pieces with real ffmpeg (no Prefect: this is the engine's join).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.support.media import corpus, ebur128, ffprobe, source_of

RATE = Fraction(30000, 1001)
WINDOW = 12_000  # 0.25 s
SONG_START = 4


def pcm(path: Path) -> np.ndarray:
    """A file's first sound stream, decoded to 48 kHz stereo float samples."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "2",
                          "-ar", "48000", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int16).reshape(-1, 2).astype(np.float64)


def reference(rendered, gain_db: float) -> np.ndarray:
    """The programme's sound before AAC: the pieces' PCM one after another, at the programme gain."""
    parts = []
    for piece in rendered:
        with wave.open(str(piece.audio)) as w:
            parts.append(np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2).astype(np.float64))
    return np.concatenate(parts) * 10 ** (gain_db / 20)


def window_snr(decoded: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """SNR (dB) of the decoded sound against the reference in every 0.25 s window with sound in it."""
    n = min(len(decoded), len(ref)) // WINDOW * WINDOW
    d, r = decoded[:n].reshape(-1, WINDOW, 2), ref[:n].reshape(-1, WINDOW, 2)
    signal, noise = (r ** 2).sum(axis=(1, 2)), ((d - r) ** 2).sum(axis=(1, 2))
    loud = signal > WINDOW * 2 * 300 ** 2  # windows above about -40 dBFS
    return 10 * np.log10(signal[loud] / np.maximum(noise[loud], 1e-9))


@pytest.fixture(scope="module")
def programme(tmp_path_factory):
    from render.analysis import loudness
    from render.compose import pieces, store
    from render.core.cache import Cache
    from render.core.house import profile
    from render.edit import plan
    from render.edit.timeline import Segment, Shot, Timeline
    from render.master import programme as master

    root = tmp_path_factory.mktemp("spliced")
    cache, house = Cache(root / "cache"), profile("preview")
    voice = source_of(corpus("librispeech_reading_vorbis_22k_mono.ogg"), cache, "voice")
    song = source_of(corpus("lets_go_fishin_song_vorbis_22k_mono.ogg"), cache, "music")
    sources = {s.record.record_id: s for s in (voice, song)}

    def shot(src, frames, start_s=0):
        return Shot("audio", frames, src.record.record_id, source_in_s=Fraction(start_s), text=src.record.title,
                    byline="Ana", gain_db=plan.gain_db(loudness.measure_source(src, cache)))

    def timeline(song_start_s):
        shots = [shot(voice, 300), shot(song, 450, song_start_s), shot(voice, 300, 12)]
        segs, at = [], 0
        for i, s in enumerate(shots):
            segs.append(Segment(f"s{i}", "feature", at, s.frames, (s,)))
            at += s.frames
        return Timeline("Spliced", RATE, tuple(segs))

    def render(tl):
        return [store.render_piece(p, sources, house, "blur", cache) for p in pieces.pieces(tl)]

    return dataclasses.make_dataclass("P", ["root", "house", "timeline", "render", "master"])(
        root, house, timeline, render, master)


def test_an_edit_re_encodes_only_the_changed_sound_and_plays_like_a_fresh_encode(programme):
    p = programme
    out = p.root / "out" / "episode.mp4"
    out.parent.mkdir()
    first = p.render(p.timeline(0))
    j1 = p.master.join(first, p.house, out, level=True, verify=False, splice=True)
    assert j1.sound_encode["encoded_frames"] == j1.sound_encode["aac_frames"]  # nothing to reuse yet

    second = p.render(p.timeline(SONG_START))  # the song segment now plays from later on
    j2 = p.master.join(second, p.house, out, level=True, verify=False, splice=True)
    enc = j2.sound_encode
    total = enc["aac_frames"]
    assert j2.loudness["gain_db"] == j1.loudness["gain_db"], "the preview gain was held"
    # the song is 450 of 1050 frames; two AAC frames of margin either side
    assert 0.40 * total < enc["encoded_frames"] < 0.48 * total, enc
    assert len(enc["spans"]) == 1

    # picture and sound: same length, sound starts at 0 (priming hidden by the edit list)
    info = ffprobe(out)
    v = next(s for s in info["streams"] if s["codec_type"] == "video")
    a = next(s for s in info["streams"] if s["codec_type"] == "audio")
    samples = round(Fraction(1050) / RATE * 48000)
    assert int(a["duration_ts"]) == samples and float(a["start_time"]) == 0.0, a
    assert int(v["nb_frames"]) == 1050

    # fidelity: every quarter second of the spliced file is as close to the pieces' sound as a fresh
    # encode of the same programme is (a packet off by one frame drops a window to ~0 dB)
    fresh = p.root / "fresh.mp4"
    j3 = p.master.join(second, p.house, fresh, level=True, verify=False, splice=True)
    assert j3.sound_encode["encoded_frames"] == total
    ref = reference(second, j2.loudness["gain_db"])
    spliced_pcm, fresh_pcm = pcm(out), pcm(fresh)
    lag = int(np.argmax([np.dot(spliced_pcm[k:k + 96000, 0], ref[:96000, 0]) for k in range(2049)]))
    assert lag == 0, f"the spliced sound is {lag} samples late"
    s_snr = window_snr(spliced_pcm, ref)
    f_snr = window_snr(fresh_pcm, reference(second, j3.loudness["gain_db"]))
    assert len(s_snr) >= 90 and s_snr.min() > 12, s_snr.min()
    assert s_snr.min() > f_snr.min() - 3 and abs(np.median(s_snr) - np.median(f_snr)) < 1.5, (
        s_snr.min(), f_snr.min(), np.median(s_snr), np.median(f_snr))

    # the programme's loudness on target, read by ffmpeg's own meter
    got = ebur128(out)
    assert abs(got["I"] + 24) <= 1 and got["TP"] <= -2, got


def test_a_damaged_kept_sound_is_encoded_again_whole(programme):
    p = programme
    out = p.root / "damaged" / "episode.mp4"
    out.parent.mkdir()
    first = p.render(p.timeline(0))
    p.master.join(first, p.house, out, level=True, verify=False, splice=True)
    kept = out.with_name(".episode.mp4.aac")
    kept.write_bytes(kept.read_bytes()[: kept.stat().st_size // 2])  # cut short on disk
    j = p.master.join(p.render(p.timeline(20)), p.house, out, level=True, verify=False, splice=True)
    assert j.sound_encode["encoded_frames"] == j.sound_encode["aac_frames"]
    a = next(s for s in ffprobe(out)["streams"] if s["codec_type"] == "audio")
    assert int(a["duration_ts"]) == round(Fraction(1050) / RATE * 48000)


def test_a_whole_master_sound_encoded_in_parts_side_by_side_plays_like_one_encode(programme, monkeypatch):
    """The master's linear loudnorm treats every sample alike, so its AAC is encoded a part a core and
    spliced: same length and alignment, the same fidelity at the seam as elsewhere, on target."""
    from render.master import sound as programme_sound

    p = programme
    pieces = p.render(p.timeline(0))
    one, split = p.root / "one" / "episode.mp4", p.root / "split" / "episode.mp4"
    one.parent.mkdir()
    split.parent.mkdir()
    j1 = p.master.join(pieces, p.house, one, level=True, verify=True)
    monkeypatch.setattr(programme_sound, "MIN_PART_SECONDS", 10)  # the 35 s programme in two 17.5 s parts
    monkeypatch.setattr(programme_sound, "WORKERS", 2)
    j2 = p.master.join(pieces, p.house, split, level=True, verify=True)
    assert "parts" not in j1.loudness["loudnorm"]
    ln = j2.loudness["loudnorm"]
    assert ln["normalization_type"] == "linear" and len(ln["parts"]) == 2, ln
    assert j2.loudness["mode"] == "linear" and j2.loudness["gain_db"] == j1.loudness["gain_db"]

    samples = round(Fraction(1050) / RATE * 48000)
    a = next(s for s in ffprobe(split)["streams"] if s["codec_type"] == "audio")
    assert int(a["duration_ts"]) == samples and float(a["start_time"]) == 0.0, a
    ref = reference(pieces, j1.loudness["gain_db"])
    split_pcm, one_pcm = pcm(split), pcm(one)
    assert len(split_pcm) == len(one_pcm)  # both decode to whole AAC frames; duration_ts above is exact
    lag = int(np.argmax([np.dot(split_pcm[k:k + 96000, 0], ref[:96000, 0]) for k in range(2049)]))
    assert lag == 0, f"the split sound is {lag} samples late"
    s_snr, o_snr = window_snr(split_pcm, ref), window_snr(one_pcm, ref)
    assert len(s_snr) >= 90 and s_snr.min() > o_snr.min() - 3, (s_snr.min(), o_snr.min())
    # the seam (AAC frame 410 of 820, at 17.5 s): the windows around it as close to the source as one encode's
    seam = 410 * 1024 // WINDOW
    near = slice(seam - 2, seam + 3)
    assert window_snr(split_pcm, ref)[near].min() > window_snr(one_pcm, ref)[near].min() - 3
    got = ebur128(split)
    assert abs(got["I"] + 24) <= 1 and got["TP"] <= -2, got
    assert abs(j2.loudness["integrated_lufs"] - got["I"]) < 0.05  # build.json's figures are the final file's


def _atoms(path: Path) -> list[str]:
    import struct

    atoms, data, at = [], path.read_bytes(), 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        size = struct.unpack(">Q", data[at + 8:at + 16])[0] if size == 1 else size
        atoms.append(kind.decode())
        at += size
    return atoms


def test_the_index_goes_before_the_media_in_reserved_space_or_else_the_slow_way(programme, monkeypatch):
    """The join reserves room for the MP4's index up front (no second pass over the file); if the
    room is short, ffmpeg exits 0 with a broken file, so the join must notice and write it again."""
    p = programme
    pieces = p.render(p.timeline(0))
    for name, room in (("reserved", None), ("short", 4096)):
        if room:
            monkeypatch.setattr(p.master, "moov_bytes", lambda *a, room=room: room)
        out = p.root / name / "episode.mp4"
        out.parent.mkdir()
        p.master.join(pieces, p.house, out)
        atoms = _atoms(out)
        assert atoms.index("moov") < atoms.index("mdat"), (name, atoms)
        decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"],
                                 capture_output=True, text=True, check=True)
        assert decoded.stderr == "", (name, decoded.stderr[-500:])
        v = next(s for s in ffprobe(out)["streams"] if s["codec_type"] == "video")
        assert int(v["nb_frames"]) == 1050, name


def test_the_join_muxes_the_captions_as_a_subtitle_track_beside_the_chapters(programme):
    """Captions go into the episode in the join's own pass (no second pass over the file); new words
    make a new join, the same words none."""
    from render.master.chapters import Chapter

    p = programme
    pieces = p.render(p.timeline(0))
    out = p.root / "captioned" / "episode.mp4"
    out.parent.mkdir()
    srt = p.root / "captioned" / "captions.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,500\nHello there\n\n2\n00:00:20,000 --> 00:00:22,000\nBye\n\n")
    chapters = (Chapter(0, 450, "One"), Chapter(450, 1050, "Two"))
    assert p.master.join(pieces, p.house, out, chapters=chapters, subtitles=srt).rewritten
    assert not p.master.join(pieces, p.house, out, chapters=chapters, subtitles=srt).rewritten
    srt.write_text("1\n00:00:01,000 --> 00:00:02,500\nHello again\n\n")
    assert p.master.join(pieces, p.house, out, chapters=chapters, subtitles=srt).rewritten
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_chapters",
                                       str(out)], capture_output=True, text=True, check=True).stdout)
    subs = [s for s in probe["streams"] if s["codec_type"] == "subtitle"]
    assert [s["codec_name"] for s in subs] == ["mov_text"] and subs[0]["tags"]["language"] == "eng"
    assert [c["tags"]["title"] for c in probe["chapters"]] == ["One", "Two"]
    assert [s["codec_type"] for s in probe["streams"]].count("video") == 1
    got = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-map", "0:s", "-f", "srt", "-"],
                         capture_output=True, text=True, check=True).stdout
    assert "Hello again" in got and "Hello there" not in got and "00:00:01,000 --> 00:00:02,500" in got
    assert _atoms(out).index("moov") < _atoms(out).index("mdat")
