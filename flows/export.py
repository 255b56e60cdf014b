"""The export flow: the cut handed to an NLE (OpenTimelineIO, FCP7 XML, CMX3600 EDL, MLT XML).

It plans exactly as a build does, from the same cache (``pipeline.plan_episode``), writes the media
the clips play into ``OUT/media/`` (``render.deliver.exports.media``) and the timeline as
``OUT/<spec stem>.<ext>``. ``remixtv export`` (``flows.cli.export``) runs it.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from render.core.cache import Cache
from render.core.house import profile as house_profile
from render.deliver import exports
from render.edit.spec import load_spec

from . import runners
from .pipeline import WORKERS, plan_episode


@flow(name="export-episode", task_runner=runners.ThreadPool(max_workers=WORKERS))
def export_flow(spec_path: str, fmt: str, out_dir: str, media: str = "conformed", profile: str = "preview",
                cache_root: str | None = None, variables: dict[str, str] | None = None, start_frame: int = 0) -> str:
    """Plan ``spec_path`` as a build does, write the clips' media and the ``fmt`` export; returns its path."""
    spec = load_spec(spec_path, variables)
    house = house_profile(profile)
    cache = Cache(Path(cache_root) if cache_root else None)
    report, _, timeline, _ = plan_episode(spec, str(cache.root))
    written = exports.export(timeline, report.sources, report.callout, house, spec.fit, cache, Path(out_dir),
                             Path(spec_path).stem, [fmt], media, start_frame)
    return str(written[0])
