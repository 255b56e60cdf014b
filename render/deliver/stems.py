"""The sound stems a network takes beside the mezzanine: dialogue (DX), music (MX) and effects and
ambience (FX), each a stereo 24-bit 48 kHz WAV exactly as long as the programme, levelled as the mix
is (``Programme.levelled``), so that together they are the mix; ``residual`` measures how nearly.

Each stem is rendered per piece by the piece's own graph (``render.compose.store.render_stems``): a
voice record's sound is dialogue, a music record's and every bed's music, a clip's own sound dialogue
inside its analysed speech and effects outside it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from render.core import ffmpeg
from render.core.errors import FfmpegError
from render.deliver.source import Programme
from render.edit.timeline import STEMS

AUDIO_ARGS = ["-c:a", "pcm_s24le", "-ar", "48000", "-ac", "2"]
#: The stems' sum may differ from the mix by no more than this (peak), as networks check it.
RESIDUAL_LIMIT_DBFS = -60.0
FLOOR_DBFS = -150.0  # what digital silence (or less than 24 bits can hold) is reported as
#: the file each stem is delivered as, by stem
FILES = {stem: f"stem-{stem}.wav" for stem in STEMS}
ROLES = {stem: f"stem-{stem}" for stem in STEMS}
WHAT = {"dx": "dialogue", "mx": "music", "fx": "effects and ambience"}


def estimate_bytes(samples: int) -> int:
    return samples * 2 * 3 + (1 << 16)


def argv(prog: Programme, stem: str, work: Path, out: Path) -> list[str]:
    """One stem's command: the pieces' mix (input 0) drives the level, the stem (input 1) is written."""
    return [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *prog.mix_input(work),
            *prog.stem_input(work, stem), "-filter_complex", ";".join(prog.levelled("0:a", "1:a", None, "s")),
            "-map", "[s]", *AUDIO_ARGS, "-map_metadata", "-1", "-bitexact", "-f", "wav", str(out)]


_PEAK = re.compile(r"Peak level dB:\s*(\S+)")
_RMS = re.compile(r"RMS level dB:\s*(\S+)")


def residual(prog: Programme, files: dict[str, Path], work: Path, timeout_s: float) -> dict:
    """DX + MX + FX (the delivered files) less the levelled mix, sample by sample: its peak and RMS
    in dBFS over both channels, and whether the peak is under ``RESIDUAL_LIMIT_DBFS``."""
    graph = [prog.sound("mix", mix_input=0),
             "[1:a][2:a][3:a]amix=inputs=3:duration=longest:normalize=0[sum]",
             "[mix]volume=-1[neg]",
             ("[sum][neg]amix=inputs=2:duration=longest:normalize=0,"
              "astats=measure_perchannel=none:measure_overall=Peak_level+RMS_level")]
    cmd = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-v", "info", *prog.mix_input(work),
           *[a for stem in STEMS for a in ("-i", str(files[stem]))], "-filter_complex", ";".join(graph),
           "-f", "null", "-"]
    said = ffmpeg.run(cmd, timeout_s=timeout_s).stderr_tail
    peak, rms = (_level(pattern, said, cmd) for pattern in (_PEAK, _RMS))
    return {"peak_dbfs": peak, "rms_dbfs": rms, "limit_dbfs": RESIDUAL_LIMIT_DBFS,
            "passed": peak < RESIDUAL_LIMIT_DBFS}


def _level(pattern: re.Pattern, said: str, cmd: list[str]) -> float:
    found = pattern.findall(said)
    if not found:
        raise FfmpegError(cmd, 0, said, f"astats printed no {pattern.pattern.split(':')[0]}")
    value = float(found[-1])
    return round(value, 1) if math.isfinite(value) and value > FLOOR_DBFS else FLOOR_DBFS
