"""Loudness per ITU-R BS.1770-4 / EBU R128, measured by ffmpeg's ebur128 filter.

ffmpeg's meter is a reference-quality C implementation that reads any codec we accept in
one decode pass, so it is faster and simpler here than decoding to numpy first. The
summary (integrated, LRA, true peak) is read from the filter's final log block; the
maximum short-term loudness (3 s window, EBU Tech 3341) is the largest of the per-100 ms
``lavfi.r128.S`` values that ``ametadata`` prints to stdout in the same pass.

Validated against EBU Tech 3341 (integrated) and Tech 3342 (LRA) cases in
``tests/test_analysis_loudness.py``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from render.core import ffmpeg

VERSION = 2  # 2: max short-term loudness
_SUMMARY = {
    "integrated_lufs": re.compile(r"I:\s+(-?[\d.]+|-inf) LUFS"),
    "lra_lu": re.compile(r"LRA:\s+(-?[\d.]+) LU"),
    "true_peak_dbtp": re.compile(r"Peak:\s+(-?[\d.]+|-inf) dBFS"),
}
_SHORT_TERM = re.compile(rb"lavfi\.r128\.S=(-?[\d.]+|-?inf|nan)")
FLOOR = -120.0


@dataclass(frozen=True, slots=True)
class Loudness:
    integrated_lufs: float  # -70.0 or lower means silence (below the absolute gate)
    lra_lu: float
    true_peak_dbtp: float
    max_short_term_lufs: float | None = None  # None: measured by a version that did not read it

    @property
    def silent(self) -> bool:
        return self.integrated_lufs <= -69.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Loudness:
        return cls(**{k: data.get(k) for k in ("integrated_lufs", "lra_lu", "true_peak_dbtp", "max_short_term_lufs")
                      if k in data})


def parse_summary(stderr: str) -> Loudness:
    """Read the ebur128 filter's final summary block."""
    summary = stderr[stderr.rfind("Summary:"):]
    values = {}
    for name, pattern in _SUMMARY.items():
        m = pattern.search(summary)
        values[name] = FLOOR if (m is None or m.group(1) == "-inf") else float(m.group(1))
    return Loudness(**values)


def parse_short_term_max(stdout: bytes) -> float:
    """The largest short-term loudness among ``ametadata`` lines (FLOOR when there are none)."""
    best = FLOOR
    for m in _SHORT_TERM.finditer(stdout):
        text = m.group(1)
        if text in (b"nan", b"inf", b"-inf"):
            continue
        best = max(best, float(text))
    return round(best, 2)


def meter_chain(short_term_to: str = "-") -> str:
    """The meter proper, on 48 kHz sound: ebur128 with true peak (its summary goes to the log at
    ``info``), each 100 ms short-term value printed to ``short_term_to`` (a filter-escaped path, or
    ``-``: stdout)."""
    return f"ebur128=peak=true:metadata=1,ametadata=mode=print:key=lavfi.r128.S:file={short_term_to}"


def meter_filter(layout: str = "") -> str:
    """The audio filter chain of one metering pass (appended after any stream selection).

    ``layout`` pins the channel layout first. Some decoders (Speex) give frames no layout, only a
    channel count; ffmpeg then re-initialises the chain mid-stream and ``aresample`` cannot map
    "2 channels" to anything, so the meter fails. ``aformat`` to the count's default layout
    (``2c`` is stereo) names the channels without changing a sample.
    """
    return f"{to_48k(layout)},{meter_chain()}"


def to_48k(layout: str = "") -> str:
    """The chain that takes a stream to 48 kHz for metering or analysis (``layout``: see ``meter_filter``)."""
    pin = f"aformat=channel_layouts={layout}," if layout else ""
    return f"{pin}aresample=48000"


def figures(stderr: str, short_term: bytes) -> Loudness:
    """The figures of one metering pass: the summary from its log, the short-term values it printed."""
    summary = parse_summary(stderr)
    return Loudness(summary.integrated_lufs, summary.lra_lu, summary.true_peak_dbtp, parse_short_term_max(short_term))


def measure(input_args: list[str], stream: str, timeout_s: float = 600, layout: str = "") -> Loudness:
    """Measure one audio stream (``stream`` as in ``-map``, e.g. ``0:2``) of an input given as ffmpeg args.

    ``layout``: see ``meter_filter``.
    """
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "info", *input_args, "-map", stream,
            "-af", meter_filter(layout), "-f", "null", "-"]
    result = ffmpeg.run(argv, timeout_s=timeout_s)
    return figures(result.stderr_tail, result.stdout)


def measure_file(path: Path, timeout_s: float = 600) -> Loudness:
    """Measure the first audio stream of one of our own outputs (a final mix, a piece)."""
    return measure(["-i", str(path)], "0:a:0", timeout_s)


def pinned_layout(audio) -> str:
    """The layout to pin (``meter_filter``) for a probed audio stream whose frames carry none, else ""."""
    unnamed = audio.layout in ("", "unknown") or audio.layout.endswith("channels")
    return f"{audio.channels}c" if unnamed else ""


def _key(source) -> str:
    return f"{source.content_hash}-l{VERSION}-st"


def cached_source(source, cache) -> Loudness | None:
    """A record's loudness from the cache, or None when it was not measured yet."""
    cached = cache.read_json("loudness", _key(source)) if cache is not None else None
    return Loudness.from_json(cached) if cached is not None and "max_short_term_lufs" in cached else None


def remember_source(source, cache, value: Loudness) -> None:
    """Cache a record's loudness measured elsewhere (``audio.analyze_audio`` meters as it decodes)."""
    if cache is not None:
        cache.write_json("loudness", _key(source), value.to_json())


def measure_source(source, cache=None, timeout_s: float = 600) -> Loudness | None:
    """Loudness of a record's sound (``render.intake.records.Source``), cached by content; None without sound."""
    media = source.media
    if media is None or media.audio is None:
        return None
    value = cached_source(source, cache)
    if value is None:
        a = media.audio
        value = measure(ffmpeg.untrusted_input(source.link, source.demuxer), f"0:{a.index}", timeout_s,
                        layout=pinned_layout(a))
        remember_source(source, cache, value)
    return value
