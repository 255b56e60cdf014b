"""Loudness per ITU-R BS.1770 / EBU R128, measured by ffmpeg's ebur128 filter.

ffmpeg's meter is a reference-quality C implementation that reads any codec we accept in
one decode pass, so it is faster and simpler here than decoding to numpy first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import ffmpeg

VERSION = 1
_SUMMARY = {
    "integrated_lufs": re.compile(r"I:\s+(-?[\d.]+|-inf) LUFS"),
    "lra_lu": re.compile(r"LRA:\s+(-?[\d.]+) LU"),
    "true_peak_dbtp": re.compile(r"Peak:\s+(-?[\d.]+|-inf) dBFS"),
}


@dataclass(frozen=True, slots=True)
class Loudness:
    integrated_lufs: float  # -70.0 or lower means silence (below the absolute gate)
    lra_lu: float
    true_peak_dbtp: float

    @property
    def silent(self) -> bool:
        return self.integrated_lufs <= -69.0


def parse_summary(stderr: str) -> Loudness:
    """Read the ebur128 filter's final summary block."""
    summary = stderr[stderr.rfind("Summary:"):]
    values = {}
    for name, pattern in _SUMMARY.items():
        m = pattern.search(summary)
        values[name] = -120.0 if (m is None or m.group(1) == "-inf") else float(m.group(1))
    return Loudness(**values)


def measure(input_args: list[str], stream: str, timeout_s: float = 600) -> Loudness:
    """Measure one audio stream (``stream`` as in ``-map``, e.g. ``0:2``) of an input given as ffmpeg args."""
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-v", "info", *input_args, "-map", stream,
            "-af", "aresample=48000,ebur128=peak=true", "-f", "null", "-"]
    return parse_summary(ffmpeg.run(argv, timeout_s=timeout_s).stderr_tail)


def measure_file(path: Path, timeout_s: float = 600) -> Loudness:
    """Measure the first audio stream of one of our own outputs."""
    return measure(["-i", str(path)], "0:a:0", timeout_s)
