"""FCP7 XML (xmeml, Premiere and Resolve) through otio-fcp-adapter, and the two things it leaves out.

The adapter writes a clip's sound as an empty reference to its picture's item, links nothing, writes
every file's timecode as 00:00:00:00, no sequence timecode and no muted track. Resolve then imports
picture and sound unlinked (auto-editor issues #188, #368, #370) and relinks by timecode extents
(#344). ``link`` is the one place that fixes all of it: each clip's sound becomes an audio item of its
own, linked to its video item (``<link>`` both ways), each ``<file>`` gets its real starting timecode,
the sequence its start, and a disabled OTIO track ``<enabled>FALSE</enabled>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from render.core import ffmpeg

FileTimecode = Callable[[Path], str | None]


def file_timecode(path: Path) -> str | None:
    """A media file's own starting timecode (its tmcd track or timecode tag), or None."""
    try:
        info = ffmpeg.ffprobe_output(path)
    except Exception:  # noqa: BLE001 - a file we cannot probe keeps the adapter's 00:00:00:00
        return None
    tags = [info.get("format", {}).get("tags", {})] + [s.get("tags", {}) for s in info.get("streams", [])]
    return next((t["timecode"] for t in tags if t.get("timecode")), None)


def _frames_of(tc: str, timebase: int) -> int:
    """Frames from a timecode string at a nominal timebase, drop-frame when it says so (``;``)."""
    h, m, s, f = (int(x) for x in tc.replace(";", ":").split(":"))
    frames = ((h * 60 + m) * 60 + s) * timebase + f
    if ";" in tc:  # drop-frame: two frame numbers (four at 60) skipped each minute but every tenth
        drop = round(timebase / 15)
        minutes = h * 60 + m
        frames -= drop * (minutes - minutes // 10)
    return frames


def _audio_items(media: ET.Element) -> None:
    """The adapter writes a clip's sound, when it is the same clip as its picture, as an empty reference
    to the video item (``<clipitem id="clipitem-2"/>``): each becomes an audio item of its own."""
    video = {i.get("id"): i for i in media.iterfind("video/track/clipitem") if len(i)}
    for track in media.iterfind("audio/track"):
        for n, item in enumerate(list(track)):
            if item.tag == "transitionitem":
                item.find("effect/mediatype").text = "audio"
                continue
            if item.tag != "clipitem" or len(item) or item.get("id") not in video:
                continue
            copy = ET.fromstring(ET.tostring(video[item.get("id")]))
            copy.set("id", f"{item.get('id')}-audio")
            for old in copy.findall("file"):
                copy.remove(old)
            copy.insert(0, ET.Element("file", id=video[item.get("id")].find("file").get("id")))
            source = ET.SubElement(copy, "sourcetrack")
            ET.SubElement(source, "mediatype").text = "audio"
            ET.SubElement(source, "trackindex").text = "1"
            track.remove(item)
            track.insert(n, copy)


def _links(media: ET.Element) -> None:
    """``<link>`` elements between the video and audio items of one clip (same file, same sequence frames)."""
    items: dict[tuple, list[tuple[ET.Element, str, int, int]]] = {}
    for kind in ("video", "audio"):
        for t_index, track in enumerate(media.iterfind(f"{kind}/track"), start=1):
            for c_index, item in enumerate(track.iterfind("clipitem"), start=1):
                key = (item.find("file").get("id"), item.findtext("start"), item.findtext("end"),
                       item.findtext("in"), item.findtext("out"))
                items.setdefault(key, []).append((item, kind, t_index, c_index))
    for group in items.values():
        if {kind for _, kind, _, _ in group} != {"video", "audio"}:
            continue
        for item, *_ in group:
            for other, kind, t_index, c_index in group:
                e = ET.SubElement(item, "link")
                ET.SubElement(e, "linkclipref").text = other.get("id")
                ET.SubElement(e, "mediatype").text = kind
                ET.SubElement(e, "trackindex").text = str(t_index)
                ET.SubElement(e, "clipindex").text = str(c_index)
                if kind == "audio":
                    ET.SubElement(e, "groupindex").text = "1"


def _timecode(parent: ET.Element, tc: str, frame: int, timebase: int) -> None:
    """Set (or add) ``parent``'s ``<timecode>`` to ``tc``."""
    e = parent.find("timecode")
    if e is None:
        e = ET.SubElement(parent, "timecode")
        rate = ET.SubElement(e, "rate")
        ET.SubElement(rate, "timebase").text = str(timebase)
        ET.SubElement(rate, "ntsc").text = "TRUE"
    for name, value in (("string", tc), ("frame", str(frame)), ("displayformat", "DF" if ";" in tc else "NDF")):
        (e.find(name) if e.find(name) is not None else ET.SubElement(e, name)).text = value


def link(xml: str, timecode_of: FileTimecode = file_timecode, start: str | None = None,
         muted_audio: tuple[int, ...] = ()) -> str:
    """The adapter's xmeml made whole: every clip's sound an item of its own, linked to its picture;
    each file's real starting timecode; the sequence's ``start`` timecode; ``muted_audio`` tracks
    (1-based) disabled."""
    root = ET.fromstring(xml)
    for sequence in root.iter("sequence"):
        media = sequence.find("media")
        if media is None:
            continue
        _audio_items(media)
        _links(media)
        for n, track in enumerate(media.iterfind("audio/track"), start=1):
            if n in muted_audio:
                (track.find("enabled") if track.find("enabled") is not None
                 else ET.SubElement(track, "enabled")).text = "FALSE"
        if start:
            timebase = int(sequence.findtext("rate/timebase") or 30)
            _timecode(sequence, start, _frames_of(start, timebase), timebase)
    for file_e in root.iter("file"):
        url = file_e.findtext("pathurl")
        real = timecode_of(Path(unquote(urlparse(url).path))) if url else None
        if real:
            timebase = int(file_e.findtext("rate/timebase") or 30)
            _timecode(file_e, real, _frames_of(real, timebase), timebase)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(timeline: otio.schema.Timeline) -> str:
    """FCP7 XML of the timeline, made whole by ``link``."""
    start = otio.opentime.to_timecode(timeline.global_start_time, timeline.global_start_time.rate, drop_frame=True)
    muted = tuple(n for n, t in enumerate(timeline.audio_tracks(), start=1) if not t.enabled)
    return link(otio.adapters.write_to_string(timeline, adapter_name="fcp_xml"), start=start, muted_audio=muted)
