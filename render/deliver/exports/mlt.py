"""MLT XML (Shotcut, Kdenlive, ``melt``) of the OTIO timeline, written with ElementTree.

Not through otio-mlt-adapter: it drops an audio clip that comes from the same file as a video clip
(every clip's own sound), composites and mixes nothing between tracks, and cannot mute one. Here
every OTIO track is a playlist; video tracks play their producers' pictures only and sound tracks
their sound only (``hide``), so a clip's sound survives on its own track; the main tractor blends
each video track over the one below (``affine``, which honours the lower thirds' alpha; ``qtblend`` drops
the picture under them in melt 7.12) and mixes every enabled
sound track (``mix``, summed); a disabled OTIO track is hidden. A crossfade is a two-track tractor
inside the playlist (``luma`` for picture, ``mix`` for sound) over the frames the transition spans,
the outgoing clip running on into its handle and the incoming one starting early, as in the render;
a dip fades the clips either side of its cut through black and silence (``brightness``, ``volume``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from render.core.house import HouseFormat


def _prop(parent: ET.Element, name: str, value) -> None:
    ET.SubElement(parent, "property", name=name).text = str(value)


def _path(url: str) -> str:
    return unquote(urlparse(url).path) if url.startswith("file:") else url


def _fades(entry: ET.Element, clip: otio.schema.Clip, first: int, end: int, kind: str) -> None:
    """A dip's fades on a clip playing its media's frames [first, end) (its ``fade_in``/``fade_out``
    effects), as the render does them: picture through black (``brightness``), sound through silence
    (``volume``, -60 dB), linear over their frames. melt places an entry's filter keyframes in its
    producer's frames, not the entry's."""
    for effect in clip.effects:
        n = effect.metadata.get("remixtv", {}).get("frames", 0)
        if effect.effect_name not in ("fade_in", "fade_out") or not n:
            continue
        ramp = (first, first + n) if effect.effect_name == "fade_in" else (end - n, end - 1)
        low, high = (0, 1) if kind == "Video" else (-60, 0)
        a, b = (low, high) if effect.effect_name == "fade_in" else (high, low)
        filt = ET.SubElement(entry, "filter")
        _prop(filt, "mlt_service", "brightness" if kind == "Video" else "volume")
        _prop(filt, "level", f"{ramp[0]}={a};{ramp[1]}={b}")


class _Writer:  # one concept: the MLT document being built from one OTIO timeline; each method is short
    def __init__(self, house: HouseFormat):
        self.root = ET.Element("mlt", LC_NUMERIC="C", version="7.12.0", producer="main")
        rate = house.rate
        ET.SubElement(self.root, "profile", description=f"remixtv {house.name}", width=str(house.width),
                      height=str(house.height), progressive="1", sample_aspect_num="1", sample_aspect_den="1",
                      display_aspect_num=str(house.width), display_aspect_den=str(house.height),
                      frame_rate_num=str(rate.numerator), frame_rate_den=str(rate.denominator), colorspace="709")
        self.producers: dict[tuple[str, str], str] = {}
        self.body: list[ET.Element] = []

    def producer(self, url: str, kind: str) -> str:
        """The producer of ``url``'s picture (``Video``) or sound (``Audio``), once each."""
        key = (url, kind)
        if key not in self.producers:
            pid = f"producer{len(self.producers)}"
            e = ET.Element("producer", id=pid)
            _prop(e, "resource", _path(url))
            _prop(e, "mlt_service", "avformat")
            _prop(e, "audio_index" if kind == "Video" else "video_index", -1)
            self.root.append(e)
            self.producers[key] = pid
        return self.producers[key]

    @staticmethod
    def _frames(t: otio.opentime.RationalTime) -> int:
        return round(t.value)

    def playlist(self, track: otio.schema.Track, pid: str) -> ET.Element:
        playlist = ET.Element("playlist", id=pid)
        items = list(track)
        # each clip's [in, out) in its media, trimmed where a transition takes over
        spans: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            if isinstance(item, otio.schema.Clip):
                r = item.source_range
                spans[i] = [self._frames(r.start_time), self._frames(r.end_time_exclusive())]
        for i, item in enumerate(items):
            if isinstance(item, otio.schema.Transition):
                spans[i - 1][1] -= self._frames(item.in_offset)
                spans[i + 1][0] += self._frames(item.out_offset)
        for i, item in enumerate(items):
            if isinstance(item, otio.schema.Gap):
                ET.SubElement(playlist, "blank", length=str(self._frames(item.source_range.duration)))
            elif isinstance(item, otio.schema.Clip):
                a, b = spans[i]
                if b > a:
                    entry = ET.SubElement(playlist, "entry", attrib={
                        "producer": self.producer(item.media_reference.target_url, track.kind),
                        "in": str(a), "out": str(b - 1)})
                    _fades(entry, item, a, b, track.kind)
            elif isinstance(item, otio.schema.Transition):
                tractor = self.crossfade(items[i - 1], item, items[i + 1], track.kind, f"{pid}_x{i}")
                n = self._frames(item.in_offset) + self._frames(item.out_offset)
                ET.SubElement(playlist, "entry", producer=tractor, attrib={"in": "0", "out": str(n - 1)})
        return playlist

    def crossfade(self, a: otio.schema.Clip, t: otio.schema.Transition, b: otio.schema.Clip, kind: str,
                  tid: str) -> str:
        """A tractor blending ``a`` (on into its handle) into ``b`` (from its pre-roll) over the transition."""
        before, after = self._frames(t.in_offset), self._frames(t.out_offset)
        n = before + after
        cut_a = self._frames(a.source_range.end_time_exclusive())
        cut_b = self._frames(b.source_range.start_time)
        tractor = ET.Element("tractor", id=tid, attrib={"in": "0", "out": str(n - 1)})
        multitrack = ET.SubElement(tractor, "multitrack")
        for clip, start in ((a, cut_a - before), (b, max(0, cut_b - before))):
            inner = ET.SubElement(multitrack, "playlist")
            ET.SubElement(inner, "entry", producer=self.producer(clip.media_reference.target_url, kind),
                          attrib={"in": str(start), "out": str(start + n - 1)})
        mix = ET.SubElement(tractor, "transition", attrib={"in": "0", "out": str(n - 1)})
        _prop(mix, "a_track", 0)
        _prop(mix, "b_track", 1)
        if kind == "Video":
            _prop(mix, "mlt_service", "luma")
        else:
            _prop(mix, "mlt_service", "mix")
            _prop(mix, "start", 0)
            _prop(mix, "end", 1)
        self.body.append(tractor)
        return tid

    def main(self, timeline: otio.schema.Timeline) -> None:
        frames = round(timeline.duration().value)
        bg = ET.Element("producer", id="black", attrib={"in": "0", "out": str(frames - 1)})
        _prop(bg, "resource", "black")
        _prop(bg, "mlt_service", "color")
        _prop(bg, "length", frames)
        self.root.append(bg)
        background = ET.Element("playlist", id="background")
        ET.SubElement(background, "entry", producer="black", attrib={"in": "0", "out": str(frames - 1)})
        playlists = [background]
        tracks = [("background", None)]
        for k, track in enumerate(timeline.tracks):
            pid = f"{'V' if track.kind == 'Video' else 'A'}{k}_{track.name.replace(' ', '_')}"
            playlists.append(self.playlist(track, pid))
            tracks.append((pid, track))
        main = ET.Element("tractor", id="main", attrib={"in": "0", "out": str(frames - 1)})
        multitrack = ET.SubElement(main, "multitrack")
        for pid, track in tracks:
            hide = {None: "audio", "Video": "audio", "Audio": "video"}[track.kind if track else None]
            if track is not None and not track.enabled:
                hide = "both"
            ET.SubElement(multitrack, "track", producer=pid, hide=hide)
        for k, (_, track) in enumerate(tracks):
            if track is None or not track.enabled:
                continue
            e = ET.SubElement(main, "transition")
            _prop(e, "a_track", 0)
            _prop(e, "b_track", k)
            _prop(e, "always_active", 1)
            if track.kind == "Video":
                _prop(e, "mlt_service", "affine")
            else:
                _prop(e, "mlt_service", "mix")
                _prop(e, "sum", 1)
        for e in self.body + playlists + [main]:
            self.root.append(e)


def write(timeline: otio.schema.Timeline, house: HouseFormat) -> str:
    """The MLT XML of ``timeline`` in the house format's profile."""
    w = _Writer(house)
    w.main(timeline)
    ET.indent(w.root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(w.root, encoding="unicode") + "\n"
