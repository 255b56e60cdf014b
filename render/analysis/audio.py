"""Sound analysis of a record or a final mix: loudness, silence and dead air, clipping,
speech-or-music, tempo and beats. librosa is used here and nowhere else.

Positions are exact sample indices at the project audio rate (48 kHz, ``timebase.AUDIO_RATE_HZ``),
counted from the first decoded sample (the render path starts each source the same way,
``asetpts=PTS-STARTPTS``); ``Span.frames()`` converts to project frames (30000/1001).

Heuristic for speech or music (documented, tuned on the corpus, good enough to duck a music
bed under speech): each 1 s window of the mono 22.05 kHz signal is silence when its RMS is
under ``SILENCE_DBFS``; otherwise speech shows both (a) many low-energy frames — syllables and
pauses make the energy of 12 ms hops drop under half the window mean (the "low short-time
energy ratio", LSTER, Lu, Zhang & Jiang 2002) — and (b) a high zero-crossing-rate ratio —
unvoiced consonants make the zero-crossing rate jump over 1.5x the window mean (HZCRR).
Music holds its energy. A window is speech when both normalised features are over their
thresholds (``_speech_score`` > 0), then labels are smoothed with a 5-window running median. Thresholds were tuned on the corpus
(see ``_speech_score``): every speech file reads >= 90% speech, every music file <= 28%.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from render.analysis import loudness as _loudness
from render.analysis.loudness import Loudness
from render.core import ffmpeg, text
from render.core.cache import Cache, key_of
from render.core.house import RATE
from render.core.pipe import stream
from render.core.timebase import AUDIO_RATE_HZ, FrameRange

VERSION = 1
ANALYSIS_SR = 22050          # librosa's working rate (features, tempo)
HOP = 256                    # 11.6 ms at 22.05 kHz: beat and feature resolution
SILENCE_DBFS = -50.0         # RMS over 10 ms under this is silence (phone room tone is around -60)
SILENCE_MIN_S = 0.25         # shorter gaps are not silences (pauses between words)
DEAD_AIR_MIN_S = 1.5         # silences this long anywhere, or any silence at the head or tail, are dead air
CLIP_LEVEL = 0.999           # |sample| at or over this is at full scale
CLIP_RUN = 3                 # consecutive full-scale samples that make a clip
SMOOTH_WINDOWS = 5           # speech/music labels are a 5 s running median
CONTENT_SHARE = 0.6          # "speech" or "music" when that is at least this share of the non-silent sound
MUSIC_FOR_BEATS = 0.5        # beats are tracked when at least this fraction of the sound is music (or kind is music)

_librosa_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Span(FrameRange):
    """A half-open range of samples at 48 kHz: ``[start, end)`` (``length`` samples; ``seconds(AUDIO_RATE_HZ)``)."""

    def frames(self, rate: Fraction = RATE, *, inside: bool = False) -> tuple[int, int]:
        """Project frames ``[first, last)`` covering the span (``inside``: only frames wholly inside)."""
        a = Fraction(self.start) * rate / AUDIO_RATE_HZ
        b = Fraction(self.end) * rate / AUDIO_RATE_HZ
        if inside:
            return -(-a.numerator // a.denominator), b.numerator // b.denominator
        return a.numerator // a.denominator, -(-b.numerator // b.denominator)

    def to_json(self) -> dict:
        f0, f1 = self.frames()
        return {"start": self.start, "end": self.end, "start_frame": f0, "end_frame": f1,
                "start_s": round(self.start / AUDIO_RATE_HZ, 4), "end_s": round(self.end / AUDIO_RATE_HZ, 4)}

    @classmethod
    def from_json(cls, data: dict) -> Span:
        return cls(int(data["start"]), int(data["end"]))


def sample_to_frame(sample: int, rate: Fraction = RATE) -> int:
    """The project frame on screen when sample ``sample`` (48 kHz) plays."""
    f = Fraction(sample) * rate / AUDIO_RATE_HZ
    return f.numerator // f.denominator


@dataclass(frozen=True, slots=True)
class AudioAnalysis:
    samples: int                      # length at 48 kHz
    loudness: Loudness
    silences: tuple[Span, ...]        # every stretch under SILENCE_DBFS of at least SILENCE_MIN_S
    dead_air: tuple[Span, ...]        # silences to cut: at the head or tail, or at least DEAD_AIR_MIN_S long
    clipping: tuple[Span, ...]        # runs of full-scale samples (merged when under 10 ms apart)
    clipped_samples: int
    content: str                      # "speech", "music", "mixed" or "silence"
    speech_fraction: float            # of the whole length
    music_fraction: float
    speech: tuple[Span, ...] = ()     # where to duck a music bed
    music: tuple[Span, ...] = ()
    tempo_bpm: float | None = None    # None: not music, or no steady beat
    beats: tuple[int, ...] = ()       # beat positions, samples at 48 kHz
    beat_frames: tuple[int, ...] = field(default=())  # the project frame on screen at each beat

    @property
    def seconds(self) -> float:
        return self.samples / AUDIO_RATE_HZ

    @property
    def silent(self) -> bool:
        return self.content == "silence"

    @property
    def head_silence(self) -> int:
        """Samples of dead air at the start (0 when the sound starts at once)."""
        return self.dead_air[0].end if self.dead_air and self.dead_air[0].start == 0 else 0

    @property
    def tail_silence(self) -> int:
        """Samples of dead air at the end."""
        return self.samples - self.dead_air[-1].start if self.dead_air and self.dead_air[-1].end >= self.samples else 0

    @property
    def clipped(self) -> bool:
        return self.clipped_samples > 0

    def to_json(self) -> dict:
        return {
            "version": VERSION, "samples": self.samples, "seconds": round(self.seconds, 4),
            "loudness": self.loudness.to_json(),
            "silences": [s.to_json() for s in self.silences], "dead_air": [s.to_json() for s in self.dead_air],
            "clipping": [s.to_json() for s in self.clipping], "clipped_samples": self.clipped_samples,
            "content": self.content, "speech_fraction": self.speech_fraction, "music_fraction": self.music_fraction,
            "speech": [s.to_json() for s in self.speech], "music": [s.to_json() for s in self.music],
            "tempo_bpm": self.tempo_bpm, "beats": list(self.beats), "beat_frames": list(self.beat_frames),
        }

    @classmethod
    def from_json(cls, d: dict) -> AudioAnalysis:
        spans = lambda k: tuple(Span.from_json(s) for s in d.get(k, []))
        return cls(
            samples=int(d["samples"]), loudness=Loudness.from_json(d["loudness"]),
            silences=spans("silences"), dead_air=spans("dead_air"), clipping=spans("clipping"),
            clipped_samples=int(d["clipped_samples"]), content=d["content"],
            speech_fraction=float(d["speech_fraction"]), music_fraction=float(d["music_fraction"]),
            speech=spans("speech"), music=spans("music"), tempo_bpm=d.get("tempo_bpm"),
            beats=tuple(d.get("beats", [])), beat_frames=tuple(d.get("beat_frames", [])),
        )


# ---------------------------------------------------------------------------------------------
# decoding

def decode(input_args: list[str], stream_spec: str, channels: int, *, timeout_s: float,
           layout: str = "", meter: bool = False) -> tuple[np.ndarray, Loudness | None]:
    """All samples of one audio stream at 48 kHz as float32 ``(n, channels)``, and with ``meter`` its
    loudness, measured in the same pass (else None).

    Mono and stereo keep their channels untouched (an up- or downmix would scale samples and hide
    clipping); more channels are downmixed to stereo. 48 kHz is the project rate; swr (the render
    path's resampler) keeps full-scale runs flat enough to find clipping, and every position is
    then already a project sample. ``layout`` pins a layout the frames do not carry (see
    ``loudness.meter_filter``). The meter reads a split of the same 48 kHz sound that
    ``loudness.measure`` would, so its figures are the same (checked sample for sample on the
    demo's uploads); one pass instead of two saves a process start and a decode per record.
    """
    chunks: list[np.ndarray] = []
    keep = channels if channels in (1, 2) else 2
    pcm_out = ["-ac", str(keep), "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"]
    with contextlib.ExitStack() as scratch:
        if meter:  # the short-term values go to a file: stdout carries the samples
            short_term = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="remixtv-meter-"))) / "st.txt"
            graph = (f"[{stream_spec}]{_loudness.to_48k(layout)},asplit=2[pcm][m];"
                     f"[m]{_loudness.meter_chain(text.filter_path(short_term))},anullsink")
            argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "info", *input_args, "-filter_complex", graph,
                    "-map", "[pcm]", *pcm_out]
        else:
            argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "error", *input_args, "-map", stream_spec,
                    "-vn", "-sn", "-dn", "-af", _loudness.to_48k(layout), *pcm_out]
        run = stream(argv, 4 * keep, lambda b: chunks.append(np.frombuffer(b, dtype="<f4")), timeout_s=timeout_s,
                     records_per_chunk=48000)
        loud = _loudness.figures(run.stderr_tail, short_term.read_bytes()) if meter else None
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return data.reshape(-1, keep), loud


# ---------------------------------------------------------------------------------------------
# silence and clipping (numpy)

def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges where ``mask`` is true."""
    if mask.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def find_silences(pcm: np.ndarray, sr: int = AUDIO_RATE_HZ, threshold_dbfs: float = SILENCE_DBFS,
                  min_s: float = SILENCE_MIN_S) -> tuple[Span, ...]:
    """Stretches where every channel's 10 ms RMS stays under ``threshold_dbfs``, at least ``min_s`` long."""
    n = pcm.shape[0]
    if n == 0:
        return ()
    win = sr // 100
    whole = n // win
    x = pcm[: whole * win].reshape(whole, win, -1)
    rms = np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1)).max(axis=1)
    quiet = rms < 10 ** (threshold_dbfs / 20)
    if n > whole * win:  # the short last window
        tail = pcm[whole * win:]
        quiet = np.append(quiet, np.sqrt(np.mean(np.square(tail, dtype=np.float64), axis=0)).max() < 10 ** (threshold_dbfs / 20))
    out = []
    for a, b in _runs(quiet):
        s, e = a * win, min(n, b * win)
        if e - s >= min_s * sr or (s == 0 and e == n):
            out.append(Span(s, e))
    return tuple(out)


def dead_air_of(silences: tuple[Span, ...], samples: int, sr: int = AUDIO_RATE_HZ,
                min_s: float = DEAD_AIR_MIN_S) -> tuple[Span, ...]:
    return tuple(s for s in silences if s.start == 0 or s.end >= samples or s.length >= min_s * sr)


def find_clipping(pcm: np.ndarray, level: float = CLIP_LEVEL, run: int = CLIP_RUN,
                  merge: int = AUDIO_RATE_HZ // 100) -> tuple[tuple[Span, ...], int]:
    """Runs of at least ``run`` samples at full scale on any channel, merged when under ``merge`` apart."""
    if pcm.size == 0:
        return (), 0
    full = (np.abs(pcm) >= level).any(axis=1)
    runs = [(a, b) for a, b in _runs(full) if b - a >= run]
    count = sum(b - a for a, b in runs)
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < merge:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return tuple(Span(a, b) for a, b in merged), count


# ---------------------------------------------------------------------------------------------
# librosa: speech or music, tempo and beats

def _librosa():
    import librosa  # confined to this module

    return librosa


def to_analysis_rate(pcm: np.ndarray, sr: int = AUDIO_RATE_HZ) -> np.ndarray:
    librosa = _librosa()
    mono = pcm.mean(axis=1) if pcm.ndim == 2 else pcm
    return librosa.resample(np.ascontiguousarray(mono, dtype=np.float32), orig_sr=sr, target_sr=ANALYSIS_SR,
                            res_type="soxr_hq")


def window_features(y: np.ndarray, sr: int = ANALYSIS_SR) -> dict[str, np.ndarray]:
    """Per 1 s window: RMS (dBFS), low short-time energy ratio, high zero-crossing-rate ratio."""
    librosa = _librosa()
    frame = 1024
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=HOP, center=True)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=frame, hop_length=HOP, center=True)[0]
    per = max(1, round(sr / HOP))  # frames per 1 s window
    n = max(1, len(rms) // per)
    out = {k: np.zeros(n) for k in ("db", "lster", "hzcrr")}
    for i in range(n):  # windows, not pixels or samples: a few hundred per 10 minutes
        r = rms[i * per:(i + 1) * per]
        z = zcr[i * per:(i + 1) * per]
        mean_r = float(np.mean(r)) + 1e-12
        out["db"][i] = 20 * np.log10(float(np.sqrt(np.mean(np.square(r)))) + 1e-12)
        out["lster"][i] = float(np.mean(r < 0.5 * mean_r))
        out["hzcrr"][i] = float(np.mean(z > 1.5 * (float(np.mean(z)) + 1e-12)))
    return out


def _speech_score(f: dict[str, np.ndarray]) -> np.ndarray:
    """Positive for speech, negative for music (see the module docstring).

    Speech needs both: many low-energy frames (LSTER over 0.18) and a jumpy zero-crossing rate
    (HZCRR over 0.08). Measured medians on the corpus: LibriSpeech 0.30/0.17, JFK 0.48/0.13,
    commentary 0.22/0.18; piano 0.00/0.01, "Outfoxing the Fox" 0.08/0.17, jazz trumpet 0.17/0.03,
    strings 0.01/0.05, a song 0.02/0.13 (music holds its energy; speech rarely keeps a steady ZCR).
    """
    return np.minimum((f["lster"] - 0.18) / 0.10, (f["hzcrr"] - 0.08) / 0.05)


def classify(y: np.ndarray, sr: int = ANALYSIS_SR) -> np.ndarray:
    """One label per 1 s window: 0 silence, 1 speech, 2 music."""
    f = window_features(y, sr)
    labels = np.where(_speech_score(f) > 0, 1, 2)
    labels[f["db"] < SILENCE_DBFS] = 0
    k = SMOOTH_WINDOWS
    if len(labels) >= k:  # median smoothing of speech/music over k windows (silence stays as measured)
        p = k // 2
        padded = np.concatenate(([labels[0]] * p, labels, [labels[-1]] * p))
        smooth = np.median(np.stack([padded[i:i + len(labels)] for i in range(k)]), axis=0).astype(int)
        labels = np.where(labels == 0, 0, np.where(smooth == 0, labels, smooth))
    return labels


def track_beats(y: np.ndarray, sr: int = ANALYSIS_SR) -> tuple[float | None, tuple[int, ...]]:
    """Tempo (BPM) and beat positions in samples at 48 kHz (librosa's dynamic-programming tracker)."""
    librosa = _librosa()
    if y.size < sr * 2:
        return None, ()
    with _librosa_lock:  # numba-compiled code is thread safe, but compiling twice at once is wasted time
        onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP)
        tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=HOP, units="samples",
                                               start_bpm=120.0)
    bpm = float(np.atleast_1d(tempo)[0])
    if not bpm or len(beats) < 4:
        return None, ()
    to48 = [round(Fraction(int(b)) * AUDIO_RATE_HZ / sr) for b in beats]
    return round(bpm, 2), tuple(to48)


def _label_spans(labels: np.ndarray, which: int, samples: int) -> tuple[Span, ...]:
    # label windows are librosa's 86 hops (0.9985 s) counted as whole seconds: past ~11 min the last
    # window's second can start after the sound ends, so both ends are clamped to it
    return tuple(Span(min(samples, a * AUDIO_RATE_HZ), min(samples, b * AUDIO_RATE_HZ))
                 for a, b in _runs(labels == which))


# ---------------------------------------------------------------------------------------------
# the analysis

def analyze_pcm(pcm: np.ndarray, loud: Loudness, *, music_hint: bool = False) -> AudioAnalysis:
    """Everything but loudness from 48 kHz float samples (``(n, channels)``)."""
    n = int(pcm.shape[0])
    silences = find_silences(pcm)
    clipping, clipped = find_clipping(pcm)
    quiet = sum(s.length for s in silences)
    if n == 0 or quiet >= n or loud.silent:
        return AudioAnalysis(n, loud, silences or ((Span(0, n),) if n else ()), silences or ((Span(0, n),) if n else ()),
                             clipping, clipped, "silence", 0.0, 0.0)
    y = to_analysis_rate(pcm)
    labels = classify(y)
    windows = max(1, len(labels))
    speech_fraction = round(float(np.mean(labels == 1)), 3)
    music_fraction = round(float(np.mean(labels == 2)), 3)
    if speech_fraction + music_fraction == 0:
        content = "silence"
    elif speech_fraction >= CONTENT_SHARE * (speech_fraction + music_fraction):
        content = "speech"
    elif music_fraction >= CONTENT_SHARE * (speech_fraction + music_fraction):
        content = "music"
    else:
        content = "mixed"
    tempo, beats = (None, ())
    if music_hint or music_fraction >= MUSIC_FOR_BEATS:
        tempo, beats = track_beats(y)
    del windows
    return AudioAnalysis(
        samples=n, loudness=loud, silences=silences, dead_air=dead_air_of(silences, n),
        clipping=clipping, clipped_samples=clipped, content=content,
        speech_fraction=speech_fraction, music_fraction=music_fraction,
        speech=_label_spans(labels, 1, n), music=_label_spans(labels, 2, n),
        tempo_bpm=tempo, beats=beats, beat_frames=tuple(sample_to_frame(b) for b in beats),
    )


def analyze_input(input_args: list[str], stream_spec: str, channels: int, *, music_hint: bool = False,
                  timeout_s: float = 900, loud: Loudness | None = None, layout: str = "") -> AudioAnalysis:
    """Analyse one audio stream of an input given as ffmpeg args, in one decode (the loudness too,
    unless ``loud`` is already known)."""
    pcm, measured = decode(input_args, stream_spec, channels, timeout_s=timeout_s, layout=layout, meter=loud is None)
    return analyze_pcm(pcm, loud or measured, music_hint=music_hint)


def cache_key(content_hash: str, music_hint: bool) -> str:
    return key_of("audio", content_hash, VERSION, _loudness.VERSION, SILENCE_DBFS, SILENCE_MIN_S, DEAD_AIR_MIN_S,
                  CLIP_LEVEL, CLIP_RUN, SMOOTH_WINDOWS, CONTENT_SHARE, music_hint)


def analyze_audio(source, cache: Cache | None = None, *, timeout_s: float | None = None) -> AudioAnalysis | None:
    """Analyse a record's sound (a ``render.intake.records.Source``), cached by content; None when it has no sound.

    Beats are tracked for ``music`` records and for any sound that is mostly music.
    """
    media = source.media
    if media is None or media.audio is None:
        return None
    music_hint = source.record.kind == "music"
    key = cache_key(source.content_hash, music_hint)
    if cache is not None:
        cached = cache.read_json("analysis-audio", key)
        if cached is not None and cached.get("version") == VERSION:
            return AudioAnalysis.from_json(cached)
    timeout_s = timeout_s or 120 + 4 * float(media.duration_s or 60)
    # the same cached, layout-aware measurement intake uses: measured once per upload (here, in the
    # analysis' own decode when intake has not measured it), not once per analysis
    loud = _loudness.cached_source(source, cache)
    result = analyze_input(ffmpeg.untrusted_input(source.link, source.demuxer), f"0:{media.audio.index}",
                           media.audio.channels, music_hint=music_hint, timeout_s=timeout_s, loud=loud,
                           layout=_loudness.pinned_layout(media.audio))
    if loud is None:
        _loudness.remember_source(source, cache, result.loudness)
    if cache is not None:
        cache.write_json("analysis-audio", key, result.to_json())
    return result


def analyze_audio_file(path: Path, *, music_hint: bool = False, timeout_s: float = 1800) -> AudioAnalysis:
    """Analyse the first audio stream of one of our own outputs (e.g. the final episode mix); not cached."""
    streams = ffmpeg.ffprobe_output(Path(path)).get("streams", [])
    channels = next((int(s.get("channels") or 2) for s in streams if s.get("codec_type") == "audio"), 2)
    return analyze_input(["-i", str(path)], "0:a:0", channels, music_hint=music_hint, timeout_s=timeout_s)


__all__ = [
    "AudioAnalysis",
    "Span",
    "analyze_audio",
    "analyze_audio_file",
    "analyze_input",
    "analyze_pcm",
    "classify",
    "find_clipping",
    "find_silences",
    "sample_to_frame",
    "track_beats",
]
