"""The broadcast mezzanine: ProRes 422 HQ in MOV with 24-bit PCM (ch1-2 the stereo mix, ch3-4 the
M&E), a drop-frame timecode track, the leader before the programme and black after it, and the
captions' SCC as a CEA-608 (``c608``) track, all in one ffmpeg pass (each frame encoded once, the
captions copied as they are).
"""

from __future__ import annotations

from pathlib import Path

from render.core import ffmpeg
from render.core.house import HouseFormat
from render.deliver import leader as leader_mod
from render.deliver.captions import files as caption_files
from render.deliver.source import Programme
from render.master.programme import CAPTIONS_LANGUAGE

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
         work: Path, out: Path, title: str, me_sound: str | None = None,
         captions: caption_files.Written | None = None) -> list[str]:
    """The mezzanine's command. ``me_sound`` is a filter statement ending in ``[me]`` (the programme's
    M&E, stereo, exactly as long as its mix); without one, ch3-4 carry silence. ``captions``: their SCC
    becomes the ``c608`` track by stream copy, each caption on its programme frame after the leader."""
    tail = leader.tail_frames(house.rate)
    statements, lv, la, (tv, ta) = leader_mod.graph(leader, house.width, house.height, house.rate, slate_ass,
                                                     countdown_ass, tail)
    n_lead = len(lv)
    statements += [prog.picture(house.rate, "pv"), prog.sound("mix"),
                   me_sound or f"anullsrc=r=48000:cl=stereo,atrim=end_sample={prog.samples},asetpts=N/SR/TB[me]",
                   "[pv]format=yuv422p10le[pv2]",
                   f"{''.join(lv)}[pv2]{tv}concat=n={n_lead + 2}:v=1:a=0,{BT709}[v]",
                   f"{ta}asplit=2[ta1][ta2]",
                   f"{''.join(la)}concat=n={n_lead}:v=0:a=1,asplit=2[lead1][lead2]",
                   "[lead1][mix][ta1]concat=n=3:v=0:a=1[ch12]",
                   "[lead2][me][ta2]concat=n=3:v=0:a=1[ch34]",
                   "[ch12][ch34]amerge=inputs=2[a]"]
    scc_in, scc_out = [], []
    if captions is not None:
        scc_in = ["-f", "scc", "-i", str(captions.scc)]
        scc_out = ["-map", "2:0", "-c:s", "copy",
                   "-bsf:s", caption_files.scc_clock(captions.start_timecode, leader.frames, house.rate),
                   "-metadata:s:s:0", f"language={CAPTIONS_LANGUAGE}"]
    return [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *prog.inputs(work), *scc_in,
            "-filter_complex", ";".join(statements), "-map", "[v]", "-map", "[a]", *scc_out,
            *VIDEO_ARGS, *AUDIO_ARGS, "-timecode", leader.bars, "-metadata", f"title={title}",
            "-video_track_timescale", str(house.rate.numerator), "-f", "mov", str(out)]
