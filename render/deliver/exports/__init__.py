"""NLE interchange: the cut as OpenTimelineIO, FCP7 XML, a CMX3600 EDL and MLT XML.

``timeline.to_otio`` builds the one OTIO model of our Timeline; each format is written from it.
FCPX XML is not offered: its OTIO adapter cannot write 30000/1001 (OTIO issues #903, #1661).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import opentimelineio as otio

from render.callout.folder import CallOut
from render.core.cache import Cache, atomic_path, write_text_atomic
from render.core.errors import UserError
from render.core.house import HouseFormat
from render.edit.timeline import Timeline
from render.intake.records import Source

from . import edl, fcp7, mlt
from .media import write_media
from .timeline import to_otio

#: format -> file extension
FORMATS = {"otio": "otio", "otioz": "otioz", "fcp7xml": "xml", "edl": "edl", "mlt": "mlt"}


def check_format(name: str) -> str:
    """``name`` if it is a format we write, else a one-line user error listing them."""
    if name not in FORMATS:
        raise UserError(f"unknown export format {name!r}: use one of {', '.join(FORMATS)} "
                        f"(FCPX XML is not offered: its adapter cannot write 30000/1001)")
    return name


def export(timeline: Timeline, sources: Mapping[str, Source], callout: CallOut, house: HouseFormat, fit_mode: str,
           cache: Cache, folder: Path, name: str, formats: Sequence[str], media: str = "conformed",
           start_frame: int = 0) -> list[Path]:
    """Our Timeline as each of ``formats``, ``folder/<name>.<ext>``, playing the files written into
    ``folder/media/`` (``media``: conformed house clips, or the original uploads)."""
    files = write_media(timeline, sources, callout, house, fit_mode, cache, folder / "media", media)
    model = to_otio(timeline, files, callout, start_frame, name)
    return [write(model, fmt, folder / f"{name}.{FORMATS[fmt]}", house) for fmt in formats]


def write(timeline: otio.schema.Timeline, fmt: str, out: Path, house: HouseFormat) -> Path:
    """Write ``timeline`` as ``fmt`` to ``out``, atomically."""
    check_format(fmt)
    if fmt == "otio":
        write_text_atomic(out, otio.adapters.write_to_string(timeline, adapter_name="otio_json"))
    elif fmt == "otioz":
        # the bundle holds the media (relative paths inside it); its writer checks every file exists
        with atomic_path(out) as tmp:
            tmp.unlink()
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name="otioz")
    elif fmt == "fcp7xml":
        write_text_atomic(out, fcp7.write(timeline))
    elif fmt == "edl":
        write_text_atomic(out, edl.write(timeline))
    else:
        write_text_atomic(out, mlt.write(timeline, house))
    return out
