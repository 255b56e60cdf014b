"""Timeline -> per-segment ffmpeg graphs -> cached segment files -> episode by stream copy.

A segment is rendered by one ffmpeg process that decodes each shot from the original upload,
conforms it inline (``normalize``), joins the shots and encodes once at final quality. Its
picture goes to an H.264 MP4 and its sound to PCM WAV; both are cached under a key made of
everything that can change them (shots, source content hashes, house format, versions) and
nothing else: a segment's position in the episode is not in the key, so an edit elsewhere
never re-renders it.

The episode is joined by stream copy (video) and the sound encoded to AAC once, from the
concatenated PCM. Keeping segment sound as PCM avoids AAC priming gaps at every join; each
segment's sound is rounded to whole samples independently, so the join can drift from the
picture by at most half a sample per segment (0.5 ms over 50 segments), and the final
sound is trimmed to the exact sample count of the picture.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import tempfile
import wave
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render import __version__
from render.core import ffmpeg, pipe, text
from render.core.cache import Cache, atomic_dir, atomic_path, key_of, write_text_atomic
from render.core.errors import FfmpegError
from render.core.house import BACKGROUND, LEGALISE, HouseFormat
from render.core.timebase import samples_for, sec, to_seconds
from render.edit.timeline import CUT, Bed, Shot, Timeline, Transition
from render.intake import conform as normalize
from render.intake.records import Source
from render.master import level as master
from render.master import qc
from render.master import sound as programme_sound

COMPOSE_VERSION = 6  # 3: waveforms of levelled sound; done.json fingerprints; 4: WebM alpha decoded; 5: transitions
WAVE_COLOUR = "0xE8C547"


PIECE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Edges:
    """What lies at a piece's two edges beyond its own shots.

    ``bed``: does the piece's bed start / end here (it fades there only). A crossfade that spans an
    edge needs the shot on the other side: ``before`` is the previous shot when ``shots[0]`` enters
    with a crossfade (its handle, the frames after its out point, blends into this piece's first
    frames), ``after`` the next shot when it enters with one (its pre-roll blends into this piece's
    last frames), each with the bed under it from the cut on. ``exit`` is the next shot's ``enter``
    (a dip fades this piece out). Neighbours are kept only as far as the handles need them (no lower
    third, no transition of their own), so a piece re-renders when its neighbour's picture or sound
    at the cut changes and not otherwise.
    """

    bed: tuple[bool, bool] = (True, True)
    before: Shot | None = None
    before_bed: Bed | None = None
    after: Shot | None = None
    after_bed: Bed | None = None
    exit: Transition = CUT

    @property
    def record_ids(self) -> tuple[str, ...]:
        ids = [x.record_id for x in (self.before, self.before_bed, self.after, self.after_bed) if x is not None]
        return tuple(dict.fromkeys(r for r in ids if r))


@dataclass(frozen=True, slots=True)
class Piece:
    """The unit of rendering: consecutive shots of one segment, about a minute at most.

    Pieces are grouped greedily from the start of their segment, so changing a segment's
    last shot (as a fill does when the runtime arithmetic moves) re-renders only its last piece.
    A piece renders its own shots' frames only; a crossfade across its edge borrows the neighbouring
    shot (``edges``) and renders this side's half of the blend.
    """

    segment_id: str
    index: int
    shots: tuple[Shot, ...]
    bed: Bed | None = None  # the segment's bed, from where this piece starts in it
    edges: Edges = Edges()

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)

    @property
    def record_ids(self) -> tuple[str, ...]:
        ids = [s.record_id for s in self.shots if s.record_id]
        return tuple(dict.fromkeys(ids + ([self.bed.record_id] if self.bed else [])))

    @property
    def before(self) -> Shot | None:
        return self.edges.before

    @property
    def after(self) -> Shot | None:
        return self.edges.after

    @property
    def exit(self) -> Transition:
        return self.edges.exit


def _handle_of(shot: Shot) -> Shot:
    """A neighbouring shot as a crossfade's handle needs it: its picture and sound, not its lower third
    (over before the handle starts) or its own transition."""
    lower_third = {"text": "", "byline": "", "label_frames": 0} if shot.kind in ("video", "image") else {}
    return dataclasses.replace(shot, enter=CUT, **lower_third)


def _bed_from(bed: Bed | None, frame: int, reach: int, rate: Fraction) -> Bed | None:
    """A segment's bed from ``frame`` (of the segment) on: the bed under a neighbour's handle, with the
    duck ranges within ``reach`` frames of it (on its clock: they can start before it)."""
    if bed is None:
        return None
    reach += round(rate / 2)  # the ducking's ramps reach a quarter second past a range
    duck = tuple((a - frame, b - frame) for a, b in bed.duck if a < frame + reach and b > frame - reach)
    return dataclasses.replace(bed, source_in_s=bed.source_in_s + to_seconds(frame, rate), duck=duck)


def pieces(timeline: Timeline, max_seconds: int = PIECE_SECONDS) -> list[Piece]:
    """Cut every segment into render pieces, in timeline order, each with what lies at its edges."""
    limit = round(max_seconds * timeline.rate)
    # every shot in programme order with its segment and where it starts in it: neighbours cross segments
    flat = [(seg, at, shot) for seg in timeline.segments for shot, at in zip(seg.shots, seg.shot_starts())]
    out = []
    first = 0  # index in flat of the piece's first shot
    for seg in timeline.segments:
        groups: list[list[Shot]] = [[]]
        for shot in seg.shots:
            if groups[-1] and sum(s.frames for s in groups[-1]) + shot.frames > limit:
                groups.append([])
            groups[-1].append(shot)
        groups = [g for g in groups if g]
        at = 0
        for i, group in enumerate(groups):
            n = sum(s.frames for s in group)
            bed = None
            if seg.bed is not None:  # the bed from where this piece starts, its duck ranges on the piece's clock
                duck = tuple((max(a, at) - at, min(b, at + n) - at) for a, b in seg.bed.duck if a < at + n and at < b)
                bed = dataclasses.replace(seg.bed, source_in_s=seg.bed.source_in_s + to_seconds(at, timeline.rate),
                                          duck=duck)
            last = first + len(group) - 1
            before = before_bed = after = after_bed = None
            if first > 0 and group[0].enter.kind == "crossfade" and not group[0].enter.is_cut:
                pseg, pat, prev = flat[first - 1]
                before = _handle_of(prev)
                before_bed = _bed_from(pseg.bed, pat - pseg.start_frame + prev.frames, group[0].enter.frames,
                                       timeline.rate)
            exit_ = flat[last + 1][2].enter if last + 1 < len(flat) else CUT
            if exit_.kind == "crossfade" and not exit_.is_cut:
                nseg, nat, nxt = flat[last + 1]
                after = _handle_of(nxt)
                after_bed = _bed_from(nseg.bed, nat - nseg.start_frame, exit_.frames, timeline.rate)
            edges = Edges((i == 0, i == len(groups) - 1), before, before_bed, after, after_bed, exit_)
            out.append(Piece(seg.id, i, tuple(group), bed, edges))
            at += n
            first = last + 1
    return out


@dataclass(frozen=True, slots=True)
class RenderedPiece:
    """A piece on disk: exactly ``frames`` frames of video and the matching samples of sound."""

    segment_id: str
    key: str
    video: Path
    audio: Path
    frames: int
    cached: bool  # True when it came from the cache without rendering


def piece_key(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str) -> str:
    """The cache key of a piece: what it shows, from which bytes, in which format; not where it sits."""
    shots = [dataclasses.asdict(s) for s in piece.shots]
    ids = piece.record_ids + piece.edges.record_ids  # a crossfade across an edge shows the neighbour's media
    hashes = {rid: sources[rid].content_hash for rid in ids if rid in sources}
    bed = [dataclasses.asdict(piece.bed), list(piece.edges.bed)] if piece.bed else None
    # the neighbours and the transitions at the edges: what this piece shows of the shots either side
    edges = {k: v for k, v in dataclasses.asdict(piece.edges).items() if k != "bed" and v is not None}
    if edges == {"exit": dataclasses.asdict(CUT)}:
        edges = {}
    return key_of("piece", COMPOSE_VERSION, normalize.CONFORM_VERSION, house.key(), fit_mode, shots, hashes,
                  *([bed] if bed else []), *([edges] if edges else []))


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

    def __init__(self, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str, workdir: Path):
        self.sources, self.house, self.fit_mode, self.workdir = sources, house, fit_mode, workdir
        self.rate = house.rate
        self.inputs: list[str] = []
        self.statements: list[str] = []
        self.n_inputs = 0

    def input(self, args: list[str]) -> int:
        self.inputs += args
        self.n_inputs += 1
        return self.n_inputs - 1

    def samples(self, first: int, end: int) -> int:
        """Samples between piece frames ``first`` and ``end`` on the piece's clock."""
        return samples_for(end, self.rate) - samples_for(first, self.rate)

    @property
    def cfr(self) -> str:
        """Exact constant-rate timestamps (frame N at N/rate): what the blends and the typesetting read."""
        return f"settb={self.rate.denominator}/{self.rate.numerator},setpts=N"


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
        g.statements.append(normalize.audio_chain(source_label, out, samples, gain_db, fades=fades,
                                                  after_gain=after_gain))
        return
    g.statements += [normalize.silence(f"{tag}hs", held),
                     normalize.audio_chain(source_label, f"{tag}hb", samples - held, gain_db, fades=fades,
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
    shot, house, rate = it.shot, g.house, g.rate
    frames, offset = it.frames, it.lo - it.pre  # offset: the shot's frame at the stream's first frame
    n_samples = g.samples(it.first, it.end)
    src = g.sources.get(shot.record_id) if shot.record_id else None
    pic, v, a = f"{tag}pic", f"{tag}v", f"{tag}a"
    shift = f"{g.cfr}{'+' if offset >= 0 else ''}{offset}" if offset else g.cfr  # the shot's clock
    if shot.kind in ("video", "audio"):
        assert src is not None and src.link is not None, f"no source for {shot.record_id}"
        media = src.media
        start_s, hold = _hold(shot.source_in_s + to_seconds(offset, rate), frames, rate)
        decoded = frames - hold
        seconds = to_seconds(decoded, rate)
        held = g.samples(it.first, it.first + hold)
        opts: list[str] = []
        if shot.kind == "video":
            # animated GIFs loop, as they do on the web (from their first frame at the shot's start); a
            # blink of one (a single frame) just holds, because looping it makes no progress in time and
            # ffmpeg would never reach -t
            phase = start_s - shot.source_in_s
            if (src.demuxer == "gif" and media.duration_s and media.duration_s >= Fraction(1, 2)
                    and seconds > media.duration_s - start_s):
                opts += ["-stream_loop", "-1"]
                start_s = phase % media.duration_s if phase > 0 else Fraction(0)
        if start_s > 0:
            opts += ["-ss", sec(start_s)]
        opts += ["-t", sec(seconds + 1)]
        idx = g.input(opts + normalize.decoder_args(media) + ffmpeg.untrusted_input(src.link, src.demuxer))
        if shot.kind == "video":
            g.statements += normalize.video_chain(f"{idx}:{media.video.index}", f"{tag}dec", media, house, decoded,
                                                  g.fit_mode, tag)
            if media.audio and sound:
                _sound_from(g, f"{idx}:{media.audio.index}", a, n_samples, held, shot.gain_db, tag)
            else:
                g.statements.append(normalize.silence(a, n_samples))
        else:
            ass = g.workdir / f"{tag}.ass"
            ass.write_text(text.audio_label(shot.text, shot.byline, to_seconds(shot.frames, rate)), encoding="utf-8")
            wave_h = house.height // 3
            delay = f"adelay=delays={held}S:all=1," if held else ""
            g.statements += [
                f"[{idx}:{media.audio.index}]asplit=2[{tag}s][{tag}w]",
                # the waveform draws the levelled sound: drawn raw, a loud record fills the band with
                # a shape that changes every frame, which QC's flash meter rightly flags
                (f"[{tag}w]aresample=48000,aformat=channel_layouts=stereo,volume={shot.gain_db:.2f}dB,{delay}"
                 f"showwaves=s={house.width}x{wave_h}:mode=cline:rate={house.rate}:colors={WAVE_COLOUR}:"
                 f"scale=sqrt:split_channels=0,format=yuva420p[{tag}wv]"),
                _colour(f"{tag}bg", BACKGROUND, house, frames),
                (f"[{tag}bg][{tag}wv]overlay=0:{(house.height - wave_h) // 2 + house.height // 8}:eof_action=pass,"
                 f"{shift}[{tag}o]"),
                _typeset(f"{tag}o", f"{tag}dec", ass, frames),
            ]
            _sound_from(g, f"{tag}s", a, n_samples, held, shot.gain_db, tag)
            hold = 0  # the background ran from the first frame: nothing to hold
        if hold:
            g.statements.append(f"[{tag}dec]loop=loop={hold}:size=1:start=0[{pic}]")
        else:
            g.statements.append(f"[{tag}dec]null[{pic}]")
        if shot.kind == "video" and shot.label_frames and offset < shot.label_frames:
            # a lower third is typeset over the conformed picture, so it sits inside title-safe whatever the source
            ass = g.workdir / f"{tag}lt.ass"
            ass.write_text(text.lower_third(shot.text, shot.byline, to_seconds(shot.label_frames, rate)),
                           encoding="utf-8")
            g.statements += [f"[{pic}]{shift}[{tag}ltin]", _typeset(f"{tag}ltin", f"{tag}lt", ass, frames)]
            pic = f"{tag}lt"
    elif shot.kind == "image":
        assert src is not None and src.link is not None, f"no source for {shot.record_id}"
        media = src.media
        idx = g.input(normalize.decoder_args(media) + ffmpeg.untrusted_input(src.link, src.demuxer))
        still = f"{tag}st" if shot.label_frames else f"{tag}dec"
        g.statements += normalize.still_chain(f"{idx}:{media.video.index}", still, media, house, shot.frames,
                                              g.fit_mode, tag)
        if shot.label_frames:
            ass = g.workdir / f"{tag}lt.ass"
            ass.write_text(text.lower_third(shot.text, shot.byline, to_seconds(shot.label_frames, rate)),
                           encoding="utf-8")
            g.statements += [f"[{still}]{g.cfr}[{tag}ltin]", _typeset(f"{tag}ltin", f"{tag}dec", ass, shot.frames)]
        # the move is the shot's own; a handle holds its last frame, a pre-roll its first
        window = f"trim=start_frame={it.lo}:end_frame={it.hi}," if (it.lo, it.hi) != (0, shot.frames) else ""
        tail = f"loop=loop={it.post}:size=1:start={it.hi - it.lo - 1}," if it.post else ""
        lead = f"loop=loop={it.pre}:size=1:start=0," if it.pre else ""
        g.statements += [f"[{tag}dec]{window}{tail}{lead}null[{pic}]", normalize.silence(a, n_samples)]
    elif shot.kind in ("card", "text", "credits"):
        ass = g.workdir / f"{tag}.ass"
        seconds = to_seconds(shot.frames, rate)
        if shot.kind == "card":
            doc = text.card(shot.text, shot.byline, seconds)
        elif shot.kind == "text":
            doc = text.text_card(shot.text, shot.byline, src.record.title if src else "", seconds)
        else:
            doc = shot.text  # the credits roll arrives typeset (see credits.roll)
        ass.write_text(doc, encoding="utf-8")
        g.statements += [_colour(f"{tag}bg0", BACKGROUND, house, frames), f"[{tag}bg0]{shift}[{tag}bg]",
                         _typeset(f"{tag}bg", pic, ass, frames), normalize.silence(a, n_samples)]
    elif shot.kind == "black":
        g.statements += [_colour(pic, "black", house, frames), normalize.silence(a, n_samples)]
    else:
        raise ValueError(f"unknown shot kind {shot.kind!r}")
    vfades, afades = [], []
    if it.fade_in:  # a dip: up from black and silence over the first frames of its own
        vfades.append(f"fade=t=in:start_frame={it.pre}:nb_frames={it.fade_in}")
        afades.append(f"afade=t=in:start_sample={g.samples(it.first, it.start)}:"
                      f"nb_samples={g.samples(it.start, it.start + it.fade_in)}")
    if it.fade_out:  # down to black and silence over its last
        own_end = it.start + it.hi - it.lo
        vfades.append(f"fade=t=out:start_frame={it.pre + it.hi - it.lo - it.fade_out}:nb_frames={it.fade_out}")
        afades.append(f"afade=t=out:start_sample={g.samples(it.first, own_end - it.fade_out)}:"
                      f"nb_samples={g.samples(own_end - it.fade_out, own_end)}")
    g.statements.append(f"[{pic}]format=yuv420p,{''.join(f + ',' for f in vfades)}{g.cfr},"
                        f"trim=end_frame={frames}[{v}]")
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


def _join(g: _Graph, streams: list[tuple[str, int]], overlaps: list[int], out: str, tag: str, audio: bool) -> None:
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
    held = g.samples(first, first + hold)
    idx = g.input(["-ss", sec(start_s), "-t", sec(to_seconds(end - first - hold, g.rate) + 1),
                   *ffmpeg.untrusted_input(src.link, src.demuxer)])
    shift = first + hold - at  # the ducking runs on the bed chain's clock
    after = _ducking(dataclasses.replace(bed, duck=tuple((x - shift, y - shift) for x, y in bed.duck)), g.rate)
    if dips[0]:
        after += f"afade=t=in:nb_samples={g.samples(first + hold, first + hold + dips[0])},"
    if dips[1]:
        after += (f"afade=t=out:start_sample={g.samples(first + hold, end - dips[1])}:"
                  f"nb_samples={g.samples(end - dips[1], end)},")
    _sound_from(g, f"{idx}:{src.media.audio.index}", out, total, held, bed.gain_db, tag, after_gain=after,
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
                  edges: Edges = Edges(), qc_view: tuple[Path, Path] | None = None) -> list[str]:
    """The ffmpeg argv that renders ``shots`` (over ``bed``'s sound, if any) with the transitions between
    them and across the piece's ``edges``; writes the ASS files it needs into ``workdir``. With
    ``qc_view`` (a statistics file, a FIFO) the finished picture is also measured for QC, in the same pass.

    Each shot is one stream, lengthened by the handles a crossfade borrows on either side; streams
    overlap by a crossfade's length and blend there, and cuts and dips join end to end (a dip fades each
    side over its own frames). A crossfade across an edge renders the neighbouring shot's stream too,
    this side's half of the blend only: the piece is cut out of the longer run at the end, so its frame
    and sample counts are exactly its own shots'.
    """
    g = _Graph(sources, house, fit_mode, workdir)
    rate, total_frames = house.rate, sum(s.frames for s in shots)
    before = edges.before if edges.before is not None and shots and shots[0].enter.kind == "crossfade" else None
    after = edges.after if edges.after is not None and edges.exit.kind == "crossfade" else None
    # the transitions on either side of each shot, in piece order (a crossfade at the edges only with its neighbour)
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
    # the shots' own run: pictures and sounds, overlapping by each crossfade inside the piece
    pictures, sounds = [], []
    replaced = _replaces(bed)
    for i, it in enumerate(items):
        v, a = _item_streams(g, it, f"s{i}", sound=not replaced)
        pictures.append((v, it.frames))
        sounds.append((a, g.samples(it.first, it.end)))
    first, end = (items[0].first, items[-1].end) if items else (0, 0)
    overlaps_v = [x.end - y.first for x, y in itertools.pairwise(items)]
    overlaps_a = [g.samples(y.first, x.end) for x, y in itertools.pairwise(items)]
    _join(g, pictures, overlaps_v, "own_v", "jv", audio=False)
    run_samples = g.samples(first, end)
    own_a = "own_a"
    if replaced:
        # the bed replaces the shots' own sound: their (silent) streams end in null sinks, unjoined. A
        # decoded sound there made ffmpeg read every shot's file at once, since a null sink always
        # wants more: the whole piece's pictures queued, conformed, before the concat (3 GB for a montage)
        g.statements += [f"[{label}]anullsink" for label, _ in sounds]
    else:
        _join(g, sounds, overlaps_a, own_a, "ja", audio=True)
    if bed is not None:
        # it fades only where the segment starts or ends, so the music runs on across piece boundaries
        # without a dip; a dip at the segment's edge takes the bed down with the picture
        dips = (items[0].fade_in if edges.bed[0] else 0, items[-1].fade_out if edges.bed[1] else 0)
        _bed_stream(g, bed, 0, first, end, "bed" if replaced else "bedu", "bed", fades=edges.bed,
                    dips=dips)
        own_a = "bed" if replaced else _under(g, "own_a", bed, "bedu", run_samples, "mixed")
    # the neighbours' halves of the crossfades across the piece's edges
    vseq, aseq = [("own_v", end - first)], [(own_a, run_samples)]
    if before is not None:
        t = shots[0].enter
        it = _Item(before, before.frames - t.before_frames, before.frames, -t.before_frames, post=t.after_frames)
        v, a = _item_streams(g, it, "nb", sound=not _replaces(edges.before_bed))
        if edges.before_bed is not None:
            _bed_stream(g, edges.before_bed, 0, it.first, it.end, "nbbed", "nbb")
            a = _under(g, a, edges.before_bed, "nbbed", g.samples(it.first, it.end), "nbmix")
        vseq.insert(0, (v, it.frames))
        aseq.insert(0, (a, g.samples(it.first, it.end)))
    if after is not None:
        t = edges.exit
        it = _Item(after, 0, t.after_frames, total_frames, pre=t.before_frames)
        v, a = _item_streams(g, it, "na", sound=not _replaces(edges.after_bed))
        if edges.after_bed is not None:
            _bed_stream(g, edges.after_bed, total_frames, it.first, it.end, "nabed", "nab")
            a = _under(g, a, edges.after_bed, "nabed", g.samples(it.first, it.end), "namix")
        vseq.append((v, it.frames))
        aseq.append((a, g.samples(it.first, it.end)))
    # each neighbour's stream lies wholly inside the run's overlapping ends
    ov_v = ([vseq[0][1]] if before is not None else []) + ([vseq[-1][1]] if after is not None else [])
    ov_a = ([aseq[0][1]] if before is not None else []) + ([aseq[-1][1]] if after is not None else [])
    _join(g, vseq, ov_v, "run_v", "ev", audio=False)
    _join(g, aseq, ov_a, "run_a", "ea", audio=True)
    # the piece is this run from its first own frame: exactly its frames and samples
    skip_v, skip_a = -first, g.samples(first, 0)
    # fps after the exact restamp changes no frame; it sets the stream's declared rate, which a
    # looped still (the loop filter) would otherwise leave unset and the muxer would call 25 fps. The
    # restamp is an integer one (setpts=N in 1/rate): N/(rate)/TB in a 1/rate timebase truncates to N-1
    # for some N, and fps then drops one frame and repeats another
    # legalised last, once, so nothing after it can leave the range: scaling rings past it (the push-in
    # over a still stretched a line drawing to 0-255), and typesetting and blends come after conform
    g.statements.append(f"[run_v]trim=start_frame={skip_v}:end_frame={skip_v + total_frames},"
                        f"{g.cfr},fps={rate},format=yuv420p,{LEGALISE}" + (",split=2[vout][qcv]" if qc_view else "[vout]"))
    if qc_view is not None:
        g.statements.append(qc.picture_graph("qcv", qc_view[0], "qcout"))
    g.statements.append(f"[run_a]atrim=start_sample={skip_a}:end_sample={skip_a + samples_for(total_frames, rate)},"
                        "asetpts=N/SR/TB[aout]")
    argv = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *g.inputs,
            "-filter_complex", ";\n".join(g.statements)]
    if video_out is not None:
        argv += ["-map", "[vout]", "-an", *house.video_codec_args(), "-fps_mode", "passthrough",
                 "-frames:v", str(total_frames), str(video_out)]
    else:
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


def render_piece(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                 cache: Cache, progress: Callable[[float], None] | None = None) -> RenderedPiece:
    """Render one piece into the cache (or find it there); returns where its files are."""
    found = cached_piece(piece, sources, house, fit_mode, cache)
    if found is not None:
        return found
    key = piece_key(piece, sources, house, fit_mode)
    folder = _piece_folder(key, house, cache)
    video, audio = folder / "video.mp4", folder / "audio.wav"
    seconds = float(to_seconds(piece.frames, house.rate))
    # QC's picture measures are taken from the picture as it goes to the encoder, in this pass: a
    # second decode of every 1080p piece cost a third as much CPU as encoding it. The join copies
    # these encodes bit for bit, so the file carries this picture up to the codec's quantisation,
    # which QC's low-pass leaves out of the legal-range reading anyway (EBU R 103)
    with atomic_dir(folder) as tmp, tempfile.TemporaryDirectory(prefix="remixtv-qc-") as qdir:
        meter = qc.PictureMeasure(Path(qdir) / "signalstats.txt")
        with pipe.reading(qc.PictureMeasure.RECORD_BYTES, meter.feed) as view:
            argv = build_command(piece.shots, sources, house, fit_mode, tmp, tmp / "video.mp4", tmp / "audio.wav",
                                 piece.bed, piece.edges, qc_view=(meter.stats, view))
            ffmpeg.run(argv, timeout_s=120 + 30 * seconds,
                       progress=(lambda t: progress(min(1.0, t / seconds))) if progress else None)
        _check(argv, tmp / "video.mp4", tmp / "audio.wav", piece.frames, samples_for(piece.frames, house.rate))
        qc.store(tmp, meter.piece(tmp / "audio.wav", piece.frames, house, argv))
        (tmp / "done.json").write_text(json.dumps({"segment": piece.segment_id, "piece": piece.index,
                                                   "frames": piece.frames, "engine": __version__,
                                                   "files": {n: fingerprint(tmp / n) for n in PIECE_FILES}}))
    return RenderedPiece(piece.segment_id, key, video, audio, piece.frames, cached=False)


def _piece_folder(key: str, house: HouseFormat, cache: Cache) -> Path:
    return cache.root / "pieces" / house.name / key[:2] / key


def cached_piece(piece: Piece, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                 cache: Cache) -> RenderedPiece | None:
    """The piece as the cache holds it, intact, or None if it must be rendered."""
    key = piece_key(piece, sources, house, fit_mode)
    folder = _piece_folder(key, house, cache)
    # a piece without this QC's measures is rendered again rather than decoded for them: QC reads
    # every piece the same way, from the encoder's input (a decode would count the codec's ringing)
    if not _intact(folder) or qc.cached_piece_qc(folder / "video.mp4", piece.frames) is None:
        return None
    return RenderedPiece(piece.segment_id, key, folder / "video.mp4", folder / "audio.wav", piece.frames, cached=True)


PIECE_FILES = ("video.mp4", "audio.wav")
_SAMPLE_BLOCK = 64 * 1024
_SAMPLE_BLOCKS = 16


def fingerprint(path: Path) -> dict:
    """A file's size and a checksum of sampled blocks (head, tail and 16 spread between).

    Reading ~1 MiB per file keeps a no-change rebuild cheap while catching truncation (the size),
    a rewritten header or tail, and most damage in between; a full hash of every piece would cost
    a read of the whole programme on every build.
    """
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        offsets = {0, max(0, size - _SAMPLE_BLOCK)}
        offsets |= {size * i // (_SAMPLE_BLOCKS + 1) for i in range(1, _SAMPLE_BLOCKS + 1)}
        for off in sorted(offsets):
            f.seek(off)
            h.update(f.read(_SAMPLE_BLOCK))
    return {"size": size, "sample_sha256": h.hexdigest()}


def _intact(folder: Path) -> bool:
    """A cached piece is reused only when done.json vouches for files that still match it; anything
    else (an interrupted copy, a truncated or damaged file, an older layout) is rendered again."""
    try:
        files = json.loads((folder / "done.json").read_text())["files"]
        return all(fingerprint(folder / n) == files[n] for n in PIECE_FILES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _check(argv: list[str], video: Path, audio: Path, frames: int, samples: int) -> None:
    """Refuse a render whose frame or sample count is not exact (a join would drift)."""
    info = ffmpeg.ffprobe_output(video)
    got = int(info["streams"][0].get("nb_frames", -1))
    with wave.open(str(audio)) as w:
        got_samples = w.getnframes()
    if got != frames or got_samples != samples:
        raise FfmpegError(argv, 0, "", f"rendered {got} frames / {got_samples} samples, "
                                       f"expected {frames} / {samples}")


MOOV_TOO_SMALL = "reserved_moov_size is too small"


def moov_bytes(frames: int, samples: int, chapters: int = 0) -> int:
    """Space reserved before the media data for the MP4's index (moov), so the file is fast-start
    without ``+faststart``'s second pass, which rewrites the whole file (1.4 s of a 2 s preview join).

    The index costs ~11 bytes a sample here (22 minutes: 1.14 MB for 39 560 frames and 61 876 AAC
    packets); 24 a sample (frames, AAC packets, chapters) plus 64 KiB leaves twice that. Should it not
    fit, the muxer says so (and exits 0 with a broken file), and the join is written again with
    ``+faststart``."""
    return 65536 + 24 * (frames + samples // 1024 + 2 + chapters)


@dataclass(frozen=True, slots=True)
class Joined:
    """What ``join`` did: whether it wrote the file, the join's key, and the levelled sound's figures."""

    rewritten: bool
    key: str
    loudness: dict | None = None  # build.json's "loudness" (levelled joins only)
    sound_encode: dict | None = None  # spliced joins: AAC frames encoded afresh and reused


def join(segments: list[RenderedPiece], house: HouseFormat, out: Path, *, title: str = "",
         chapters: tuple[master.Chapter, ...] = (), level: bool = False, verify: bool = True, splice: bool = False,
         progress: Callable[[float], None] | None = None) -> Joined:
    """Join rendered pieces into one MP4: video by stream copy, sound encoded to AAC.

    ``level`` levels the programme's sound to the delivery loudness (``master.level_programme``) and
    (``verify``) re-measures the final file; ``chapters`` are written into the MP4. ``splice`` (the
    preview's choice) levels by one gain and re-encodes only the sound that changed since the last
    join into ``out`` (``programme_sound``). Does nothing (``rewritten`` False) when ``out`` already
    holds exactly this join: a sidecar written after the file records its key, size and loudness figures.
    """
    key = key_of("join", COMPOSE_VERSION, house.key(), title, [s.key for s in segments],
                 [c.to_json(house.rate) for c in chapters], [master.level_key(), verify] if level else None)
    sidecar = out.with_name(f".{out.name}.key")
    kept_sound = out.with_name(f".{out.name}.aac")  # the spliced preview's programme AAC, for the next edit
    done: dict = {}
    try:
        done = json.loads(sidecar.read_text())
        if out.exists() and done["key"] == key and done["size"] == out.stat().st_size:
            return Joined(False, key, done.get("loudness"))
    except (OSError, ValueError, KeyError, TypeError):
        done = done if isinstance(done, dict) else {}
    frames = sum(s.frames for s in segments)
    total_samples = samples_for(frames, house.rate)
    seconds = float(to_seconds(frames, house.rate))
    loudness, layout, sound_encode = None, None, None
    meters = ([master.piece_meter(s.audio, float(to_seconds(s.frames, house.rate))) for s in segments]
              if level else [])
    if splice:
        previous = programme_sound.Layout.from_json(done.get("sound"))
        plan = (master.preview_plan(master.programme_loudness(meters), previous.gain_db if previous else None)
                if level else None)
        if plan is None or plan.mode != "limited":  # a limiter's sound cannot be spliced: level it all, below
            layout = programme_sound.Layout(tuple((s.key, samples_for(s.frames, house.rate)) for s in segments),
                                            total_samples, plan.gain_db if plan and plan.mode == "linear" else 0.0)
    with tempfile.TemporaryDirectory(prefix="remixtv-join-") as tmpdir:
        work = Path(tmpdir)
        vlist, alist, meta = work / "video.txt", work / "audio.txt", work / "chapters.txt"
        vlines, start = [], 0
        for s in segments:
            # exact cumulative durations: the concat demuxer would otherwise trust the MP4's
            # millisecond-rounded movie duration and jitter every join by up to half a millisecond
            a = round(to_seconds(start, house.rate) * 1_000_000)
            b = round(to_seconds(start + s.frames, house.rate) * 1_000_000)
            vlines.append(f"{ffmpeg.concat_entry(s.video)}duration {(b - a) / 1e6:.6f}\n")
            start += s.frames
        vlist.write_text("".join(vlines))
        alist.write_text("".join(ffmpeg.concat_entry(s.audio) for s in segments))
        meta.write_text(master.ffmetadata(chapters, house.rate), encoding="utf-8")

        def mux(tmp: Path, audio_in: list[str], audio_out: list[str], verbose: bool = False) -> str:
            def argv(fast_start: list[str]) -> list[str]:
                return [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-y", "-v", "info" if verbose else "error",
                        "-f", "concat", "-safe", "0", "-i", str(vlist), *audio_in,
                        "-f", "ffmetadata", "-i", str(meta),
                        "-map", "0:v", "-map", "1:a", "-map_metadata", "2", "-map_chapters", "2" if chapters else "-1",
                        "-c:v", "copy", *audio_out, "-metadata", f"title={title}", *fast_start,
                        "-movie_timescale", str(house.rate.numerator), "-f", "mp4", str(tmp)]

            def run(cmd: list[str]) -> str:
                return ffmpeg.run(cmd, timeout_s=300 + seconds,
                                  progress=(lambda t: progress(min(1.0, t / seconds))) if progress else None).stderr_tail

            said = run(argv(["-moov_size", str(moov_bytes(frames, total_samples, len(chapters)))]))
            if MOOV_TOO_SMALL in said:  # ffmpeg exits 0 with a broken file: write it again, the slow way
                said = run(argv(["-movflags", "+faststart"]))
            return said

        with atomic_path(out) as tmp:
            if layout is not None:
                sound = work / "programme.aac"
                result = programme_sound.encode([s.audio for s in segments], layout, house, sound, work,
                                                previous=(previous, kept_sound) if previous else None,
                                                timeout_s=300 + seconds)
                mux(tmp, ["-f", "aac", "-i", str(sound)], programme_sound.mux_args(total_samples, house))
                sound_encode = result.to_json()
                if level:
                    loudness = master.planned_loudness(plan, meters)
            else:
                def encode(audio_filter: str, per_sample: bool = False) -> list[str]:
                    if per_sample:  # a gain or linear loudnorm: the AAC is encoded a part a core and spliced
                        sound = work / "programme.aac"
                        tails = programme_sound.encode_whole(
                            [s.audio for s in segments], [samples_for(s.frames, house.rate) for s in segments],
                            total_samples, audio_filter, house, sound, work, timeout_s=300 + seconds, verbose=level)
                        mux(tmp, ["-f", "aac", "-i", str(sound)], programme_sound.mux_args(total_samples, house))
                        return tails
                    # the level chain runs before the exact trim, so the sound still ends on the picture's last sample
                    return [mux(tmp, ["-f", "concat", "-safe", "0", "-i", str(alist)],
                                ["-af", f"{audio_filter},apad=whole_len={total_samples},atrim=end_sample={total_samples}",
                                 *house.audio_codec_args()], verbose=level)]

                if level:
                    loudness = master.level_programme(meters, alist, encode, tmp, timeout_s=300 + 2 * seconds,
                                                      verify=verify)
                else:
                    encode("anull", per_sample=True)
        if layout is not None:
            os.replace(sound, kept_sound)
        else:
            kept_sound.unlink(missing_ok=True)
    write_text_atomic(sidecar, json.dumps({"key": key, "size": out.stat().st_size, "loudness": loudness,
                                           "sound": layout.to_json() if layout else None,
                                           "sound_encode": sound_encode}))
    return Joined(True, key, loudness, sound_encode)


def render_timeline(timeline: Timeline, sources: Mapping[str, Source], house: HouseFormat, fit_mode: str,
                    cache: Cache, out: Path) -> Path:
    """Render every piece (serially) and join them: the engine's whole job without Prefect."""
    rendered = [render_piece(p, sources, house, fit_mode, cache) for p in pieces(timeline)]
    join(rendered, house, out, title=timeline.title, chapters=master.chapters(timeline), level=True)
    return out


def write_clip(source: Source, shot: Shot, house: HouseFormat, fit_mode: str, cache: Cache, out: Path) -> Path:
    """One record conformed to the house format as a standalone MP4, through the render path itself."""
    rendered = render_piece(Piece(source.record.record_id, 0, (shot,)), {source.record.record_id: source},
                            house, fit_mode, cache)
    join([rendered], house, out, title=source.record.title)
    return out
