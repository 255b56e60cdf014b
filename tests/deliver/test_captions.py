"""Closed captions: speech made with espeak-ng (known words at known times), aligned, laid out on the
Timeline, written as SCC / SRT / WebVTT and read back by ffmpeg, pycaption and the parsers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from render.callout.folder import load_callout
from render.core.cache import Cache
from render.deliver.captions import episode as captions
from render.deliver.captions import files, layout, transcripts
from render.edit.timeline import Bed, Segment, Shot, Timeline
from render.intake.records import intake_record
from tests.support.callouts import write_callout
from tests.support.media import corpus, ffprobe

RATE = Fraction(30000, 1001)
SENTENCES = ("The quick brown fox jumps over the lazy dog.",
             "Then it runs home to sleep in the warm barn.",
             "Every morning the farmer feeds the hungry chickens.",
             "Nobody knows where the old cat hides at night.")
GAP_S = 1.0


def _say(text: str, dest: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(dest), text], check=True)
    with wave.open(str(dest)) as w:
        assert w.getframerate() == 22050
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


def speech_clip(dest: Path, sentences=SENTENCES) -> list[float]:
    """A WAV of the sentences with GAP_S of silence before each; returns each sentence's onset (s)."""
    parts, onsets, at = [], [], 0
    for n, text in enumerate(sentences):
        pcm = _say(text, dest.with_suffix(f".{n}.wav"))
        parts.append(np.zeros(int(GAP_S * 22050), np.int16))
        at += int(GAP_S * 22050)
        onsets.append((at + int(np.argmax(np.abs(pcm) > 600))) / 22050)
        parts.append(pcm)
        at += len(pcm)
    parts.append(np.zeros(int(0.5 * 22050), np.int16))
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(22050)
        w.writeframes(np.concatenate(parts).tobytes())
    return onsets


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """A call-out with a voice memo (transcript inline), the same memo with a transcript file, one with
    a transcript that is of other words, and one with a malformed sidecar."""
    root = tmp_path_factory.mktemp("captions")
    media = root / "media"
    media.mkdir()
    onsets = speech_clip(media / "memo.wav")
    speech_clip(media / "short.wav", SENTENCES[:1])  # recognised: kept short
    (root / "lyrics").mkdir()
    callout = write_callout(root / "callout", [
        {"record_id": "V1", "file": "m/memo.wav", "kind": "voice", "title": "Memo", "contributors": "ana",
         "transcript": " ".join(SENTENCES)},
        {"record_id": "V2", "file": "m/memo2.wav", "kind": "voice", "title": "Memo again", "contributors": "ana",
         "transcript": "m/memo2.vtt"},
        {"record_id": "V3", "file": "m/memo3.wav", "kind": "voice", "title": "Wrong words", "contributors": "ana",
         "transcript": "Four score and seven years ago our fathers brought forth upon this continent a new nation"},
        {"record_id": "V4", "file": "m/memo4.wav", "kind": "voice", "title": "Bad sidecar", "contributors": "ana",
         "transcript": "m/memo4.srt"},
    ], [("ana", "Ana", "MX")], {"m/memo.wav": media / "memo.wav", "m/memo2.wav": media / "memo.wav",
                                "m/memo3.wav": media / "short.wav", "m/memo4.wav": media / "short.wav"})
    # a timed sidecar, its times deliberately rough: alignment finds the words' real times
    (callout / "m" / "memo2.vtt").write_text("WEBVTT\n\n" + "".join(
        f"00:00:{2 * n + 1:02d}.000 --> 00:00:{2 * n + 3:02d}.000\n{s}\n\n" for n, s in enumerate(SENTENCES)))
    (callout / "m" / "memo4.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nThe quick\n\n"
                                             "2\n00:00:0x,000 --> 00:00:03,000\nbrown fox\n")
    cache = Cache(root / "cache")
    co = load_callout(callout)
    sources = {r.record_id: intake_record(co, r, cache) for r in co.records}
    return co, sources, cache, onsets, root


def one_shot(rid: str, frames: int, source_in_s: Fraction = Fraction(0), label_frames: int = 0) -> Timeline:
    shot = Shot("audio", frames, rid, source_in_s=source_in_s, label_frames=label_frames, text="Memo")
    return Timeline("t", RATE, (Segment("s", "feature", 0, frames, (shot,)),))


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower().replace(">>", " ")).split()


def test_every_word_is_captioned_in_order_and_in_time(talk, tmp_path):
    co, sources, cache, onsets, _ = talk
    frames = round(sources["V1"].duration_s * RATE)
    tl = one_shot("V1", frames)
    summary = captions.deliver(tl, sources, co, {}, tmp_path, cache)
    doc = json.loads((tmp_path / "captions.json").read_text())
    assert doc["records"]["V1"]["how"] == "transcript" and doc["records"]["V1"]["aligned_share"] >= 0.8
    assert summary["speech_seconds"]["transcript"] > 8 and "recognition" not in summary["speech_seconds"]
    # every word, in order, in each format as its own reader reads it
    want = _words(" ".join(SENTENCES))
    srt = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "captions.scc"), "-f", "srt", "-"],
                         capture_output=True, text=True, check=True).stdout
    srt = re.sub(r"<[^>]*>|\{[^}]*\}|\\h", " ", srt)  # ffmpeg's SRT keeps the 608 font and position as tags
    assert _words(" ".join(l for l in srt.splitlines() if not re.match(r"^\d+$|^\d\d:", l))) == want
    from pycaption import SCCReader, SRTReader, WebVTTReader

    read = {}
    for name, reader in (("scc", SCCReader()), ("srt", SRTReader()), ("vtt", WebVTTReader())):
        cs = reader.read((tmp_path / f"captions.{name}").read_text())
        read[name] = cs.get_captions(cs.get_languages()[0])
        assert _words(" ".join(c.get_text() for c in read[name])) == want, name
    # each sentence's first caption starts within 0.25 s of its first word's onset
    for onset, sentence in zip(onsets, SENTENCES):
        first = sentence.split()[0]
        for name in ("scc", "srt", "vtt"):
            starts = [c.start / 1e6 for c in read[name] if c.get_text().split()[0] == first]
            assert starts and min(abs(s - onset) for s in starts) < 0.25, (name, sentence, starts, onset)
    # layout limits hold
    assert summary["qc"]["row_characters"] == "pass" and summary["qc"]["rows"] == "pass"
    assert summary["qc"]["minimum_seconds"] == "pass" and summary["qc"]["reading_cps"] == "pass"
    assert all(len(c["lines"]) <= 2 and all(len(r) <= 32 for r in c["lines"]) for c in doc["cues"])
    assert "00:00:0" in (tmp_path / "captions.scc").read_text().split("\n")[2]


def test_a_trim_cuts_the_captions_and_a_lower_third_raises_them(talk, tmp_path):
    co, sources, cache, onsets, _ = talk
    # heard from the middle of the second sentence's gap to before the fourth sentence
    start_s = Fraction(round(onsets[1] - 0.5, 2)).limit_denominator(1000)
    frames = round((onsets[3] - 0.3 - float(start_s)) * RATE)
    tl = one_shot("V1", frames, start_s, label_frames=round(2 * RATE))
    captions.deliver(tl, sources, co, {}, tmp_path, cache)
    cues = json.loads((tmp_path / "captions.json").read_text())["cues"]
    said = _words(" ".join(" ".join(c["lines"]) for c in cues))
    assert said == _words(SENTENCES[1] + " " + SENTENCES[2])
    first = cues[0]
    assert abs(first["start_frame"] / RATE - (onsets[1] - float(start_s))) < 0.25
    assert first["top"] and not cues[-1]["top"]  # raised while the lower third (first 2 s) is on screen
    scc = (tmp_path / "captions.scc").read_text()
    pacs = [line.split()[5] for line in scc.splitlines() if "\t94ae 94ae 9420 9420 " in line]
    assert pacs[0].startswith("91") and not pacs[-1].startswith("91")  # row 1's address; the last at the foot


def test_after_a_one_segment_edit_the_captions_follow_the_cut(talk, tmp_path):
    co, sources, cache, _, _ = talk
    n = round(sources["V1"].duration_s * RATE)
    card = Shot("card", round(3 * RATE), text="Part two")
    before = Timeline("t", RATE, (Segment("a", "feature", 0, n, (Shot("audio", n, "V1"),)),))
    after = Timeline("t", RATE, (Segment("c", "card", 0, card.frames, (card,)),
                                 Segment("a", "feature", card.frames, n, (Shot("audio", n, "V1"),))))
    captions.deliver(before, sources, co, {}, tmp_path / "before", cache)
    captions.deliver(after, sources, co, {}, tmp_path / "after", cache)
    a = json.loads((tmp_path / "before" / "captions.json").read_text())["cues"]
    b = json.loads((tmp_path / "after" / "captions.json").read_text())["cues"]
    assert [c["lines"] for c in a] == [c["lines"] for c in b]
    assert all(y["start_frame"] - x["start_frame"] == card.frames for x, y in zip(a, b))


def test_a_crossfade_does_not_double_and_a_bed_under_is_not_speech(talk, tmp_path):
    from render.edit.timeline import Transition

    co, sources, cache, onsets, _ = talk
    half = round(onsets[2] * RATE)
    n = round(sources["V1"].duration_s * RATE)
    shots = (Shot("audio", half, "V1"),
             Shot("audio", n - half, "V1", source_in_s=Fraction(half) / RATE, enter=Transition("crossfade", 30)))
    bed = Bed("V2", mix="under")
    tl = Timeline("t", RATE, (Segment("s", "montage", 0, n, shots, bed=bed),))
    summary = captions.deliver(tl, sources, co, {}, tmp_path, cache)
    cues = json.loads((tmp_path / "captions.json").read_text())["cues"]
    assert _words(" ".join(" ".join(c["lines"]) for c in cues)) == _words(" ".join(SENTENCES))
    assert {c["record"] for c in cues} == {"V1"} and "V2" not in summary["unreviewed"]


def test_a_timed_sidecar_aligns_and_bad_transcripts_warn(talk, tmp_path):
    co, sources, cache, onsets, _ = talk
    segs, at = [], 0
    for rid in ("V2", "V3", "V4"):
        n = round(sources[rid].duration_s * RATE)
        segs.append(Segment(rid, "feature", at, n, (Shot("audio", n, rid),)))
        at += n
    summary = captions.deliver(Timeline("t", RATE, tuple(segs)), sources, co, {}, tmp_path, cache)
    doc = json.loads((tmp_path / "captions.json").read_text())
    assert doc["records"]["V2"]["how"] == "transcript" and doc["records"]["V2"]["transcript"].endswith("memo2.vtt")
    v2 = [c for c in doc["cues"] if c["record"] == "V2"]
    assert abs(v2[0]["start_frame"] / RATE - onsets[0]) < 0.25  # the real onset, not the sidecar's 1.000
    wrong = [w for w in summary["warnings"] if w.startswith("V3:")]
    assert wrong and "does not fit its sound" in wrong[0] and "%" in wrong[0]
    assert doc["records"]["V3"]["how"] == "recognition" and "V3" in summary["unreviewed"]
    bad = [w for w in summary["warnings"] if "memo4.srt" in w]
    assert bad and re.search(r"memo4\.srt:6: .*Invalid SRT timestamp", bad[0]), bad
    assert doc["records"]["V4"]["how"] == "recognition"  # the record still airs, captioned as a draft
    assert [c for c in doc["cues"] if c["record"] == "V4"]


def test_scc_starts_at_the_given_programme_timecode(talk, tmp_path):
    co, sources, cache, onsets, _ = talk
    tl = one_shot("V1", round(4 * RATE))
    captions.deliver(tl, sources, co, {}, tmp_path, cache, start_timecode="01:00:00;00")
    from pycaption import SCCReader

    scc = (tmp_path / "captions.scc").read_text()
    assert scc.split("\n")[2].startswith("00:59:59;")  # loading starts before the programme's first frame
    cs = SCCReader().read(scc)
    first = cs.get_captions("en-US")[0].start / 1e6
    assert abs(first - (107892 * 1001 / 30000 + onsets[0])) < 0.25
    assert files.dropframe_frames("01:00:00;00") == 107892 and files.dropframe_frames("00:01:00;02") == 1800
    with pytest.raises(ValueError):
        files.dropframe_frames("00:01:00;00")  # dropped


def test_the_scc_muxes_into_a_mov_on_its_programme_frames_at_any_timecode(tmp_path):
    """ffmpeg reads an SCC label as if no frames were dropped (01:01:00;02 comes out 60 ms early);
    ``scc_clock`` puts every packet, the last clear too, on its exact frame of the file's clock."""
    from render.core.timebase import dropframe_frames

    cues = [layout.Cue(45, 90, ("Hello there",), False, "transcript", "A"),
            layout.Cue(1799 + 45, 1880 + 45, ("a minute on",), False, "transcript", "A"),
            layout.Cue(17982 + 9000, 17982 + 9060, ("fifteen minutes on",), True, "transcript", "A")]
    files.write(cues, RATE, tmp_path, "01:00:00;00")
    lead = 2700  # the programme at the file's frame 2700, as after a 90 s leader
    mov = tmp_path / "c608.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "scc", "-i", str(tmp_path / "captions.scc"), "-map", "0", "-c",
                    "copy", "-bsf:s", files.scc_clock("01:00:00;00", lead, RATE), "-f", "mov", str(mov)], check=True)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", str(mov)],
                         capture_output=True, text=True, check=True).stdout.split()
    labels = [line.split("\t")[0] for line in (tmp_path / "captions.scc").read_text().splitlines() if "\t" in line]
    assert len(out) == len(labels) == 6
    for got, label in zip(out, labels):
        frame = lead + dropframe_frames(label) - dropframe_frames("01:00:00;00")
        assert abs(float(got) - float(frame / RATE)) < 0.5 / float(RATE), (label, got)


def test_rows_break_at_phrases_and_fit():
    words = "When the night came, we walked to the river".split()  # noqa: SIM905
    assert layout.fit_rows(words, ">> ") == (">> When the night came,", "we walked to the river")
    words = "and then we walked down to the river where we sat".split()  # noqa: SIM905 - no phrase end: balanced
    assert layout.fit_rows(words) == ("and then we walked down", "to the river where we sat")
    assert layout.fit_rows(["x" * 20] * 4) is None


def test_a_transcripts_folder_beside_the_spec_wins(talk, tmp_path):
    co = talk[0]
    folder = tmp_path / "transcripts"
    folder.mkdir()
    (folder / "V3.txt").write_text("\n".join(SENTENCES) + "\n")
    found, warnings = transcripts.find(co.record("V3"), co, folder)
    assert found is not None and found.origin == str(folder / "V3.txt") and not warnings
    assert [t.text for t in found.tokens][:3] == ["The", "quick", "brown"] and found.tokens[8].line_break


def _subtitle_starts(episode: Path) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "s", "-show_entries", "packet=pts_time,size",
                          "-of", "json", str(episode)], capture_output=True, text=True, check=True).stdout
    return [float(p["pts_time"]) for p in json.loads(out)["packets"] if int(p["size"]) > 2]  # 2 bytes: a clear


def test_the_build_writes_captions_and_a_subtitle_track(talk, tmp_path, prefect_harness, cache_dir):
    co, onsets = talk[0], talk[3]
    spec = tmp_path / "spec.yaml"
    shutil.copytree(co.root, tmp_path / "callout")
    memo = "  - {id: memo, type: feature, record: V1, start: 0, max_seconds: %s, lower_third_seconds: 0}\n"
    head = 'title: "RE: Captions"\ncallout: callout\nruntime: "0:12"\nsegments:\n'
    spec.write_text(head + memo % 12)
    from flows.pipeline import build_flow

    build = build_flow(str(spec), "preview", str(tmp_path / "out"), str(cache_dir))
    folder = tmp_path / "out" / "spec" / "preview"
    assert {"captions.scc", "captions.srt", "captions.vtt", "captions.json"} <= {p.name for p in folder.iterdir()}
    assert build["captions"]["speech_seconds"].get("transcript", 0) > 5
    assert build["captions"]["qc"]["uncaptioned_speech_seconds"] == "pass"  # against the analysis' speech
    assert build["captions"]["qc"]["caption_without_speech"] == "pass"
    assert build["captions"]["start_timecode"] == "00:00:00;00"  # no leader: the SCC's programme at zero
    assert (folder / "captions.scc").read_text().split("\n")[2].startswith("00:00:0")
    reported = json.loads((folder / "qc.json").read_text())["captions"]  # QC reports them with the checks
    assert reported["captions"] == build["captions"]["captions"] > 0 and reported["unreviewed"] == []
    assert reported["speech_seconds"] == build["captions"]["speech_seconds"]
    subs = [s for s in ffprobe(folder / "episode.mp4")["streams"] if s["codec_type"] == "subtitle"]
    assert len(subs) == 1 and subs[0]["codec_name"] == "mov_text" and subs[0]["tags"]["language"] == "eng"
    first = _subtitle_starts(folder / "episode.mp4")[0]
    assert abs(first - onsets[0]) < 0.25
    again = build_flow(str(spec), "preview", str(tmp_path / "out"), str(cache_dir))
    assert not again["episode_rewritten"] and again["captions"]["subtitles"] == "captions.srt"
    # a one-segment edit: a 3 s card before the memo; the captions move with the memo
    spec.write_text(head + '  - {id: title, type: card, text: "Part two", seconds: 3}\n' + memo % 9)
    edited = build_flow(str(spec), "preview", str(tmp_path / "out"), str(cache_dir))
    assert edited["episode_rewritten"]
    assert abs(_subtitle_starts(folder / "episode.mp4")[0] - (90 / RATE + onsets[0])) < 0.25
    assert len([s for s in ffprobe(folder / "episode.mp4")["streams"] if s["codec_type"] == "subtitle"]) == 1


def test_music_gets_a_music_caption_and_text_gets_none(tmp_path):

    callout = write_callout(tmp_path / "callout", [
        {"record_id": "M1", "file": "m/fox.mp3", "kind": "music", "title": "Outfoxing", "contributors": "cy"},
        {"record_id": "T1", "kind": "text", "title": "Words", "contributors": "cy", "text": "Shown, not spoken"},
    ], [("cy", "Cy", "IR")], {"m/fox.mp3": corpus("outfoxing_the_fox_music_mp3_44k_stereo.mp3")})
    cache = Cache(tmp_path / "cache")
    co = load_callout(callout)
    sources = {r.record_id: intake_record(co, r, cache) for r in co.records}
    n = round(4 * RATE)
    tl = Timeline("t", RATE, (Segment("a", "montage", 0, n, (Shot("text", n, "T1", text="Shown, not spoken"),),
                                      bed=Bed("M1")),
                              Segment("b", "feature", n, n, (Shot("audio", n, "M1"),))))
    summary = captions.deliver(tl, sources, co, {}, tmp_path, cache)
    cues = json.loads((tmp_path / "captions.json").read_text())["cues"]
    assert [(c["lines"], c["how"], c["start_frame"]) for c in cues] == [
        (["♪ Outfoxing ♪"], "music", 0), (["♪ Outfoxing ♪"], "music", n)]
    assert summary["speech_seconds"] == {} and not summary["unreviewed"]
    assert "♪ Outfoxing ♪" in (tmp_path / "captions.vtt").read_text()
    assert "9137" in (tmp_path / "captions.scc").read_text()  # CEA-608's music note



def test_a_bed_under_a_voice_is_captioned_only_where_the_voice_pauses(tmp_path):

    speech_clip(tmp_path / "one.wav", SENTENCES[:1])
    callout = write_callout(tmp_path / "callout", [
        {"record_id": "M1", "file": "m/fox.mp3", "kind": "music", "title": "Outfoxing", "contributors": "cy"},
        {"record_id": "V1", "file": "m/one.wav", "kind": "voice", "title": "One", "contributors": "cy",
         "transcript": SENTENCES[0]},
    ], [("cy", "Cy", "IR")], {"m/fox.mp3": corpus("outfoxing_the_fox_music_mp3_44k_stereo.mp3"),
                              "m/one.wav": tmp_path / "one.wav"})
    cache = Cache(tmp_path / "cache")
    co = load_callout(callout)
    sources = {r.record_id: intake_record(co, r, cache) for r in co.records}
    voice, still = round(sources["V1"].duration_s * RATE), round(6 * RATE)
    tl = Timeline("t", RATE, (Segment("a", "montage", 0, voice + still,
                                      (Shot("audio", voice, "V1"), Shot("image", still, "M1")),
                                      bed=Bed("M1", mix="under")),))
    captions.deliver(tl, sources, co, {}, tmp_path, cache)
    cues = json.loads((tmp_path / "captions.json").read_text())["cues"]
    assert [c["how"] for c in cues] == ["transcript", "music"]
    speech_end = max(c["end_frame"] for c in cues if c["how"] != "music")
    assert cues[-1]["start_frame"] == speech_end and cues[-1]["end_frame"] == voice + still
    assert cues[-1]["lines"] == ["♪ Outfoxing ♪"]


def test_only_a_changed_transcript_is_aligned_again(talk, tmp_path, monkeypatch):
    from render.deliver.captions import speech

    co, sources, cache, _, _ = talk
    n = round(sources["V1"].duration_s * RATE)
    tl = Timeline("t", RATE, (Segment("a", "feature", 0, n, (Shot("audio", n, "V1"),)),
                              Segment("b", "feature", n, n, (Shot("audio", n, "V2"),))))
    captions.deliver(tl, sources, co, {}, tmp_path, cache)  # whatever earlier tests left, now all cached
    aligned, align = [], speech.align
    monkeypatch.setattr(speech, "align", lambda pcm, tokens: aligned.append(tokens[0].text) or align(pcm, tokens))
    monkeypatch.setattr(speech, "recognise", lambda pcm: pytest.fail("nothing is recognised here"))
    captions.deliver(tl, sources, co, {}, tmp_path, cache)
    assert aligned == []  # nothing changed: nothing aligned
    folder = tmp_path / "transcripts"
    folder.mkdir()
    (folder / "V2.txt").write_text(" ".join(SENTENCES).replace("The quick", "A quick"))
    captions.deliver(tl, sources, co, {}, tmp_path, cache, folder)
    assert aligned == ["A"]  # only the record whose words changed
    cues = json.loads((tmp_path / "captions.json").read_text())["cues"]
    assert next(c["lines"][0].split()[:2] for c in cues if c["record"] == "V2") == [">>", "A"]


def test_scc_text_is_in_cea_608_characters():
    assert files.to_608("“Café” — it’s 1…  ♪ 日本 😀 ok") == '"Café" -- it\'s 1... ♪ ok'


def test_records_not_yet_decoded_are_decoded_in_worker_processes_side_by_side(talk, tmp_path, monkeypatch):
    """pocketsphinx holds the GIL, so ``prepare`` decodes in processes; what they cache is what the
    build's own decoding would have found."""
    from render.deliver.captions import speech

    co, sources, cache, _, _ = talk
    tokens = [speech.Token(w) for w in " ".join(SENTENCES).split()]
    jobs = [(sources["V1"], tokens), (sources["V3"], None), (sources["V1"], None)]
    fresh = Cache(tmp_path / "fresh")
    speech.prepare(jobs, fresh, workers=2)
    monkeypatch.setattr(speech, "pcm16k", lambda *a, **k: pytest.fail("every job was decoded by the workers"))
    got = [speech.heard(s, t, fresh) for s, t in jobs]
    monkeypatch.undo()
    assert got == [speech.heard(s, t, cache) for s, t in jobs]
    assert got[0].how == "transcript" and got[0].aligned_share > 0.8 and got[1].how == "recognition"
    assert len(got[2].words) >= 10 and got[2].how == "recognition"  # a draft: espeak's words recognise poorly


def test_a_caption_the_next_would_cut_under_a_second_joins_it():
    rate = RATE
    first = layout.Cue(0, 8, ("I'm",), False, "recognition", "V1", 8)
    second = layout.Cue(9, 60, ("going home now",), False, "recognition", "V1", 51)
    other = layout.Cue(70, 75, ("Yes",), False, "recognition", "V2", 5)
    tl = Timeline("t", rate, (Segment("s", "feature", 0, 200, (Shot("audio", 200, "V1"),)),))
    laid = layout._timed([first, second, other], tl)
    assert [c.lines for c in laid] == [("I'm going home now",), ("Yes",)]
    assert laid[0].start_frame == 0 and laid[0].speech_frames == 60
    assert all(c.end_frame - c.start_frame >= round(rate) for c in laid)  # each up at least a second


def test_a_music_caption_waits_for_a_word_an_edit_left_alone():
    rate = RATE
    said = layout.Cue(0, 8, ("I'm",), False, "transcript", "V1", 8)  # the shot is cut after this word
    tune = layout.Cue(8, 200, ("♪ Tune ♪",), False, "music", "M1")
    tl = Timeline("t", rate, (Segment("s", "feature", 0, 200, (Shot("audio", 200, "V1"),)),))
    laid = layout._timed([said, tune], tl)
    assert [(c.start_frame, c.end_frame) for c in laid] == [(0, 30), (30, 200)]
