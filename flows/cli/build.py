"""``remixtv build SPEC``: build an episode (``--watch``: again on every save of the spec)."""

from __future__ import annotations

import time
from pathlib import Path

from render.core.errors import UserError

from . import terminal


def run(args) -> int:
    """Build once (exit 3 with ``--strict`` when a QC limit fails), or watch the spec."""
    variables = spec_variables(args.var)
    if args.watch:
        return watch(args, variables)
    result = build(Path(args.spec), args.profile, args.out, args.cache, args.verbose, args.dask, variables,
                   args.deliver, export_formats(args.export))
    if args.strict and not (result.get("qc") or {}).get("passed", False):
        return 3
    return 0


def export_formats(text: str | None) -> tuple[str, ...]:
    """``--export otio,fcp7xml`` as formats, each checked (an unknown one is a one-line error listing them)."""
    from render.deliver.exports import check_format

    return tuple(check_format(f.strip()) for f in (text or "").split(",") if f.strip())


def spec_variables(pairs: list[str] | None) -> dict[str, str]:
    """``--var NAME=VALUE`` options as a mapping (a malformed one is a user error, not a traceback)."""
    out = {}
    for pair in pairs or []:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise UserError([f"--var {pair!r}: write it as NAME=VALUE, e.g. --var episode=3"])
        out[name.strip()] = value
    return out


def build(spec: Path, profile: str, out: str | Path, cache: str | None, verbose: bool,
          dask: str | None = None, variables: dict[str, str] | None = None, deliver: str | None = None,
          export: tuple[str, ...] = ()) -> dict:
    """One build, with progress bars and a summary; prints where the episode is; returns build.json's content."""
    from flows import storage
    from flows.prefect_setup import session

    out = str(out)
    _check(spec, out, cache, variables, profile, deliver)  # before Prefect starts (that costs seconds)
    err = terminal.console()
    started = time.monotonic()
    if dask and cache:
        cache = str(Path(cache).resolve())  # workers elsewhere do not share our current directory
    with session(verbose, dask=dask, cache_root=cache):
        from flows.pipeline import build_flow

        with terminal.bars(err).progress:
            result = build_flow(str(spec), profile, out, cache, variables=variables, deliver=deliver, export=export)
    terminal.build_summary(err, result, time.monotonic() - started)
    if storage.is_uri(out):
        print(f"{storage.join_uri(out, spec.stem, profile)}/episode.mp4")
    else:
        print(Path(out) / spec.stem / profile / "episode.mp4")
    return result


def _check(spec: Path, out: str, cache: str | None, variables: dict[str, str] | None, profile: str = "preview",
           deliver: str | None = None) -> None:
    """Fail fast on spec mistakes, a missing output bucket or a call-out the spec cannot use;
    an ``s3://`` call-out is staged into the cache (the build then finds it there, unchanged)."""
    from flows import storage
    from render.callout.folder import load_callout
    from render.deliver import deliverables
    from render.edit.spec import check_against, load_spec

    loaded = load_spec(spec, variables)
    deliverables.targets(loaded, profile, deliver)
    if storage.is_uri(out):
        storage.check_destination(out)
    if storage.is_uri(loaded.callout):
        with terminal.console().status(f"staging {loaded.callout}") as status:
            callout_dir = storage.local_callout(loaded.callout, cache, progress=lambda done, total: status.update(
                f"staging {loaded.callout}: {done}/{total} objects"))
    else:
        callout_dir = loaded.callout
    check_against(loaded, load_callout(callout_dir))


def watch(args, variables: dict[str, str]) -> int:
    """Build, then rebuild on every save of the spec, saying what changed, until Ctrl-C or ``kill``."""
    from flows.watch import watch as watch_spec

    err = terminal.console()
    try:
        watch_spec(Path(args.spec), lambda: build(Path(args.spec), args.profile, args.out, args.cache, args.verbose,
                                                  args.dask, variables), err.print)
    except KeyboardInterrupt:
        err.print("stopped watching")
    return 0
