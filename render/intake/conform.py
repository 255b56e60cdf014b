"""The conform recipe: filter chains that bring any accepted source to the house format.

Pure functions (MediaInfo + HouseFormat -> filter-graph text), so tests can assert them without
running ffmpeg. The render path applies these chains inline while it cuts a segment, so every
output frame is decoded from the original upload and encoded exactly once, at final quality.

Geometry is computed here in Python from the probed display size (rotation and SAR applied),
so ffmpeg only ever gets explicit even sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from render.core.house import BACKGROUND, HouseFormat
from render.core.timebase import AUDIO_RATE_HZ
from render.intake.probe import MediaInfo

CONFORM_VERSION = 2  # 2: one time origin, house background pad, DC blocker, IVTC
ASPECT_TOLERANCE = Fraction(3, 100)  # within 3% of 16:9 we fill the frame rather than add borders
PUSH_IN = Fraction(112, 100)  # moving stills end 12% closer than they start
PAN_ASPECT = Fraction(2)  # pictures wider than 2:1 pan across instead of pushing in


def _even(x: Fraction | float) -> int:
    return max(2, round(x / 2) * 2)


@dataclass(frozen=True, slots=True)
class Fit:
    """Where the picture lands in a WxH frame: foreground size, and whether a backdrop shows."""

    fg_w: int
    fg_h: int
    frame_w: int
    frame_h: int

    @property
    def fills(self) -> bool:
        return self.fg_w == self.frame_w and self.fg_h == self.frame_h


def fit(display_w: int, display_h: int, frame_w: int, frame_h: int, mode: str) -> Fit:
    """Fit a picture of display size into the frame: ``blur``/``pad`` keep it whole, ``crop`` fills."""
    aspect = Fraction(display_w, display_h)
    frame_aspect = Fraction(frame_w, frame_h)
    if abs(aspect / frame_aspect - 1) <= ASPECT_TOLERANCE:
        return Fit(frame_w, frame_h, frame_w, frame_h)
    if mode == "crop":
        return Fit(max(frame_w, _even(frame_h * aspect)), max(frame_h, _even(frame_w / aspect)), frame_w, frame_h)
    if aspect > frame_aspect:
        return Fit(frame_w, min(frame_h, _even(frame_w / aspect)), frame_w, frame_h)
    return Fit(min(frame_w, _even(frame_h * aspect)), frame_h, frame_w, frame_h)


def _scale(w: int, h: int) -> str:
    return f"scale={w}:{h}:flags=bicubic:out_color_matrix=bt709:out_range=tv,setsar=1"


def place(label_in: str, label_out: str, f: Fit, mode: str, *, alpha: bool, tag: str, rate: Fraction) -> list[str]:
    """Filter statements that put the picture ``label_in`` into a frame as ``label_out``.

    ``blur`` puts it over a blurred, darkened copy of itself (pictures with alpha go over the house
    background instead), ``pad`` over the flat house background, ``crop`` fills the frame and crops
    the overflow.
    """
    W, H = f.frame_w, f.frame_h
    fg = f"[{label_in}]{_scale(f.fg_w, f.fg_h)}"
    x, y = (W - f.fg_w) // 2, (H - f.fg_h) // 2
    if mode == "crop" and not f.fills:
        fg, x, y = f"{fg},crop={W}:{H}", 0, 0
        if not alpha:
            return [f"{fg}[{label_out}]"]
    elif f.fills and not alpha:
        return [f"[{label_in}]{_scale(W, H)}[{label_out}]"]
    if alpha or mode == "pad":
        # the backdrop is the overlay's main input, so it sets the output rate: it must be the house rate
        return [f"{fg}[{tag}fg]", f"color=c={BACKGROUND}:s={W}x{H}:r={rate}[{tag}bg]",
                f"[{tag}bg][{tag}fg]overlay={x}:{y}:shortest=1:eof_action=endall,format=yuv420p[{label_out}]"]
    # blur: scale small, blur, scale up: a soft backdrop for a fraction of a full-size blur's cost
    bw, bh = _even(W / 8), _even(H / 8)
    cover = fit(f.fg_w, f.fg_h, bw, bh, "crop")
    return [
        f"[{label_in}]split=2[{tag}a][{tag}b]",
        (f"[{tag}a]scale={cover.fg_w}:{cover.fg_h},crop={bw}:{bh},boxblur=6:2,"
         f"eq=brightness=-0.18:saturation=0.8,{_scale(W, H)}[{tag}bg]"),
        f"[{tag}b]{_scale(f.fg_w, f.fg_h)}[{tag}fg]",
        f"[{tag}bg][{tag}fg]overlay={x}:{y}[{label_out}]",
    ]


def picture_prelude(media: MediaInfo, size: tuple[int, int] | None = None) -> list[str]:
    """Filters that make a decoded picture upright, progressive and SDR, before any scaling.

    Telecined film is put back together field by field (``fieldmatch``: every frame whole, at full
    vertical resolution); only frames it cannot match are deinterlaced. True interlaced video is
    deinterlaced (``bwdif``), one frame per frame, in the field order the decoder reports.
    HDR (PQ, HLG, and Dolby Vision's HLG base) is tone-mapped to BT.709 in linear light; with
    ``size`` (the upright size it will be shown at) a larger picture is first scaled down to it,
    because the float tone-mapping costs more than decoding at full size.
    """
    v = media.video
    assert v is not None
    steps = []  # rotation (display matrix, and EXIF orientation of stills) is applied by ffmpeg's decoder side
    if v.telecined:
        steps.append("fieldmatch=order=auto:combmatch=full,bwdif=mode=send_frame:deint=interlaced")
    elif v.interlaced:
        steps.append("bwdif=mode=send_frame:deint=all")
    if v.hdr:
        dw, dh = display_size(media)
        shrink = f"w={size[0]}:h={size[1]}:f=bicubic:" if size and size[0] * size[1] < dw * dh else ""
        steps.append(f"zscale={shrink}t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,"
                     "zscale=t=bt709:m=bt709:r=tv")
    return steps


def display_size(media: MediaInfo) -> tuple[int, int]:
    """The upright display size, including EXIF orientation for stills."""
    w, h = media.video.display_size
    if media.is_image and media.exif_orientation in (5, 6, 7, 8):
        w, h = h, w
    return w, h


def decoder_args(media: MediaInfo) -> list[str]:
    """Input options that must precede the source's ``-i``: a decoder that keeps WebM alpha; for a
    still, a filter graph that is never rebuilt.

    A JPEG can carry more pictures after its end (an Ultra HDR gain map, an MPO's second view, in
    MPF) that the JPEG demuxer hands on as further frames. A frame of another size makes ffmpeg
    rebuild the whole graph, which restarts every source in it: the shot's silence would play twice.
    """
    v = media.video
    if v is None:
        return []
    return (["-c:v", v.alpha_decoder] if v.alpha_decoder else []) + (["-reinit_filter", "0"] if media.is_image else [])


def video_chain(input_label: str, out: str, media: MediaInfo, house: HouseFormat, frames: int, mode: str,
                tag: str) -> list[str]:
    """A moving picture -> exactly ``frames`` house frames (the last frame holds if the source is short).

    Sound and picture keep the one time origin ffmpeg gives the input (its earliest stream, or the
    seek point): the picture's first frame fills any gap before it (``start_time=0``), so a stream
    that starts late or an edit list stays in sync with the sound.
    """
    dw, dh = display_size(media)
    f = fit(dw, dh, house.width, house.height, mode)
    pre = ",".join([*picture_prelude(media, (f.fg_w, f.fg_h)), f"fps={house.rate}:start_time=0"])
    return [
        f"[{input_label}]{pre}[{tag}p]",
        *place(f"{tag}p", f"{tag}f", f, mode, alpha=media.video.has_alpha, tag=tag, rate=house.rate),
        f"[{tag}f]format=yuv420p,tpad=stop_mode=clone:stop=-1,trim=end_frame={frames},setpts=PTS-STARTPTS[{out}]",
    ]


def still_chain(input_label: str, out: str, media: MediaInfo, house: HouseFormat, frames: int, mode: str,
                tag: str) -> list[str]:
    """A still -> a moving still of ``frames`` frames: a slow push-in, or a pan across a panorama.

    The picture is fitted once, at the largest size the move needs, then looped; only the cheap
    per-frame scale/crop runs for every frame.
    """
    W, H = house.width, house.height
    dw, dh = display_size(media)
    aspect = Fraction(dw, dh)
    last = max(1, frames - 1)
    pre = ",".join(["setpts=PTS-STARTPTS", *picture_prelude(media)])
    head = [f"[{input_label}]{pre}[{tag}p]"]
    if aspect >= PAN_ASPECT:
        pw = _even(H * aspect)
        move = (f"[{tag}p]{_scale(pw, H)},format=yuv420p,loop=loop={frames - 1}:size=1,"
                f"setpts=N/({house.rate})/TB,crop={W}:{H}:x='({pw}-{W})*n/{last}':y=0")
        return head + [f"{move},trim=end_frame={frames}[{out}]"]
    ZW, ZH = _even(W * PUSH_IN), _even(H * PUSH_IN)
    f = fit(dw, dh, ZW, ZH, mode)
    tail = (f"format=yuv420p,loop=loop={frames - 1}:size=1,setpts=N/({house.rate})/TB,"
            # both sides shrink together and never below the frame: an aspect-derived height (h=-2)
            # can land 2 px short, and the crop would then show a line of garbage
            f"scale=w='trunc(({W}+{ZW - W}*(1-n/{last}))/2)*2':h='trunc(({H}+{ZH - H}*(1-n/{last}))/2)*2':eval=frame,"
            f"crop={W}:{H},setsar=1,trim=end_frame={frames}")
    return head + place(f"{tag}p", f"{tag}z", f, mode, alpha=media.video.has_alpha, tag=tag, rate=house.rate) + \
        [f"[{tag}z]{tail}[{out}]"]


def audio_chain(input_label: str, out: str, samples: int, gain_db: float, *, fades: tuple[bool, bool] = (True, True),
                after_gain: str = "") -> str:
    """Any audio -> exactly ``samples`` samples of 48 kHz stereo, levelled, with click-free ends.

    Timing follows the input's timestamps from the shared origin: sound that starts after the
    picture is preceded by silence, and gaps in it are filled (``async``), so it stays in sync.
    Any layout is downmixed to stereo by ffmpeg's standard matrix (ITU-R BS.775: the centre at
    -3 dB into both sides, surrounds at -3 dB into their side, the LFE left out); a DC offset
    is removed by a 10 Hz high-pass, below anything audible. ``fades`` (in, out) can be turned off
    where the sound runs on across a render boundary (a bed spanning pieces); ``after_gain`` is
    filters applied after levelling (a bed's ducking).
    """
    fade = min(480, max(1, samples // 4))  # 10 ms
    fade_in = "afade=t=in:d=0.01," if fades[0] else ""
    fade_out = f",afade=t=out:start_sample={samples - fade}:nb_samples={fade}" if fades[1] else ""
    return (f"[{input_label}]aresample={AUDIO_RATE_HZ}:async=1:first_pts=0,"
            f"aformat=sample_fmts=fltp:sample_rates={AUDIO_RATE_HZ}:channel_layouts=stereo,highpass=f=10,"
            f"volume={gain_db:.2f}dB,{after_gain}{fade_in}apad,atrim=end_sample={samples}{fade_out}[{out}]")


def silence(out: str, samples: int) -> str:
    """Exactly ``samples`` samples of digital silence."""
    return (f"anullsrc=r={AUDIO_RATE_HZ}:cl=stereo,aformat=sample_fmts=fltp,"
            f"atrim=end_sample={samples}[{out}]")


def describe(media: MediaInfo, house: HouseFormat, mode: str) -> dict:
    """The conform decisions for a source, for people: what intake will do to it on the way in."""
    out: dict = {"media": media.media_type}
    if media.video:
        v = media.video
        dw, dh = display_size(media)
        f = fit(dw, dh, house.width, house.height, mode)
        out.update({
            "stored": f"{v.width}x{v.height}", "display": f"{dw}x{dh}", "rotate_cw": v.rotation_cw,
            "frame": "fills" if f.fills else f"{f.fg_w}x{f.fg_h} " + (
                "cropped to fill" if mode == "crop" else "over the house background" if v.has_alpha or mode == "pad"
                else "over a blurred copy"),
            "rate": None if media.is_image else f"{v.fps or 'variable'} -> {house.rate}",
            "deinterlace": "inverse telecine" if v.telecined else "bwdif" if v.interlaced else False,
            "tone_map": v.hdr, "alpha": v.has_alpha,
        })
    if media.audio:
        a = media.audio
        out["audio"] = f"{a.codec} {a.sample_rate_hz} Hz {a.layout or a.channels} -> 48000 Hz stereo"
    elif media.video and not media.is_image:
        out["audio"] = "none -> silence"
    return out
