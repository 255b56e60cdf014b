"""``remixtv validate SPEC``: check a spec and its call-out without rendering."""

from __future__ import annotations

from .build import spec_variables


def run(args) -> int:
    """Report every problem of the spec and of what it asks of its call-out in one pass; when there
    are none, print the spec's segments, runtime and call-out, and the call-out's warnings."""
    from flows.storage import local_callout
    from render.callout.folder import load_callout
    from render.core.errors import SpecError, UserError
    from render.core.house import RATE
    from render.core.timebase import timecode, to_frames
    from render.edit.spec import callout_problems, read_spec, tag_problems

    spec, problems = read_spec(args.spec, spec_variables(args.var))
    if any(p.path == "callout" for p in problems):
        raise SpecError(problems)
    try:
        callout = load_callout(local_callout(spec.callout))  # an s3:// call-out is staged into the cache first
    except UserError as exc:
        raise UserError([*SpecError(problems).problems, *exc.problems]) from None
    problems += callout_problems(spec, callout) + tag_problems(spec, callout)
    if problems:
        raise SpecError(problems)
    print(f"{args.spec}: ok: {len(spec.segments)} segments, runtime {timecode(to_frames(spec.runtime_s, RATE), RATE)}, "
          f"call-out {callout.id!r} with {len(callout.records)} records")
    for w in callout.warnings:
        print(f"warning: {w}")
    return 0
