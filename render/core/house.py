"""The house formats: the one place that knows sizes, rates, codecs and their settings."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from render.core.timebase import AUDIO_RATE_HZ

#: Bump when anything that changes rendered pixels or samples changes, so caches rebuild.
HOUSE_VERSION = 1

RATE = Fraction(30000, 1001)
#: Broadcast-legal picture (BT.709 limited range): every rendered piece is clipped to luma 16-235 and
#: chroma 16-240 as its picture leaves the graph, as a hard legaliser does. Phones record super-whites, test charts carry sub-black
#: PLUGE bars, and QC fails a frame with more than 1% of its picture outside the range.
LEGALISE = "lutyuv=y='clip(val,16,235)':u='clip(val,16,240)':v='clip(val,16,240)'"
BACKGROUND = "0x101418"  # the house background: near-black blue-grey, used under alpha and in cards

#: Programme loudness delivered (ATSC A/85): integrated -24 LKFS +/-1 LU, true peak at most -2 dBTP.
TARGET_LUFS = -24.0
TOLERANCE_LU = 1.0
TRUE_PEAK_DBTP = -2.0


@dataclass(frozen=True, slots=True)
class HouseFormat:
    """One delivery profile. Every segment of an episode is encoded with exactly these settings,
    which is what lets segments be joined by stream copy."""

    name: str
    width: int
    height: int
    x264_preset: str
    crf: int
    level: str
    audio_bitrate: str
    x264_params: str = ""  # preview: ultrafast strips CABAC and 8x8 transforms; we keep them for true High profile
    aac_coder: str = "twoloop"  # the sound is encoded once, single-threaded, for the whole episode
    rate: Fraction = RATE
    sample_rate_hz: int = AUDIO_RATE_HZ
    gop_frames: int = 60  # 2 s: seeks stay cheap, and every segment starts on an IDR anyway

    def video_codec_args(self) -> list[str]:
        """x264 settings shared by every segment of this profile."""
        return [
            "-c:v", "libx264", "-preset", self.x264_preset, "-crf", str(self.crf),
            "-profile:v", "high", "-level:v", self.level, "-pix_fmt", "yuv420p",
            "-g", str(self.gop_frames), "-keyint_min", str(self.gop_frames), "-sc_threshold", "0",
            "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv",
            "-video_track_timescale", str(self.rate.numerator),
        ] + (["-x264-params", self.x264_params] if self.x264_params else [])

    def audio_codec_args(self) -> list[str]:
        """The delivery audio codec (AAC-LC), used once when the episode is muxed."""
        return ["-c:a", "aac", "-profile:a", "aac_low", "-aac_coder", self.aac_coder, "-b:a", self.audio_bitrate,
                "-ar", str(self.sample_rate_hz), "-ac", "2"]

    def key(self) -> dict:
        """What a cache key needs to know about this profile."""
        return {"house": HOUSE_VERSION, "profile": self.name, "w": self.width, "h": self.height,
                "rate": str(self.rate), "preset": self.x264_preset, "crf": self.crf, "level": self.level}


PROFILES: dict[str, HouseFormat] = {
    "master": HouseFormat("master", 1920, 1080, "veryfast", 18, "4.1", "256k"),
    "preview": HouseFormat("preview", 960, 540, "ultrafast", 26, "3.1", "160k", "cabac=1:8x8dct=1", "fast"),
}


def profile(name: str) -> HouseFormat:
    """The house format called ``name`` (``master`` or ``preview``)."""
    try:
        return PROFILES[name]
    except KeyError:
        from render.core.errors import UserError

        raise UserError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}") from None
