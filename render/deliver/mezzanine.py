"""The broadcast mezzanines, in one ffmpeg pass each (each frame encoded once): the leader before the
programme and black after it, 24-bit PCM (ch1-2 the stereo mix, ch3-4 the M&E), drop-frame timecode
from the leader's first frame. Two formats, both 1920x1080 at 30000/1001 progressive, BT.709 legal range:

- ``PRORES`` (target ``network``): ProRes 422 HQ in MOV, one 4-channel PCM track, a ``tmcd`` track and
  the captions' SCC as a CEA-608 (``c608``) track, copied as it is.

Ch3-4 carry the M&E: the music and effects stems (``render.compose.store.render_stems``), levelled by
exactly what the level does to the mix (``Programme.levelled``).
- ``XDCAM`` (target ``xdcam``): XDCAM HD422, MPEG-2 4:2:2 Profile @ High Level long GOP (15 frames,
  2 B-frames between anchors) at a constant 50 Mb/s, in MXF OP1a (ffmpeg's ``mxf`` muxer), the four
  channels as four mono PCM tracks (as MXF playout servers commonly take them), the timecode in the
  material package. ffmpeg's ``mpeg2video`` also encodes interlaced (``+ildct+ilme``); the programme
  is progressive, so the file is too (1080p29.97).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from render.core import ffmpeg
from render.core.house import HouseFormat
from render.deliver import leader as leader_mod
from render.deliver.captions import files as caption_files
from render.deliver.source import Programme
from render.master.programme import CAPTIONS_LANGUAGE

_BT709_ARGS = ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"]
#: ProRes 422 HQ, 10-bit 4:2:2, tagged ``apch`` as Apple's encoder writes it; BT.709, legal range.
VIDEO_ARGS = ["-c:v", "prores_ks", "-profile:v", "hq", "-vendor", "apl0", "-pix_fmt", "yuv422p10le", *_BT709_ARGS]
#: XDCAM HD422: MPEG-2 422P@HL (ffmpeg's profile 0, level 2), 8-bit 4:2:2, constant 50 Mb/s (min = max =
#: average; the VBV buffer and its start occupancy as the usual XDCAM HD422 recipes set them), GOP 15 with 2
#: B-frames, intra DC precision 10 bits, the alternate intra VLC and non-linear quantiser (better
#: pictures at a fixed rate). The sequence header carries the BT.709 tags.
XDCAM_VIDEO_ARGS = ["-c:v", "mpeg2video", "-profile:v", "0", "-level:v", "2", "-pix_fmt", "yuv422p",
                    "-b:v", "50M", "-minrate", "50M", "-maxrate", "50M", "-bufsize", "17825792",
                    "-rc_init_occupancy", "17825792", "-g", "15", "-bf", "2", "-sc_threshold", "1000000000",
                    "-dc", "10", "-intra_vlc", "1", "-non_linear_quant", "1", "-qmin", "1", "-qmax", "12",
                    "-lmin", "1*QP2LAMBDA", *_BT709_ARGS]
#: the frames' own tags, which the MOV's colr atom is written from (the encoder's options alone leave it unset)
BT709 = "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
AUDIO_ARGS = ["-c:a", "pcm_s24le", "-ar", "48000"]
PCM_BYTES_PER_SECOND = 48000 * 3 * 4


@dataclass(frozen=True, slots=True)
class Format:
    """One mezzanine format: its file, codec arguments, the picture's pixel format, the container,
    whether the four channels are four mono tracks, and bytes a 1080 frame takes at most (for the
    free-space check, with a margin)."""

    file: str
    video_args: tuple[str, ...]
    pix_fmt: str
    muxer: str
    mono_tracks: bool
    bytes_per_frame_1080: int


#: ProRes 422 HQ at 1920x1080 29.97 is ~220 Mb/s (~0.92 MB a frame).
PRORES = Format("mezzanine.mov", tuple(VIDEO_ARGS), "yuv422p10le", "mov", False, 1_000_000)
#: 50 Mb/s is 209 kB a frame at 29.97; MPEG-2's stuffing keeps it there.
XDCAM = Format("xdcam.mxf", tuple(XDCAM_VIDEO_ARGS), "yuv422p", "mxf", True, 250_000)


def estimate_bytes(frames: int, seconds: float, width: int, height: int, fmt: Format = PRORES) -> int:
    """What a mezzanine of ``frames`` frames (leader and tail included) needs on disk, generously."""
    return int(frames * fmt.bytes_per_frame_1080 * width * height / (1920 * 1080) + seconds * PCM_BYTES_PER_SECOND)


def argv(prog: Programme, house: HouseFormat, leader: leader_mod.Leader, slate_ass: Path, countdown_ass: Path,
         work: Path, out: Path, title: str, fmt: Format = PRORES,
         captions: caption_files.Written | None = None) -> list[str]:
    """The mezzanine's command: the programme's pieces (inputs 0 and 1) and its music and effects stems
    (2 and 3), whose sum, levelled as the mix is, is the M&E. ``captions``: in a MOV, their SCC (input 4)
    becomes the ``c608`` track by stream copy, each caption on its programme frame after the leader."""
    tail = leader.tail_frames(house.rate)
    statements, lv, la, (tv, ta) = leader_mod.graph(leader, house.width, house.height, house.rate, slate_ass,
                                                     countdown_ass, tail)
    n_lead = len(lv)
    # the leader is made 10-bit 4:2:2; an 8-bit format is converted once, after the concat
    to_format = "" if fmt.pix_fmt == "yuv422p10le" else f",format={fmt.pix_fmt}"
    statements += [prog.picture(house.rate, "pv"),
                   "[2:a][3:a]amix=inputs=2:duration=longest:normalize=0[mxfx]",
                   *prog.levelled("1:a", "mxfx", "mix", "me"),
                   "[pv]format=yuv422p10le[pv2]",
                   f"{''.join(lv)}[pv2]{tv}concat=n={n_lead + 2}:v=1:a=0,{BT709}{to_format}[v]",
                   f"{ta}asplit=2[ta1][ta2]",
                   f"{''.join(la)}concat=n={n_lead}:v=0:a=1,asplit=2[lead1][lead2]",
                   "[lead1][mix][ta1]concat=n=3:v=0:a=1[ch12]",
                   "[lead2][me][ta2]concat=n=3:v=0:a=1[ch34]"]
    if fmt.mono_tracks:
        statements += ["[ch12]channelsplit=channel_layout=stereo[a1][a2]",
                       "[ch34]channelsplit=channel_layout=stereo[a3][a4]"]
        audio_maps = [arg for i in range(1, 5) for arg in ("-map", f"[a{i}]")]
    else:
        statements.append("[ch12][ch34]amerge=inputs=2[a]")
        audio_maps = ["-map", "[a]"]
    scc_in, scc_out = [], []
    if captions is not None and fmt.muxer == "mov":
        scc_in = ["-f", "scc", "-i", str(captions.scc)]
        scc_out = ["-map", "4:0", "-c:s", "copy",
                   "-bsf:s", caption_files.scc_clock(captions.start_timecode, leader.frames, house.rate),
                   "-metadata:s:s:0", f"language={CAPTIONS_LANGUAGE}"]
    container = (["-video_track_timescale", str(house.rate.numerator)] if fmt.muxer == "mov" else [])
    return [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *prog.inputs(work),
            *prog.stem_input(work, "mx"), *prog.stem_input(work, "fx"), *scc_in,
            "-filter_complex", ";".join(statements), "-map", "[v]", *audio_maps, *scc_out,
            *fmt.video_args, *AUDIO_ARGS, "-timecode", leader.bars, "-metadata", f"title={title}",
            *container, "-f", fmt.muxer, str(out)]
