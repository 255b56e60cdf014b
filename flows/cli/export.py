"""``remixtv export SPEC --format F``: the cut for an NLE (otio, otioz, fcp7xml, edl, mlt) and its media."""

from __future__ import annotations

import os
from pathlib import Path

from render.core.errors import UserError

from .build import spec_variables


def start_frame(tc: str) -> int:
    """Frames of a drop-frame timecode at 30000/1001 (``01:00:00;00`` -> 107892)."""
    import opentimelineio as otio

    try:
        return round(otio.opentime.from_timecode(tc, 30000 / 1001).value)
    except (ValueError, RuntimeError):
        raise UserError(f"--start-timecode {tc!r}: write it as HH:MM:SS;FF, e.g. 01:00:00;00") from None


def _writable(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to the output folder {folder}: choose another with --out")
    return folder


def run(args) -> int:
    """Check everything a user can get wrong before Prefect starts, then export; prints the file's path."""
    from flows.prefect_setup import session
    from flows.storage import local_callout
    from render.callout.folder import load_callout
    from render.deliver.exports import check_format
    from render.edit.spec import check_against, load_spec

    check_format(args.format)
    variables = spec_variables(args.var)
    spec = load_spec(args.spec, variables)  # the same file:line errors as validate
    check_against(spec, load_callout(local_callout(spec.callout)))  # an s3:// call-out is staged first
    first = start_frame(args.start_timecode)
    out = _writable(Path(args.out or Path("out") / Path(args.spec).stem / "export"))
    with session(args.verbose):
        from flows.export import export_flow

        path = export_flow(str(args.spec), args.format, str(out), args.media, args.profile, args.cache, variables,
                           first)
    print(path)
    return 0
