"""``remixtv demo``: generate the demo call-out and build its preview."""

from __future__ import annotations

import time
from pathlib import Path

from . import terminal
from .build import build

DEMO_SPEC = Path(__file__).resolve().parents[2] / "episode_specs" / "demo.yaml"


def run(args) -> int:
    from render.callout.demo import generate_demo_callout
    from render.edit.spec import load_spec

    err = terminal.console()
    spec = load_spec(DEMO_SPEC)
    started = time.monotonic()
    with err.status("generating the demo call-out") as status:
        generate_demo_callout(spec.callout, progress=lambda d, t: status.update(f"generating the demo call-out {d}/{t}"))
    err.print(f"demo call-out ready at {spec.callout} ({time.monotonic() - started:.0f} s)")
    build(DEMO_SPEC, args.profile, args.out, args.cache, args.verbose, args.dask)
    return 0
