"""The broadcast mezzanine: ProRes 422 HQ in MOV with 24-bit PCM (ch1-2 the stereo mix, ch3-4 the
M&E: the music and effects stems, levelled with the mix), a drop-frame timecode track, the leader
before the programme and black after it, all in one ffmpeg pass (each frame encoded once).
"""

from __future__ import annotations

from pathlib import Path

from render.core import ffmpeg
from render.core.house import HouseFormat
from render.deliver import leader as leader_mod
from render.deliver.source import Programme

#: ProRes 422 HQ, 10-bit 4:2:2, tagged ``apch`` as Apple's encoder writes it; BT.709, legal range.
VIDEO_ARGS = ["-c:v", "prores_ks", "-profile:v", "hq", "-vendor", "apl0", "-pix_fmt", "yuv422p10le",
              "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"]
#: the frames' own tags, which the MOV's colr atom is written from (the encoder's options alone leave it unset)
BT709 = "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
AUDIO_ARGS = ["-c:a", "pcm_s24le", "-ar", "48000"]
#: ProRes 422 HQ at 1920x1080 29.97 is ~220 Mb/s; the estimate for a free-space check leaves a margin.
BYTES_PER_FRAME_1080 = 1_000_000
PCM_BYTES_PER_SECOND = 48000 * 3 * 4


def estimate_bytes(frames: int, seconds: float, width: int, height: int) -> int:
    """What a mezzanine of ``frames`` frames (leader and tail included) needs on disk, generously."""
    return int(frames * BYTES_PER_FRAME_1080 * width * height / (1920 * 1080) + seconds * PCM_BYTES_PER_SECOND)


def argv(prog: Programme, house: HouseFormat, leader: leader_mod.Leader, slate_ass: Path, countdown_ass: Path,
         work: Path, out: Path, title: str) -> list[str]:
    """The mezzanine's command: the programme's pieces (inputs 0 and 1) and its music and effects stems
    (2 and 3), whose sum, levelled as the mix is, is the M&E."""
    tail = leader.tail_frames(house.rate)
    statements, lv, la, (tv, ta) = leader_mod.graph(leader, house.width, house.height, house.rate, slate_ass,
                                                     countdown_ass, tail)
    n_lead = len(lv)
    statements += [prog.picture(house.rate, "pv"),
                   "[2:a][3:a]amix=inputs=2:duration=longest:normalize=0[mxfx]",
                   *prog.levelled("1:a", "mxfx", "mix", "me"),
                   "[pv]format=yuv422p10le[pv2]",
                   f"{''.join(lv)}[pv2]{tv}concat=n={n_lead + 2}:v=1:a=0,{BT709}[v]",
                   f"{ta}asplit=2[ta1][ta2]",
                   f"{''.join(la)}concat=n={n_lead}:v=0:a=1,asplit=2[lead1][lead2]",
                   "[lead1][mix][ta1]concat=n=3:v=0:a=1[ch12]",
                   "[lead2][me][ta2]concat=n=3:v=0:a=1[ch34]",
                   "[ch12][ch34]amerge=inputs=2[a]"]
    return [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *prog.inputs(work),
            *prog.stem_input(work, "mx"), *prog.stem_input(work, "fx"),
            "-filter_complex", ";".join(statements), "-map", "[v]", "-map", "[a]",
            *VIDEO_ARGS, *AUDIO_ARGS, "-timecode", leader.bars, "-metadata", f"title={title}",
            "-video_track_timescale", str(house.rate.numerator), "-f", "mov", str(out)]
