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

from .house import BACKGROUND, HouseFormat
from .probe import MediaInfo
from .timebase import AUDIO_RATE_HZ

CONFORM_VERSION = 1
ASPECT_TOLERANCE = Fraction(3, 100)  # within 3% of 16:9 we fill the frame rather than add borders
PUSH_IN = Fraction(112, 100)  # moving stills end 12% closer than they start
PAN_ASPECT = Fraction(2)  # pictures wider than 2:1 pan across instead of pushing in


def _even(x: Fraction | float) -> int:
    return max(2, int(round(x / 2)) * 2)


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


def place(label_in: str, label_out: str, f: Fit, mode: str, *, alpha: bool, tag: str) -> list[str]:
    """Filter statements that put the picture ``label_in`` into a frame as ``label_out``.

    ``blur`` puts it over a blurred, darkened copy of itself (pictures with alpha go over the house
    background instead), ``pad`` over black, ``crop`` fills the frame and crops the overflow.
    """
    W, H = f.frame_w, f.frame_h
    if mode == "crop" and not f.fills:
        return [f"[{label_in}]{_scale(f.fg_w, f.fg_h)},crop={W}:{H}[{label_out}]"]
    if f.fills and not alpha:
        return [f"[{label_in}]{_scale(W, H)}[{label_out}]"]
    fg = f"[{label_in}]{_scale(f.fg_w, f.fg_h)}"
    x, y = (W - f.fg_w) // 2, (H - f.fg_h) // 2
    if alpha or mode == "pad":
        colour = BACKGROUND if alpha else "black"
        return [f"{fg}[{tag}fg]", f"color=c={colour}:s={W}x{H}[{tag}bg]",
                f"[{tag}bg][{tag}fg]overlay={x}:{y}:shortest=1:eof_action=endall,format=yuv420p[{label_out}]"]
    # blur: scale small, blur, scale up: a soft backdrop for a fraction of a full-size blur's cost
    bw, bh = _even(W / 8), _even(H / 8)
    cover = fit(f.fg_w, f.fg_h, bw, bh, "crop")
    return [
        f"[{label_in}]split=2[{tag}a][{tag}b]",
        f"[{tag}a]scale={cover.fg_w}:{cover.fg_h},crop={bw}:{bh},boxblur=6:2,"
        f"eq=brightness=-0.18:saturation=0.8,{_scale(W, H)}[{tag}bg]",
        f"[{tag}b]{_scale(f.fg_w, f.fg_h)}[{tag}fg]",
        f"[{tag}bg][{tag}fg]overlay={x}:{y}[{label_out}]",
    ]


def picture_prelude(media: MediaInfo) -> list[str]:
    """Filters that make a decoded picture upright, progressive and SDR, before any scaling."""
    v = media.video
    assert v is not None
    steps = []  # rotation (display matrix, and EXIF orientation of stills) is applied by ffmpeg's decoder side
    if v.interlaced:
        steps.append("bwdif=mode=send_frame:deint=all")
    if v.hdr:
        steps.append("zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,"
                     "zscale=t=bt709:m=bt709:r=tv")
    return steps


def display_size(media: MediaInfo) -> tuple[int, int]:
    """The upright display size, including EXIF orientation for stills."""
    w, h = media.video.display_size
    if media.is_image and media.exif_orientation in (5, 6, 7, 8):
        w, h = h, w
    return w, h


def video_chain(input_label: str, out: str, media: MediaInfo, house: HouseFormat, frames: int, mode: str,
                tag: str) -> list[str]:
    """A moving picture -> exactly ``frames`` house frames (the last frame holds if the source is short)."""
    dw, dh = display_size(media)
    f = fit(dw, dh, house.width, house.height, mode)
    pre = ",".join(["setpts=PTS-STARTPTS", *picture_prelude(media), f"fps={house.rate}"])
    return [
        f"[{input_label}]{pre}[{tag}p]",
        *place(f"{tag}p", f"{tag}f", f, mode, alpha=media.video.has_alpha, tag=tag),
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
            f"scale=w='trunc(({W}+{ZW - W}*(1-n/{last}))/2)*2':h=-2:eval=frame,"
            f"crop={W}:{H},setsar=1,trim=end_frame={frames}")
    return head + place(f"{tag}p", f"{tag}z", f, mode, alpha=media.video.has_alpha, tag=tag) + \
        [f"[{tag}z]{tail}[{out}]"]


def audio_chain(input_label: str, out: str, samples: int, gain_db: float) -> str:
    """Any audio -> exactly ``samples`` samples of 48 kHz stereo, levelled, with click-free ends."""
    fade = min(480, max(1, samples // 4))  # 10 ms
    return (f"[{input_label}]asetpts=PTS-STARTPTS,aresample={AUDIO_RATE_HZ},"
            f"aformat=sample_fmts=fltp:sample_rates={AUDIO_RATE_HZ}:channel_layouts=stereo,"
            f"volume={gain_db:.2f}dB,afade=t=in:d=0.01,apad,atrim=end_sample={samples},"
            f"afade=t=out:start_sample={samples - fade}:nb_samples={fade}[{out}]")


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
            "frame": "fills" if f.fills else f"{f.fg_w}x{f.fg_h} over {'house background' if v.has_alpha else mode}",
            "rate": None if media.is_image else f"{v.fps or 'variable'} -> {house.rate}",
            "deinterlace": v.interlaced, "tone_map": v.hdr, "alpha": v.has_alpha,
        })
    if media.audio:
        a = media.audio
        out["audio"] = f"{a.codec} {a.sample_rate_hz} Hz {a.layout or a.channels} -> 48000 Hz stereo"
    elif media.video and not media.is_image:
        out["audio"] = "none -> silence"
    return out
