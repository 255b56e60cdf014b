"""FCP7 XML (xmeml, Premiere and Resolve) through otio-fcp-adapter, and the two things it leaves out.

The adapter writes every clip item unlinked and every file's timecode as 00:00:00:00. Resolve then
imports a clip's picture and sound as separate, unlinked items (auto-editor issues #188, #368, #370)
and relinks by timecode extents (#344). ``link`` is the one place that fixes both: a clip's video
and audio items (the same file over the same sequence frames) get ``<link>`` elements to each other,
and each ``<file>`` gets its real starting timecode.
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


def link(xml: str, timecode_of: FileTimecode = file_timecode) -> str:
    """The adapter's xmeml with video/audio clip items linked and files' timecodes made real."""
    root = ET.fromstring(xml)
    for sequence in root.iter("sequence"):
        media = sequence.find("media")
        if media is None:
            continue
        items: dict[tuple[str, str, str], list[tuple[ET.Element, str, int, int]]] = {}
        for kind in ("video", "audio"):
            section = media.find(kind)
            for t_index, track in enumerate(section.findall("track") if section is not None else [], start=1):
                for c_index, item in enumerate(track.findall("clipitem"), start=1):
                    file_e = item.find("file")
                    key = (file_e.get("id") if file_e is not None else "", item.findtext("start"), item.findtext("end"))
                    items.setdefault(key, []).append((item, kind, t_index, c_index))
        for group in items.values():
            if {k for _, k, _, _ in group} != {"video", "audio"}:
                continue
            for item, *_ in group:
                for old in item.findall("link"):
                    item.remove(old)
                for other, kind, t_index, c_index in group:
                    e = ET.SubElement(item, "link")
                    ET.SubElement(e, "linkclipref").text = other.get("id")
                    ET.SubElement(e, "mediatype").text = kind
                    ET.SubElement(e, "trackindex").text = str(t_index)
                    ET.SubElement(e, "clipindex").text = str(c_index)
                    if kind == "audio":
                        ET.SubElement(e, "groupindex").text = "1"
    for file_e in root.iter("file"):
        url, tc = file_e.findtext("pathurl"), file_e.find("timecode")
        if not url or tc is None:
            continue
        real = timecode_of(Path(unquote(urlparse(url).path)))
        if real:
            timebase = int(tc.findtext("rate/timebase") or 30)
            tc.find("string").text = real
            if tc.find("frame") is not None:
                tc.find("frame").text = str(_frames_of(real, timebase))
            display = tc.find("displayformat")
            if display is not None:
                display.text = "DF" if ";" in real else "NDF"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(timeline: otio.schema.Timeline) -> str:
    """FCP7 XML of the timeline, linked (see ``link``)."""
    return link(otio.adapters.write_to_string(timeline, adapter_name="fcp_xml"))
