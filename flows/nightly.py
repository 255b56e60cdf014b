"""The nightly preview: every spec in ``episode_specs/`` built as a preview, on a cron schedule.

The deployment is declared here, in code: ``serve()`` registers the ``nightly-previews/nightly``
deployment (cron + time zone) with the Prefect server named by ``PREFECT_API_URL`` and runs it in
this process whenever it is due (``remixtv nightly serve``). We chose ``serve()`` over a
``prefect.yaml`` + work pool + worker: the builds need this machine's ffmpeg, fonts and cache,
so a worker would add two moving parts and run the same code on the same machine anyway.

Each run publishes Prefect artifacts: a markdown summary (``nightly-summary``), a table of every
segment (``nightly-segments``) and links to each preview's review page (review/index.html),
episode.mp4, credits.txt and build.json (``nightly-<spec>-episode`` ...). The same summary is written to
``<out>/nightly.md`` and ``<out>/nightly.json`` for readers without the Prefect UI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import State
from prefect.schedules import Cron, Schedule
from prefect.states import Failed

from render.core.cache import write_text_atomic
from render.core.errors import FfmpegError, UserError

from .pipeline import build_flow
from .storage import is_uri

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPECS = REPO / "episode_specs"
DEFAULT_OUT = REPO / "out" / "nightly"
DEFAULT_CRON = "0 3 * * *"
DEFAULT_TZ = "UTC"
FLOW_NAME = "nightly-previews"
DEPLOYMENT_NAME = "nightly"
PROFILE = "preview"
SUMMARY_KEY = "nightly-summary"
SEGMENTS_KEY = "nightly-segments"
WARNINGS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One segment of one built preview, as the segments table shows it."""

    spec: str
    segment: str
    type: str
    start: str
    end: str
    frames: int
    records: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Link:
    """An output of a preview: a file:// URI for local outputs, or the object-store URI."""

    label: str
    uri: str


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """What happened to one spec: the build's figures, or why it failed (one line per problem)."""

    spec: str
    name: str
    ok: bool
    seconds: float
    title: str = ""
    duration: str = ""
    frames: int = 0
    records_used: int = 0
    credited: int = 0
    pieces_rendered: int = 0
    pieces_cached: int = 0
    warnings: tuple[str, ...] = ()
    qc: str | None = None
    loudness: str | None = None
    segments: tuple[SegmentRow, ...] = ()
    links: tuple[Link, ...] = ()
    failure: str = ""  # "spec" (a user mistake), "media" (ffmpeg failed) or "internal" (a bug)
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NightlyReport:
    """One nightly run: every spec's result, in file-name order."""

    specs_dir: str
    out_dir: str
    started: str  # ISO 8601, UTC
    seconds: float
    results: tuple[PreviewResult, ...]

    @property
    def failed(self) -> tuple[PreviewResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def to_json(self) -> dict:
        return {"schema": "remixtv.nightly/1", **asdict(self)}


def find_specs(specs_dir: str | Path) -> list[Path]:
    """Every ``*.yaml`` episode spec directly in ``specs_dir``, sorted by name."""
    folder = Path(specs_dir).expanduser()
    if not folder.is_dir():
        raise UserError(f"{folder}: no such specs folder; pass --specs DIR, a folder of episode spec *.yaml files")
    specs = sorted(p for p in folder.glob("*.yaml") if p.is_file() and not p.name.startswith("."))
    if not specs:
        raise UserError(f"{folder}: no *.yaml episode specs to build; put at least one spec there")
    return specs


def schedule_from(cron: str | None = None, tz: str | None = None) -> Schedule:
    """The nightly cron schedule: arguments first, then REMIXTV_NIGHTLY_CRON / REMIXTV_NIGHTLY_TZ,
    then 03:00 UTC."""
    cron_from = "--cron" if cron else "REMIXTV_NIGHTLY_CRON"
    tz_from = "--timezone" if tz else "REMIXTV_NIGHTLY_TZ"
    cron = (cron or os.environ.get("REMIXTV_NIGHTLY_CRON") or DEFAULT_CRON).strip()
    tz = (tz or os.environ.get("REMIXTV_NIGHTLY_TZ") or DEFAULT_TZ).strip()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"{tz_from}: {tz!r} is not an IANA time zone name; use one such as UTC, "
                        "Europe/London or America/New_York") from None
    try:
        return Cron(cron, timezone=tz)
    except ValueError:
        raise UserError(f"{cron_from}: {cron!r} is not a cron expression; use five fields, "
                        f"minute hour day month weekday, e.g. {DEFAULT_CRON!r} for 03:00 every day") from None


def artifact_slug(name: str) -> str:
    """A spec's file stem as an artifact-key part: lowercase letters, digits and dashes only.

    A hash suffix keeps two stems that fold to the same slug (``My_Show``, ``my-show``) apart."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "spec"
    if slug != name:
        slug += "-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    return slug


def output_links(out_dir: str, name: str, qc: bool = False) -> tuple[Link, ...]:
    """Links to a preview's review page, episode, credits, build report (and QC report) where ``build_flow`` puts them."""
    files = ("review/index.html", "episode.mp4", "credits.txt", "build.json") + (("qc.json",) if qc else ())
    if is_uri(out_dir):
        return tuple(Link(f, f"{out_dir.rstrip('/')}/{name}/{PROFILE}/{f}") for f in files)
    folder = Path(out_dir) / name / PROFILE
    return tuple(Link(f, (folder / f).resolve().as_uri()) for f in files if (folder / f).exists())


def _number(table: dict, *words: str) -> float | None:
    for key, value in table.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and any(w in key.lower() for w in words):
            return float(value)
    return None


def _passed(item: object) -> bool | None:
    if not isinstance(item, dict):
        return item if isinstance(item, bool) else None
    for key in ("passed", "pass", "ok"):
        if isinstance(item.get(key), bool):
            return item[key]
    status = str(item.get("status", "")).lower()
    return True if status in ("pass", "passed", "ok") else False if status in ("fail", "failed") else None


def qc_status(qc: object) -> str | None:
    """One line for the summary from build.json's ``qc`` (absent in older builds): pass, or what failed."""
    if qc is None:
        return None
    if not isinstance(qc, dict):
        return str(qc)
    checks = qc.get("checks")
    if isinstance(checks, dict):
        items = list(checks.items())
    elif isinstance(checks, list):
        items = [(str(c.get("name") or c.get("check") or c.get("id") or i), c) for i, c in enumerate(checks)
                 if isinstance(c, dict)]
    else:
        items = [(k, v) for k, v in qc.items() if isinstance(v, dict)]
    verdicts = {name: v for name, v in ((n, _passed(c)) for n, c in items) if v is not None}
    said = {name: c.get("summary") for name, c in items if isinstance(c, dict) and isinstance(c.get("summary"), str)}
    failed = [f"{name} ({said[name]})" if said.get(name) else name for name, ok in verdicts.items() if not ok]
    overall = _passed(qc)
    if overall is None and verdicts:
        overall = not failed
    if overall is None:
        return "reported (see build.json)"
    if overall:
        return f"pass ({len(verdicts)} checks)" if verdicts else "pass"
    return "FAIL" + (f": {'; '.join(failed)}" if failed else "")


def loudness_line(loudness: object) -> str | None:
    """Integrated loudness and true peak from build.json's ``loudness`` (absent in older builds)."""
    if not isinstance(loudness, dict):
        return None
    integrated = _number(loudness, "integrated", "lufs")
    peak = _number(loudness, "true_peak", "truepeak", "dbtp")
    parts = ([f"{integrated:.1f} LUFS"] if integrated is not None else []) + \
            ([f"true peak {peak:.1f} dBTP"] if peak is not None else [])
    return ", ".join(parts) or "reported (see build.json)"


def result_from_build(spec: Path, build: dict, out_dir: str, seconds: float) -> PreviewResult:
    """A built preview's figures, from the build.json dict ``build_flow`` returns."""
    pieces = build.get("pieces") or {}
    segments = tuple(SegmentRow(spec.name, s["id"], s["type"], s["start"], s["end"],
                                s["end_frame"] - s["start_frame"], tuple(s.get("records") or ()))
                     for s in build.get("segments", ()))
    return PreviewResult(
        spec=str(spec), name=spec.stem, ok=True, seconds=round(seconds, 1), title=build.get("title", ""),
        duration=build.get("duration", ""), frames=int(build.get("frames", 0)),
        records_used=len(build.get("records_used", ())), credited=int(build.get("credited", 0)),
        pieces_rendered=int(pieces.get("rendered", 0)), pieces_cached=int(pieces.get("cached", 0)),
        warnings=tuple(build.get("warnings", ())), qc=qc_status(build.get("qc")),
        loudness=loudness_line(build.get("loudness")), segments=segments,
        links=output_links(out_dir, spec.stem, qc="qc" in build))


def failure_lines(exc: BaseException) -> tuple[str, tuple[str, ...]]:
    """Why a spec failed, as (kind, one line per problem)."""
    if isinstance(exc, UserError):
        return "spec", tuple(exc.problems)
    if isinstance(exc, FfmpegError):
        said = [line.strip() for line in exc.stderr_tail.splitlines() if line.strip()]
        return "media", (f"{Path(exc.argv[0]).name} failed ({exc.reason})", *said[-3:])
    return "internal", (f"{type(exc).__name__}: {exc}",)


def build_one(spec: Path, out_dir: str, cache_root: str | None) -> PreviewResult:
    """Build one spec's preview as a subflow; any failure becomes a failed result, never a stop."""
    started = time.monotonic()
    try:
        build = build_flow.with_options(flow_run_name=f"preview-{spec.stem}")(str(spec), PROFILE, out_dir, cache_root)
    except Exception as exc:  # noqa: BLE001 - one broken spec (or a bug it hits) must not stop the others
        # the run still ends Failed once every spec has run
        kind, errors = failure_lines(exc)
        return PreviewResult(spec=str(spec), name=spec.stem, ok=False, seconds=round(time.monotonic() - started, 1),
                             failure=kind, errors=errors)
    return result_from_build(spec, build, out_dir, time.monotonic() - started)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|])")


def _md(text: str) -> str:
    """User text (titles, warnings) as literal markdown."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _code(lines: tuple[str, ...]) -> list[str]:
    return ["```text", *(line.replace("```", "'''") for line in lines), "```"]


def summary_markdown(report: NightlyReport) -> str:
    """The run's markdown summary: per spec its figures, warnings, QC and outputs, or its errors."""
    ok = len(report.results) - len(report.failed)
    qc_failed = sum(1 for r in report.results if r.qc and r.qc.startswith("FAIL"))
    built = f"{ok} built" + (f" ({qc_failed} failing QC)" if qc_failed else "")
    lines = [f"# Nightly previews, {report.started[:16].replace('T', ' ')} UTC", "",
             f"**{len(report.results)} specs: {built}, {len(report.failed)} failed** in {report.seconds:.0f} s  ",
             f"specs `{report.specs_dir}` → outputs `{report.out_dir}`", ""]
    for r in report.results:
        if not r.ok:
            what = {"spec": "spec or call-out problem", "media": "a media tool failed",
                    "internal": "internal error (see the flow run's log)"}[r.failure]
            lines += [f"## ❌ {_md(r.name)}.yaml: failed ({what}) after {r.seconds:.0f} s", "", *_code(r.errors), ""]
            continue
        lines += [f"## ✅ {_md(r.title)} ({_md(r.name)}.yaml)", "", "| | |", "|---|---|",
                  f"| runtime | {r.duration} ({r.frames} frames) |",
                  f"| records used | {r.records_used} |",
                  f"| people credited | {r.credited} |",
                  f"| pieces | {r.pieces_rendered} rendered, {r.pieces_cached} cached |",
                  f"| build time | {r.seconds:.0f} s |",
                  f"| warnings | {len(r.warnings)} |"]
        if r.qc is not None:
            lines.append(f"| QC | {_md(r.qc)} |")
        if r.loudness is not None:
            lines.append(f"| loudness | {_md(r.loudness)} |")
        lines.append("")
        if r.warnings:
            lines += [f"- {_md(w)}" for w in r.warnings[:WARNINGS_SHOWN]]
            if len(r.warnings) > WARNINGS_SHOWN:
                lines.append(f"- … and {len(r.warnings) - WARNINGS_SHOWN} more in build.json")
            lines.append("")
        if r.links:
            lines += ["Outputs: " + " · ".join(f"[{link.label}]({link.uri})" for link in r.links), ""]
    return "\n".join(lines)


def segment_table(report: NightlyReport) -> list[dict]:
    """Rows of the segments table artifact: every segment of every built preview."""
    return [{"spec": s.spec, "segment": s.segment, "type": s.type, "start": s.start, "end": s.end,
             "frames": s.frames, "records": ", ".join(s.records)}
            for r in report.results for s in r.segments]


def publish(report: NightlyReport) -> None:
    """The run's artifacts on the Prefect server, and nightly.md/nightly.json beside the outputs."""
    markdown = summary_markdown(report)
    verdict = f"{len(report.results) - len(report.failed)} of {len(report.results)} previews built"
    create_markdown_artifact(markdown, key=SUMMARY_KEY, description=verdict)
    create_table_artifact(segment_table(report), key=SEGMENTS_KEY, description="every segment of every preview")
    for r in report.results:
        slug = artifact_slug(r.name)
        for link in r.links:
            create_link_artifact(link.uri, link_text=f"{r.name}: {link.label}",
                                 key=f"nightly-{slug}-{Path(link.label).stem.replace('.', '-')}",
                                 description=f"{r.title} ({r.name}.yaml), last nightly preview")
    if not is_uri(report.out_dir):
        write_text_atomic(Path(report.out_dir) / "nightly.md", markdown)
        write_text_atomic(Path(report.out_dir) / "nightly.json",
                          json.dumps(report.to_json(), ensure_ascii=False, indent=2))


@flow(name=FLOW_NAME, description="Build the preview of every spec in a folder; publish a summary, "
      "a segments table and links to the outputs.")
def nightly_previews(specs_dir: str = str(DEFAULT_SPECS), out_dir: str = str(DEFAULT_OUT),
                     cache_root: str | None = None) -> NightlyReport | State:
    """Build every spec's preview, one after another, then publish the artifacts.

    Ends Failed (with the report as its data) when any spec failed, but only after all ran.
    """
    # One at a time: each build already uses both cores, and two builds would fight over them.
    logger = get_run_logger()
    began, started = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
    out = out_dir if is_uri(out_dir) else str(Path(out_dir).expanduser().resolve())
    try:
        specs = find_specs(specs_dir)
    except UserError as exc:
        create_markdown_artifact("# Nightly previews: nothing built\n\n" + "\n".join(_code(tuple(exc.problems))),
                                 key=SUMMARY_KEY, description="nothing built")
        raise
    results = []
    for spec in specs:
        result = build_one(spec.resolve(), out, cache_root)
        if result.ok:
            logger.info("%s: built %s (%s) in %.0f s", spec.name, result.title, result.duration, result.seconds)
        else:
            logger.error("%s: failed: %s", spec.name, " | ".join(result.errors))
        results.append(result)
    report = NightlyReport(str(Path(specs_dir).expanduser().resolve()), out, started,
                           round(time.monotonic() - began, 1), tuple(results))
    publish(report)
    if report.failed:
        names = ", ".join(f"{r.name}.yaml" for r in report.failed)
        return Failed(message=f"{len(report.failed)} of {len(report.results)} previews failed: {names}", data=report)
    return report


def serve(specs_dir: str | Path = DEFAULT_SPECS, out_dir: str | Path = DEFAULT_OUT, cache_root: str | None = None,
          schedule: Schedule | None = None) -> None:
    """Register the nightly deployment with the Prefect server and run it whenever it is due (blocks)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL
    from prefect.types.entrypoint import EntrypointType

    api = PREFECT_API_URL.value()
    if not api:
        raise UserError("PREFECT_API_URL is not set: the nightly schedule needs a Prefect server; start one "
                        "(`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api")
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise UserError(f"PREFECT_API_URL={api}: no Prefect server answers there ({problem}); "
                        "start one with `prefect server start` or fix the URL")
    specs = Path(specs_dir).expanduser().resolve()
    find_specs(specs)
    out = str(out_dir) if is_uri(str(out_dir)) else str(Path(out_dir).expanduser().resolve())
    nightly_previews.serve(
        name=DEPLOYMENT_NAME, schedule=schedule or schedule_from(),
        parameters={"specs_dir": str(specs), "out_dir": out, "cache_root": cache_root},
        tags=["remixtv", "nightly"], limit=1,  # a manual run while the nightly one is going waits its turn
        # by module, so the runner's flow processes import flows.nightly (its relative imports work)
        entrypoint_type=EntrypointType.MODULE_PATH,
    )

