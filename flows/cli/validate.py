"""``remixtv validate SPEC``: check a spec and its call-out without rendering."""

from __future__ import annotations

from .build import spec_variables


def run(args) -> int:
    """Print the spec's segments, runtime and call-out, and the call-out's warnings."""
    from flows.storage import local_callout
    from render.callout.folder import load_callout
    from render.core.house import RATE
    from render.core.timebase import timecode, to_frames
    from render.edit.spec import check_against, load_spec

    spec = load_spec(args.spec, spec_variables(args.var))
    callout = load_callout(local_callout(spec.callout))  # an s3:// call-out is staged into the cache first
    check_against(spec, callout)
    print(f"{args.spec}: ok: {len(spec.segments)} segments, runtime {timecode(to_frames(spec.runtime_s, RATE), RATE)}, "
          f"call-out {callout.id!r} with {len(callout.records)} records")
    for w in callout.warnings:
        print(f"warning: {w}")
    return 0
