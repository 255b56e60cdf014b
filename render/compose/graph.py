"""A piece's ffmpeg filter graph: one process decodes each shot from its original upload, conforms
it inline (``render.intake.conform``), lays the shots end to end with their transitions, mixes the
bed under them and encodes once at final quality.

Each shot is one stream (``_Item``), lengthened by the handles a crossfade borrows on either side;
streams overlap by a crossfade's length and blend there, and cuts and dips join end to end. Sample
counts come from one clock, the piece's (``_Graph.samples``), so the piece ends on exactly
``samples_for(frames)`` samples whatever its transitions.

A stem (``build_command(stem=...)``: dialogue, music or effects) is the same graph's sound alone, with
each sound that is not in the stem silenced where it enters (``_stem_gate``): every gain, fade, blend,
mix and duck after that is the mix's own, and each is linear (the bed's ducking follows the Timeline's
speech ranges, not the signal), so the three stems sum to the piece's sound.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render.compose import measure
from render.compose.pieces import Edges
from render.core import ffmpeg, text
from render.core.house import BACKGROUND, LEGALISE, HouseFormat
from render.core.timebase import samples_for, sec, to_seconds
from render.edit.timeline import CUT, STEMS, Bed, Shot
from render.intake import conform
from render.intake.records import Source

WAVE_COLOUR = "0xE8C547"
#: a clip's sound goes to dialogue over this long outside each speech range, so its split is a crossfade
SPLIT_RAMP_S = 0.1
_NO_EDGES = Edges()  # a piece with cuts at both edges and its bed starting and ending in it


def _colour(out: str, colour: str, house: HouseFormat, frames: int) -> str:
    return (f"color=c={colour}:s={house.width}x{house.height}:r={house.rate},setsar=1,format=yuv420p,"
            f"trim=end_frame={frames}[{out}]")


def _typeset(label_in: str, out: str, ass: Path, frames: int) -> str:
    return (f"[{label_in}]subtitles=f={text.filter_path(ass)}:fontsdir={text.filter_path(text.FONTS_DIR)},"
            f"format=yuv420p,trim=end_frame={frames},setpts=PTS-STARTPTS[{out}]")


@dataclass(frozen=True, slots=True)
class _Item:
    """One stream of a piece's graph: frames [lo, hi) of ``shot`` placed at piece frame ``start``, with
    ``pre`` frames borrowed before them and ``post`` after (a crossfade's handles: the shot's own picture
    and sound beyond its in and out points) and a dip's fades over its own frames."""

    shot: Shot
    lo: int
    hi: int
    start: int
    pre: int = 0
    post: int = 0
    fade_in: int = 0
    fade_out: int = 0

    @property
    def offset(self) -> int:
        """The shot's frame at the stream's first frame (negative: a pre-roll before its in point)."""
        return self.lo - self.pre

    @property
    def first(self) -> int:
        """Piece frame of the stream's first frame (negative: before the piece starts)."""
        return self.start - self.pre

    @property
    def end(self) -> int:
        """Piece frame just after the stream's last frame."""
        return self.start + self.hi - self.lo + self.post

    @property
    def frames(self) -> int:
        return self.end - self.first


class _Graph:
    """A filter graph under construction: the inputs, the statements, and the sample clock of the piece.

    Sample counts come from one clock (``samples_for`` of piece frames, negative before the piece), so
    every stream, overlap and trim is a difference of the same rounded values and the piece ends on
    exactly ``samples_for(frames)`` samples, whatever the transitions."""

    def __init__(self, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str, workdir: Path,
                 seek: bool = True, stem: str | None = None):
        self.sources, self.house, self.fit_mode, self.workdir = sources, house, fit_mode, workdir
        self.seek = seek
        self.stem = stem  # a stem's graph: its sound only, no picture
        self.picture = stem is None
        self.rate = house.rate
        self.inputs: list[str] = []
        self.statements: list[str] = []
        self.n_inputs = 0

    def input(self, args: list[str]) -> int:
        self.inputs += args
        self.n_inputs += 1
        return self.n_inputs - 1

    def open_at(self, src: Source, start_s: Fraction, seconds: Fraction, before: list[str]) -> Callable[[int], str]:
        """Add ``src`` as an input decoded from ``start_s`` for ``seconds`` (``before``: options ahead of
        the seek); returns a function giving the label of its stream ``i`` (each used once).

        The one place a render seeks: ffmpeg seeks the input, or, in a graph built with ``seek=False``,
        the input is decoded from its start and trimmed in the graph to the same times (what ffmpeg's own
        accurate seek does after its jump). That is the render's second try when the first does not come
        out exact: some inputs cannot be seeked at all (an FLV before its first 0.1 s: ffmpeg reports
        "could not seek" and gives nothing)."""
        trim = start_s > 0 and not self.seek
        seek = ["-ss", sec(start_s)] if start_s > 0 and self.seek else []
        idx = self.input([*before, *seek, "-t", sec(seconds + (start_s if trim else 0) + 1),
                          *conform.decoder_args(src.media), *ffmpeg.untrusted_input(src.link, src.demuxer)])

        def stream(i: int) -> str:
            if not trim:
                return f"{idx}:{i}"
            a = "a" if src.media.audio is not None and i == src.media.audio.index else ""
            self.statements.append(f"[{idx}:{i}]{a}trim=start={sec(start_s)},{a}setpts=PTS-{sec(start_s)}/TB"
                                   f"[in{idx}s{i}]")
            return f"in{idx}s{i}"
        return stream

    def samples(self, first: int, end: int) -> int:
        """Samples between piece frames ``first`` and ``end`` on the piece's clock."""
        return samples_for(end, self.rate) - samples_for(first, self.rate)

    @property
    def cfr(self) -> str:
        """Exact constant-rate timestamps (frame N at N/rate): what the blends and the typesetting read."""
        return f"settb={self.rate.denominator}/{self.rate.numerator},setpts=N"

    def shot_clock(self, offset: int) -> str:
        """``cfr`` on a shot's own clock, for a stream that starts at the shot's frame ``offset``."""
        return f"{self.cfr}{'+' if offset >= 0 else ''}{offset}" if offset else self.cfr


def _hold(start_s: Fraction, frames: int, rate: Fraction) -> tuple[Fraction, int]:
    """Where to start decoding and how many frames to hold first, for a stream that would start at
    ``start_s`` in its source: a pre-roll before the source's first frame holds that frame."""
    if start_s >= 0:
        return start_s, 0
    hold = min(frames, -(-(-start_s * rate) // 1))  # whole frames to hold, rounded up
    return start_s + to_seconds(hold, rate), hold


def _sound_from(g: _Graph, source_label: str, out: str, samples: int, held: int, gain_db: float, tag: str,
                after_gain: str = "", fades: tuple[bool, bool] = (True, True)) -> None:
    """``samples`` samples of a source's levelled sound, the first ``held`` of them silence (a pre-roll
    from before the source starts)."""
    if not held:
        g.statements.append(conform.audio_chain(source_label, out, samples, gain_db, fades=fades,
                                                  after_gain=after_gain))
        return
    g.statements += [conform.silence(f"{tag}hs", held),
                     conform.audio_chain(source_label, f"{tag}hb", samples - held, gain_db, fades=fades,
                                           after_gain=after_gain),
                     f"[{tag}hs][{tag}hb]concat=n=2:v=0:a=1[{out}]"]


def _item_streams(g: _Graph, it: _Item, tag: str, sound: bool = True) -> tuple[str, str]:
    """The picture and sound of one item: exactly ``it.frames`` frames and its samples on the piece clock.
    ``sound`` False (a bed replaces it): a video's sound is silence, its audio never decoded.

    A moving source is decoded from the item's first frame (a pre-roll from before its in point, a
    handle past its out point: past the source's end the last frame holds and the sound is silence;
    before its start the first frame holds). Stills hold their first and last frames; typeset shots
    (cards, texts, credits, a sound's title) are typeset on their own clock, so a handle shows the
    background on after (or before) the words.
    """
    shot = it.shot
    src = g.sources.get(shot.record_id) if shot.record_id else None
    a = f"{tag}a"
    if shot.kind in ("video", "audio"):
        pic = _moving(g, it, src, a, tag, sound) if g.picture else _moving_sound(g, it, src, a, tag, sound)
    elif not g.picture:
        pic = ""
    elif shot.kind == "image":
        pic = _image(g, it, src, tag)
    elif shot.kind in ("card", "text", "credits"):
        pic = _card(g, it, src, tag)
    elif shot.kind == "black":
        pic = f"{tag}pic"
        g.statements.append(_colour(pic, "black", g.house, it.frames))
    else:
        raise ValueError(f"unknown shot kind {shot.kind!r}")
    if shot.kind not in ("video", "audio"):  # stills, typeset shots and black are silent
        g.statements.append(conform.silence(a, g.samples(it.first, it.end)))
    return _faded(g, it, pic, a, tag)


def _decode(g: _Graph, it: _Item, src: Source) -> tuple[Callable[[int], str], int, int]:
    """Add the input that decodes a video or sound from the item's first frame; returns its streams'
    labels (``_Graph.open_at``), the frames it gives and the frames to hold before them (a pre-roll)."""
    shot, media, rate = it.shot, src.media, g.rate
    start_s, hold = _hold(shot.source_in_s + to_seconds(it.offset, rate), it.frames, rate)
    decoded = it.frames - hold
    seconds = to_seconds(decoded, rate)
    loop: list[str] = []
    if shot.kind == "video":
        # animated GIFs loop, as they do on the web (from their first frame at the shot's start); a
        # blink of one (a single frame) just holds, because looping it makes no progress in time and
        # ffmpeg would never reach -t
        phase = start_s - shot.source_in_s
        if (src.demuxer == "gif" and media.duration_s and media.duration_s >= Fraction(1, 2)
                and seconds > media.duration_s - start_s):
            loop = ["-stream_loop", "-1"]
            start_s = phase % media.duration_s if phase > 0 else Fraction(0)
    return g.open_at(src, start_s, seconds, loop), decoded, hold


def _moving(g: _Graph, it: _Item, src: Source | None, a: str, tag: str, sound: bool) -> str:
    """A video's or a sound's picture (returns its label) and its sound into ``[a]``."""
    assert src is not None and src.link is not None, f"no source for {it.shot.record_id}"
    shot, media = it.shot, src.media
    stream, decoded, hold = _decode(g, it, src)
    n_samples = g.samples(it.first, it.end)
    held = g.samples(it.first, it.first + hold)
    if shot.kind == "video":
        g.statements += conform.video_chain(stream(media.video.index), f"{tag}dec", media, g.house, decoded,
                                            g.fit_mode, tag)
        if media.audio and sound:
            _sound_from(g, stream(media.audio.index), a, n_samples, held, shot.gain_db, tag)
        else:
            g.statements.append(conform.silence(a, n_samples))
    else:
        _waveform(g, it, stream(media.audio.index), held, tag)
        _sound_from(g, f"{tag}s", a, n_samples, held, shot.gain_db, tag)
        hold = 0  # the background ran from the first frame: nothing to hold
    pic = f"{tag}pic"
    if hold:
        g.statements.append(f"[{tag}dec]loop=loop={hold}:size=1:start=0[{pic}]")
    else:
        g.statements.append(f"[{tag}dec]null[{pic}]")
    if shot.kind == "video" and shot.label_frames and it.offset < shot.label_frames:
        _lower_third(g, shot, pic, g.shot_clock(it.offset), f"{tag}lt", it.frames, tag)
        pic = f"{tag}lt"
    return pic


def _moving_sound(g: _Graph, it: _Item, src: Source | None, a: str, tag: str, sound: bool) -> str:
    """A stem's share of a video's or a sound's own sound into ``[a]``, decoded and levelled as ``_moving``
    does for the mix (no picture: returns ""); silence when none of it is in the stem."""
    assert src is not None and src.link is not None, f"no source for {it.shot.record_id}"
    shot, media = it.shot, src.media
    n_samples = g.samples(it.first, it.end)
    _, hold = _hold(shot.source_in_s + to_seconds(it.offset, g.rate), it.frames, g.rate)
    # the sound chain starts at the shot's frame it.offset + hold (a pre-roll before the source holds silence)
    gate = _stem_gate(g, shot, it.offset + hold, it.frames - hold)
    if media.audio is None or not sound or gate is None:  # (not sound: a bed replaces it, in the mix too)
        g.statements.append(conform.silence(a, n_samples))
        return ""
    stream, _, hold = _decode(g, it, src)
    _sound_from(g, stream(media.audio.index), a, n_samples, g.samples(it.first, it.first + hold), shot.gain_db,
                tag, after_gain=gate)
    return ""


def _stem_gate(g: _Graph, shot: Shot, at: int, frames: int) -> str | None:
    """The filters that keep the stem's share of ``shot``'s own sound, for a chain whose first sample is the
    shot's frame ``at`` and which runs ``frames`` frames: "" all of it (and in the mix), None none of it.

    A voice record is dialogue and a music record music. A clip's sound is dialogue inside its speech
    ranges and effects outside them, crossing over ``SPLIT_RAMP_S`` outside each range: the dialogue
    stem takes ``w(t)`` of it and the effects stem ``1 - w(t)``, so the two sum to the clip's sound.
    ``w`` is evaluated every millisecond (1 ms frames), fine enough that the crossing is a ramp."""
    if g.stem is None:
        return ""
    assert g.stem in STEMS, g.stem
    if shot.sound == "dialogue":
        return "" if g.stem == "dx" else None
    if shot.sound == "music":
        return "" if g.stem == "mx" else None
    ramp = float(SPLIT_RAMP_S * g.rate)  # frames
    spans = [(x, y) for x, y in shot.speech if x - ramp < at + frames and y + ramp > at]
    if g.stem == "mx" or (g.stem == "dx" and not spans):
        return None
    if not spans:
        return ""
    # 1 inside a range, falling to 0 over the ramp outside it (the chain's clock: t = 0 at frame ``at``)
    terms = [f"clip(min((t-{float((x - at) / g.rate) - SPLIT_RAMP_S:.6f})/{SPLIT_RAMP_S},"
             f"({float((y - at) / g.rate) + SPLIT_RAMP_S:.6f}-t)/{SPLIT_RAMP_S}),0,1)" for x, y in spans]
    inside = terms[0]
    for term in terms[1:]:
        inside = f"max({inside},{term})"
    weight = inside if g.stem == "dx" else f"1-{inside}"
    return f"asetnsamples=n=48:p=0,volume='{weight}':eval=frame,"


def _waveform(g: _Graph, it: _Item, audio: str, held: int, tag: str) -> None:
    """A sound's picture into ``[{tag}dec]``: its title typeset over the waveform of its levelled sound,
    on the house background; the sound itself goes on as ``[{tag}s]``."""
    shot, house = it.shot, g.house
    ass = g.workdir / f"{tag}.ass"
    ass.write_text(text.audio_label(shot.text, shot.byline, to_seconds(shot.frames, g.rate)), encoding="utf-8")
    wave_h = house.height // 3
    delay = f"adelay=delays={held}S:all=1," if held else ""
    g.statements += [
        f"[{audio}]asplit=2[{tag}s][{tag}w]",
        # the waveform draws the levelled sound: drawn raw, a loud record fills the band with
        # a shape that changes every frame, which QC's flash meter rightly flags
        (f"[{tag}w]aresample=48000,aformat=channel_layouts=stereo,volume={shot.gain_db:.2f}dB,{delay}"
         f"showwaves=s={house.width}x{wave_h}:mode=cline:rate={house.rate}:colors={WAVE_COLOUR}:"
         f"scale=sqrt:split_channels=0,format=yuva420p[{tag}wv]"),
        _colour(f"{tag}bg", BACKGROUND, house, it.frames),
        (f"[{tag}bg][{tag}wv]overlay=0:{(house.height - wave_h) // 2 + house.height // 8}:eof_action=pass,"
         f"{g.shot_clock(it.offset)}[{tag}o]"),
        _typeset(f"{tag}o", f"{tag}dec", ass, it.frames),
    ]


def _lower_third(g: _Graph, shot: Shot, label_in: str, clock: str, out: str, frames: int, tag: str) -> None:
    """The shot's lower third typeset over ``[label_in]`` (on ``clock``, the shot's own) into ``[out]``:
    over the conformed picture, so it sits inside title-safe whatever the source."""
    ass = g.workdir / f"{tag}lt.ass"
    ass.write_text(text.lower_third(shot.text, shot.byline, to_seconds(shot.label_frames, g.rate)), encoding="utf-8")
    g.statements += [f"[{label_in}]{clock}[{tag}ltin]", _typeset(f"{tag}ltin", out, ass, frames)]


def _image(g: _Graph, it: _Item, src: Source | None, tag: str) -> str:
    """A still's picture (returns its label): its move is the shot's own; a handle holds its last
    frame, a pre-roll its first."""
    assert src is not None and src.link is not None, f"no source for {it.shot.record_id}"
    shot, media = it.shot, src.media
    idx = g.input(conform.decoder_args(media) + ffmpeg.untrusted_input(src.link, src.demuxer))
    still = f"{tag}st" if shot.label_frames else f"{tag}dec"
    g.statements += conform.still_chain(f"{idx}:{media.video.index}", still, media, g.house, shot.frames,
                                        g.fit_mode, tag)
    if shot.label_frames:
        _lower_third(g, shot, still, g.cfr, f"{tag}dec", shot.frames, tag)
    window = f"trim=start_frame={it.lo}:end_frame={it.hi}," if (it.lo, it.hi) != (0, shot.frames) else ""
    tail = f"loop=loop={it.post}:size=1:start={it.hi - it.lo - 1}," if it.post else ""
    lead = f"loop=loop={it.pre}:size=1:start=0," if it.pre else ""
    pic = f"{tag}pic"
    g.statements.append(f"[{tag}dec]{window}{tail}{lead}null[{pic}]")
    return pic


def _card(g: _Graph, it: _Item, src: Source | None, tag: str) -> str:
    """A card's, a text's or the credits' picture (returns its label), typeset on the house background."""
    shot = it.shot
    ass = g.workdir / f"{tag}.ass"
    seconds = to_seconds(shot.frames, g.rate)
    if shot.kind == "card":
        doc = text.card(shot.text, shot.byline, seconds)
    elif shot.kind == "text":
        doc = text.text_card(shot.text, shot.byline, src.record.title if src else "", seconds)
    else:
        doc = shot.text  # the credits roll arrives typeset (see credits.roll)
    ass.write_text(doc, encoding="utf-8")
    pic = f"{tag}pic"
    g.statements += [_colour(f"{tag}bg0", BACKGROUND, g.house, it.frames),
                     f"[{tag}bg0]{g.shot_clock(it.offset)}[{tag}bg]", _typeset(f"{tag}bg", pic, ass, it.frames)]
    return pic


def _faded(g: _Graph, it: _Item, pic: str, a: str, tag: str) -> tuple[str, str]:
    """The item's picture on the exact frame clock and its sound, each with a dip's fades over the
    item's own frames (up from black and silence over its first, down over its last)."""
    vfades, afades = [], []
    if not g.picture:
        pic = ""
    if it.fade_in:
        vfades.append(f"fade=t=in:start_frame={it.pre}:nb_frames={it.fade_in}")
        afades.append(f"afade=t=in:start_sample={g.samples(it.first, it.start)}:"
                      f"nb_samples={g.samples(it.start, it.start + it.fade_in)}")
    if it.fade_out:
        own_end = it.start + it.hi - it.lo
        vfades.append(f"fade=t=out:start_frame={it.pre + it.hi - it.lo - it.fade_out}:nb_frames={it.fade_out}")
        afades.append(f"afade=t=out:start_sample={g.samples(it.first, own_end - it.fade_out)}:"
                      f"nb_samples={g.samples(own_end - it.fade_out, own_end)}")
    v = f"{tag}v" if g.picture else ""
    if g.picture:
        g.statements.append(f"[{pic}]format=yuv420p,{''.join(f + ',' for f in vfades)}{g.cfr},"
                            f"trim=end_frame={it.frames}[{v}]")
    if afades:
        g.statements.append(f"[{a}]{','.join(afades)}[{a}f]")
        a = f"{a}f"
    return v, a


def _blend(out_label: str, in_label: str, label: str, length: int, audio: bool) -> list[str]:
    """Linear crossfade of two streams of exactly ``length`` frames (or samples): the incoming one's
    weight rises from 0 at the first to (length-1)/length at the last, as ffmpeg's xfade's does.

    Built from plain filters (an alpha fade and an overlay; two fades and a sum) because ffmpeg 5.1's
    xfade and acrossfade drop or repeat a frame or samples when an input ends where the fade does.
    """
    if audio:
        return [f"[{out_label}]afade=t=out:nb_samples={length}:curve=tri[{label}o]",
                f"[{in_label}]afade=t=in:nb_samples={length}:curve=tri[{label}i]",
                (f"[{label}o][{label}i]amix=inputs=2:normalize=0:duration=longest,atrim=end_sample={length},"
                 f"asetpts=N/SR/TB[{label}]")]
    return [f"[{in_label}]format=yuva420p,fade=t=in:start_frame=0:nb_frames={length}:alpha=1[{label}i]",
            (f"[{out_label}][{label}i]overlay=0:0:format=yuv420:eof_action=pass,format=yuv420p,"
             f"trim=end_frame={length}[{label}]")]


def _lay(g: _Graph, streams: list[tuple[str, int]], overlaps: list[int], out: str, tag: str, audio: bool) -> None:
    """Lay ``streams`` (label, length) end to end, each overlapping the next by ``overlaps[i]`` frames (or
    samples), blended there: ``out`` runs sum(lengths) - sum(overlaps). Cuts (overlap 0) are plain joins."""
    seq: list[str] = []
    carry = ""  # the previous stream's overlapping tail
    for k, (label, n) in enumerate(streams):
        w_in = overlaps[k - 1] if k else 0
        w_out = overlaps[k] if k < len(overlaps) else 0
        parts = [(x, y, name) for x, y, name in ((0, w_in, "i"), (w_in, n - w_out, "m"), (n - w_out, n, "o")) if y > x]
        labels: dict[str, str] = {}
        if len(parts) == 1:
            labels[parts[0][2]] = label
        else:
            names = "".join(f"[{tag}{k}{name}0]" for _, _, name in parts)
            pts = "asetpts=N/SR/TB," if audio else ""
            g.statements.append(f"[{label}]{pts}{'asplit' if audio else 'split'}={len(parts)}{names}")
            for x, y, name in parts:
                trim = (f"atrim=start_sample={x}:end_sample={y},asetpts=N/SR/TB" if audio
                        else f"trim=start_frame={x}:end_frame={y},{g.cfr}")  # overlay pairs frames by time
                g.statements.append(f"[{tag}{k}{name}0]{trim}[{tag}{k}{name}]")
                labels[name] = f"{tag}{k}{name}"
        if "i" in labels:
            g.statements += _blend(carry, labels["i"], f"{tag}{k}x", w_in, audio)
            seq.append(f"{tag}{k}x")
        if "m" in labels:
            seq.append(labels["m"])
        carry = labels.get("o", "")
    if len(seq) == 1:
        g.statements.append(f"[{seq[0]}]{'anull' if audio else 'null'}[{out}]")
    else:
        g.statements.append(f"{''.join(f'[{x}]' for x in seq)}concat=n={len(seq)}:v={int(not audio)}:a={int(audio)}"
                            f"[{out}]")


def _bed_stream(g: _Graph, bed: Bed, at: int, first: int, end: int, out: str, tag: str,
                fades: tuple[bool, bool] = (True, True), dips: tuple[int, int] = (0, 0)) -> None:
    """A bed's sound over piece frames [first, end), where ``bed.source_in_s`` is its sound at piece frame
    ``at``; ``dips`` fade it up over its first / down over its last frames (a dip at a segment's edge)."""
    src = g.sources[bed.record_id]
    start_s, hold = _hold(bed.source_in_s + to_seconds(first - at, g.rate), end - first, g.rate)
    total = g.samples(first, end)
    if g.stem not in (None, "mx"):  # a bed is music
        g.statements.append(conform.silence(out, total))
        return
    held = g.samples(first, first + hold)
    stream = g.open_at(src, start_s, to_seconds(end - first - hold, g.rate), [])
    shift = first + hold - at  # the ducking runs on the bed chain's clock
    after = _ducking(dataclasses.replace(bed, duck=tuple((x - shift, y - shift) for x, y in bed.duck)), g.rate)
    if dips[0]:
        after += f"afade=t=in:nb_samples={g.samples(first + hold, first + hold + dips[0])},"
    if dips[1]:
        after += (f"afade=t=out:start_sample={g.samples(first + hold, end - dips[1])}:"
                  f"nb_samples={g.samples(end - dips[1], end)},")
    _sound_from(g, stream(src.media.audio.index), out, total, held, bed.gain_db, tag, after_gain=after,
                fades=fades)


def _replaces(bed: Bed | None) -> bool:
    """Whether ``bed`` replaces the shots' own sound (which is then never decoded)."""
    return bed is not None and bed.mix == "replace"


def _under(g: _Graph, own: str, bed: Bed | None, bed_label: str, samples: int, out: str) -> str:
    """The shots' own sound with a bed: replaced by it, or with it mixed under (amix ``normalize=0``:
    it would otherwise halve both inputs; the bed is already set under the programme)."""
    if bed is None:
        return own
    if _replaces(bed):
        g.statements.append(f"[{own}]anullsink")
        return bed_label
    g.statements.append(f"[{own}][{bed_label}]amix=inputs=2:duration=first:normalize=0,atrim=end_sample={samples},"
                        f"asetpts=N/SR/TB[{out}]")
    return out


def build_command(shots: tuple[Shot, ...], sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                  workdir: Path, video_out: Path | None, audio_out: Path | None, bed: Bed | None = None,
                  edges: Edges = _NO_EDGES, qc_view: tuple[Path, Path] | None = None, seek: bool = True,
                  stem: str | None = None) -> list[str]:
    """The ffmpeg argv that renders ``shots`` (over ``bed``'s sound, if any) with the transitions between
    them and across the piece's ``edges``; writes the ASS files it needs into ``workdir``. With
    ``qc_view`` (a statistics file, a FIFO) the finished picture is also measured for QC, in the same pass.
    With ``stem`` (one of ``STEMS``) it renders only that stem of the sound into ``audio_out`` (no picture).

    Each shot is one stream, lengthened by the handles a crossfade borrows on either side; streams
    overlap by a crossfade's length and blend there, and cuts and dips join end to end (a dip fades each
    side over its own frames). A crossfade across an edge renders the neighbouring shot's stream too,
    this side's half of the blend only: the piece is cut out of the longer run at the end, so its frame
    and sample counts are exactly its own shots'.
    """
    assert stem is None or (video_out is None and qc_view is None), "a stem is sound only"
    g = _Graph(sources, house, fit_mode, workdir, seek, stem)
    total_frames = sum(s.frames for s in shots)
    items, before, after = _items(shots, edges)
    own_a, first, end = _own_run(g, items, bed, edges)
    # the neighbours' halves of the crossfades across the piece's edges
    vseq, aseq = [("own_v", end - first)], [(own_a, g.samples(first, end))]
    if before is not None:
        t = shots[0].enter
        v, a = _neighbour(g, _Item(before, before.frames - t.before_frames, before.frames, -t.before_frames,
                                   post=t.after_frames), edges.before_bed, 0, "nb")
        vseq.insert(0, v)
        aseq.insert(0, a)
    if after is not None:
        t = edges.exit
        v, a = _neighbour(g, _Item(after, 0, t.after_frames, total_frames, pre=t.before_frames), edges.after_bed,
                          total_frames, "na")
        vseq.append(v)
        aseq.append(a)
    # each neighbour's stream lies wholly inside the run's overlapping ends
    ov_v = ([vseq[0][1]] if before is not None else []) + ([vseq[-1][1]] if after is not None else [])
    ov_a = ([aseq[0][1]] if before is not None else []) + ([aseq[-1][1]] if after is not None else [])
    if g.picture:
        _lay(g, vseq, ov_v, "run_v", "ev", audio=False)
    _lay(g, aseq, ov_a, "run_a", "ea", audio=True)
    _cut_out(g, first, total_frames, qc_view)
    return _argv(g, total_frames, video_out, audio_out, qc_view)


def _items(shots: tuple[Shot, ...], edges: Edges) -> tuple[list[_Item], Shot | None, Shot | None]:
    """Each shot's stream, in piece order, with the handles and fades the transitions either side of it
    need, and the neighbours the crossfades across the piece's edges borrow (None where there is none)."""
    before = edges.before if edges.before is not None and shots and shots[0].enter.kind == "crossfade" else None
    after = edges.after if edges.after is not None and edges.exit.kind == "crossfade" else None
    # the transitions on either side of each shot (a crossfade at the edges only with its neighbour)
    enters = [s.enter for s in shots]
    if before is None and shots and shots[0].enter.kind == "crossfade":
        enters[0] = CUT
    exits = enters[1:] + [edges.exit if (edges.exit.kind != "crossfade" or after is not None) else CUT]
    items: list[_Item] = []
    at = 0
    for shot, enter, leave in zip(shots, enters, exits):
        fade = enter.kind == "dip" and not enter.is_cut, leave.kind == "dip" and not leave.is_cut
        cross = enter.kind == "crossfade" and not enter.is_cut, leave.kind == "crossfade" and not leave.is_cut
        items.append(_Item(shot, 0, shot.frames, at, pre=enter.before_frames if cross[0] else 0,
                           post=leave.after_frames if cross[1] else 0,
                           fade_in=enter.after_frames if fade[0] else 0,
                           fade_out=leave.before_frames if fade[1] else 0))
        at += shot.frames
    return items, before, after


def _own_run(g: _Graph, items: list[_Item], bed: Bed | None, edges: Edges) -> tuple[str, int, int]:
    """The shots' own run into ``[own_v]``: pictures and sounds overlapping by each crossfade inside the
    piece, the bed under their sound or instead of it. Returns the sound's label and the run's first
    and end piece frames (beyond the piece's own where a crossfade's handle reaches over an edge)."""
    pictures, sounds = [], []
    replaced = _replaces(bed)
    for i, it in enumerate(items):
        v, a = _item_streams(g, it, f"s{i}", sound=not replaced)
        pictures.append((v, it.frames))
        sounds.append((a, g.samples(it.first, it.end)))
    first, end = (items[0].first, items[-1].end) if items else (0, 0)
    overlaps_v = [x.end - y.first for x, y in itertools.pairwise(items)]
    overlaps_a = [g.samples(y.first, x.end) for x, y in itertools.pairwise(items)]
    if g.picture:
        _lay(g, pictures, overlaps_v, "own_v", "jv", audio=False)
    if replaced:
        # the bed replaces the shots' own sound: their (silent) streams end in null sinks, unjoined. A
        # decoded sound there made ffmpeg read every shot's file at once, since a null sink always
        # wants more: the whole piece's pictures queued, conformed, before the concat (3 GB for a montage)
        g.statements += [f"[{label}]anullsink" for label, _ in sounds]
    else:
        _lay(g, sounds, overlaps_a, "own_a", "ja", audio=True)
    if bed is None:
        return "own_a", first, end
    # it fades only where the segment starts or ends, so the music runs on across piece boundaries
    # without a dip; a dip at the segment's edge takes the bed down with the picture
    dips = (items[0].fade_in if edges.bed[0] else 0, items[-1].fade_out if edges.bed[1] else 0)
    _bed_stream(g, bed, 0, first, end, "bed" if replaced else "bedu", "bed", fades=edges.bed, dips=dips)
    return ("bed" if replaced else _under(g, "own_a", bed, "bedu", g.samples(first, end), "mixed")), first, end


def _neighbour(g: _Graph, it: _Item, bed: Bed | None, at: int, tag: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """A neighbouring shot's stream ``it`` across the piece's edge, with its bed under it (``bed.source_in_s``
    is the bed's sound at piece frame ``at``): its picture and its sound, each with its length."""
    v, a = _item_streams(g, it, tag, sound=not _replaces(bed))
    samples = g.samples(it.first, it.end)
    if bed is not None:
        _bed_stream(g, bed, at, it.first, it.end, f"{tag}bed", f"{tag}b")
        a = _under(g, a, bed, f"{tag}bed", samples, f"{tag}mix")
    return (v, it.frames), (a, samples)


def _cut_out(g: _Graph, first: int, total_frames: int, qc_view: tuple[Path, Path] | None) -> None:
    """The piece cut out of the run from its first own frame, into ``[vout]`` and ``[aout]``: exactly its
    frames and samples (and ``[qcout]``, QC's view of the picture, with ``qc_view``)."""
    skip_v, skip_a = -first, g.samples(first, 0)
    sound = (f"[run_a]atrim=start_sample={skip_a}:end_sample={skip_a + samples_for(total_frames, g.rate)},"
             "asetpts=N/SR/TB[aout]")
    if not g.picture:
        g.statements.append(sound)
        return
    # fps after the exact restamp changes no frame; it sets the stream's declared rate, which a
    # looped still (the loop filter) would otherwise leave unset and the muxer would call 25 fps. The
    # restamp is an integer one (setpts=N in 1/rate): N/(rate)/TB in a 1/rate timebase truncates to N-1
    # for some N, and fps then drops one frame and repeats another
    # legalised last, once, so nothing after it can leave the range: scaling rings past it (the push-in
    # over a still stretched a line drawing to 0-255), and typesetting and blends come after conform
    g.statements.append(f"[run_v]trim=start_frame={skip_v}:end_frame={skip_v + total_frames},"
                        f"{g.cfr},fps={g.rate},format=yuv420p,{LEGALISE}"
                        + (",split=2[vout][qcv]" if qc_view else "[vout]"))
    if qc_view is not None:
        g.statements.append(measure.picture_graph("qcv", qc_view[0], "qcout"))
    g.statements.append(sound)


def _argv(g: _Graph, total_frames: int, video_out: Path | None, audio_out: Path | None,
          qc_view: tuple[Path, Path] | None) -> list[str]:
    """The command around the graph: its inputs, and the picture, sound and QC view to their outputs."""
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *g.inputs,
            "-filter_complex", ";\n".join(g.statements)]
    if video_out is not None:
        argv += ["-map", "[vout]", "-an", *g.house.video_codec_args(), "-fps_mode", "passthrough",
                 "-frames:v", str(total_frames), str(video_out)]
    elif g.picture:
        argv += ["-map", "[vout]", "-f", "null", "-"]
    if audio_out is not None:
        argv += ["-map", "[aout]", "-vn", "-c:a", "pcm_s16le", "-map_metadata", "-1", "-bitexact", str(audio_out)]
    if qc_view is not None:
        argv += ["-map", "[qcout]", "-an", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "bgr24",
                 str(qc_view[1])]
    return argv


def _ducking(bed: Bed, rate: Fraction, ramp_s: float = 0.25) -> str:
    """A ``volume`` filter that lowers the bed by ``duck_db`` over its duck ranges, with short ramps
    (evaluated per audio frame, ~21 ms: smooth enough for a ramp of a quarter second)."""
    if bed.mix != "under" or not bed.duck:
        return ""
    depth = 1 - 10 ** (bed.duck_db / 20)
    # in each range: 1 inside, ramping to 0 over ramp_s outside it; the bed's gain is 1 - depth*max(...)
    terms = [f"clip(min((t-{float(a / rate) - ramp_s:.4f})/{ramp_s},({float(b / rate) + ramp_s:.4f}-t)/{ramp_s}),0,1)"
             for a, b in bed.duck]
    inside = terms[0]
    for term in terms[1:]:
        inside = f"max({inside},{term})"
    return f"volume='1-{depth:.4f}*{inside}':eval=frame,"
