"""``remixtv export``: the cut handed to an NLE (OpenTimelineIO, FCP7 XML, CMX3600 EDL, MLT XML).

It plans exactly as ``build`` does, from the same cache (``pipeline.plan_episode``), writes the media
the clips play into ``OUT/media/`` (``render.deliver.exports.media``) and the timeline as
``OUT/<spec stem>.<ext>``. ``add_arguments``/``run`` are what the command line calls.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from render.core.errors import UserError
from render.deliver.exports import FORMATS, check_format
from render.deliver.exports.media import MEDIA_MODES


@functools.cache
def export_flow():
    """The export flow (made on first use: the command line imports this module before Prefect is needed)."""
    from prefect import flow

    from render.core.cache import Cache
    from render.core.house import profile as house_profile
    from render.deliver import exports
    from render.deliver.exports.media import write_media
    from render.deliver.exports.timeline import to_otio
    from render.edit.spec import load_spec

    from . import runners
    from .pipeline import WORKERS, plan_episode

    @flow(name="export-episode", task_runner=runners.ThreadPool(max_workers=WORKERS))
    def export_episode(spec_path: str, fmt: str, out_dir: str, media: str = "conformed", profile: str = "preview",
                       cache_root: str | None = None, variables: dict[str, str] | None = None,
                       start_frame: int = 0) -> str:
        """Plan ``spec_path`` as a build does, write the clips' media and the ``fmt`` export; returns its path."""
        spec = load_spec(spec_path, variables)
        house = house_profile(profile)
        cache = Cache(Path(cache_root) if cache_root else None)
        report, timeline, _ = plan_episode(spec, house, str(cache.root))
        folder = Path(out_dir)
        files = write_media(timeline, report.sources, report.callout, house, spec.fit, cache, folder / "media",
                            media)
        model = to_otio(timeline, files, report.callout, start_frame, Path(spec_path).stem)
        out = folder / f"{Path(spec_path).stem}.{exports.FORMATS[fmt]}"
        return str(exports.write(model, fmt, out, house))

    return export_episode


def add_arguments(parser) -> None:
    """The ``export`` command's arguments."""
    parser.add_argument("spec", help="episode spec YAML")
    parser.add_argument("--format", required=True, metavar="FORMAT",
                        help=f"one of {', '.join(FORMATS)}")
    parser.add_argument("--media", choices=MEDIA_MODES, default="conformed",
                        help="conformed: the clips as the render used them, at the house format, in OUT/media "
                             "(default); original: the uploads themselves")
    parser.add_argument("--out", default=None, help="folder for <spec name>.<ext> and media/ "
                        "(default out/<spec name>/export)")
    parser.add_argument("--profile", choices=("preview", "master"), default="preview")
    parser.add_argument("--start-timecode", default="00:00:00;00", metavar="HH:MM:SS;FF",
                        help="the programme's first timecode (01:00:00;00 after a delivery leader)")
    parser.add_argument("--cache", default=None, help="cache folder (default $REMIXTV_CACHE or ~/.cache/remixtv)")
    parser.add_argument("--var", action="append", metavar="NAME=VALUE", help="set a spec variable; repeatable")


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
    """``remixtv export``: check everything a user can get wrong before Prefect starts, then export."""
    from render.callout.folder import load_callout
    from render.edit.spec import check_against, load_spec

    from . import runners
    from .cli import _variables
    from .storage import local_callout

    check_format(args.format)
    variables = _variables(args.var)
    spec = load_spec(args.spec, variables)  # the same file:line errors as validate
    check_against(spec, load_callout(local_callout(spec.callout)))  # an s3:// call-out is staged first
    first = start_frame(args.start_timecode)
    out = _writable(Path(args.out or Path("out") / Path(args.spec).stem / "export"))
    runners.local_api()
    with runners.heartbeats_off(when=not os.environ.get("PREFECT_API_URL")):
        path = export_flow()(str(args.spec), args.format, str(out), args.media, args.profile, args.cache, variables,
                           first)
    print(path)
    return 0
