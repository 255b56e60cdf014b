"""CMX3600 EDL of the picture track (V1) through otio-cmx3600-adapter, for conform tools.

An EDL holds one video track and reel names of at most 8 characters. Ours map as ``reel_name`` says:
a record's reel is its record id, upper-cased, letters and digits only, when that fits 8 characters
(``V5``, ``RED``); a longer id keeps its first 3 such characters and 5 hex digits of a hash of the
whole id (``LON1A2B3``), stable from export to export; our own renders (stills, cards, texts, the
credits roll) are ``GFX`` and their position (``GFX0203``: segment 2, shot 3). Each event keeps the
clip's name and file in the adapter's ``* FROM CLIP NAME`` / ``* SOURCE FILE`` comments. Graphics
(V2) and sound tracks are left out: the EDL's job is the picture conform.
"""

from __future__ import annotations

import copy
import hashlib
import re

import opentimelineio as otio

REEL_CHARS = 8


def reel_name(record_id: str) -> str:
    """A record's reel name (at most 8 letters and digits)."""
    clean = re.sub(r"[^A-Z0-9]", "", record_id.upper())
    if clean and len(clean) <= REEL_CHARS and clean == record_id.upper():
        return clean
    return clean[:3] + hashlib.sha256(record_id.encode()).hexdigest()[:5].upper()


def picture_track(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    """A copy of the timeline with only V1, every clip carrying its reel name."""
    out = copy.deepcopy(timeline)
    v1 = out.video_tracks()[0]
    for track in list(out.tracks):
        if track is not v1:
            out.tracks.remove(track)
    for clip in v1.find_clips():
        meta = clip.metadata.get("remixtv", {})
        record = meta.get("record")
        reel = (reel_name(record) if meta.get("kind") in ("video", "audio") and record
                else f"GFX{meta.get('segment_index', 0) + 1:02d}{meta.get('shot', 0) + 1:02d}")
        clip.metadata["cmx_3600"] = {"reel": reel}
    return out


def write(timeline: otio.schema.Timeline) -> str:
    """The CMX3600 EDL of the picture track."""
    return otio.adapters.write_to_string(picture_track(timeline), adapter_name="cmx_3600", style="avid")
