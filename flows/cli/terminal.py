"""What the commands show on a terminal: progress bars, tables, QC verdicts, warnings and errors.

Tables go to stdout (they are the answer); progress, warnings and errors to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

#: Warnings printed after a build; the rest are in build.json.
WARNINGS_SHOWN = 12


def console() -> Console:
    """The stderr console: progress, warnings, what was written."""
    return Console(stderr=True)


def fail(problems: Iterable[str], code: int = 1) -> int:
    """Print each problem on a line of its own (plain text, to stderr); return ``code``."""
    for line in problems:
        print(line, file=sys.stderr)
    return code


class Bars:
    """A progress sink (``flows.progress``) drawing one rich bar per stage; enter ``bars.progress`` to draw."""

    def __init__(self, out: Console):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:>8}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                                 TimeElapsedColumn(), console=out, transient=False)
        self.tasks: dict[str, int] = {}
        self.done: dict[str, dict[str, float]] = {}

    def start(self, stage, total, label):
        self.tasks[stage] = self.progress.add_task(label, total=max(total, 1e-9))
        self.done[stage] = {}

    def update(self, stage, key, done):
        if stage in self.tasks:
            self.done[stage][key] = done
            self.progress.update(self.tasks[stage], completed=sum(self.done[stage].values()))

    def finish(self, stage):
        if stage in self.tasks:
            t = self.progress.tasks[self.tasks[stage]]
            self.progress.update(self.tasks[stage], completed=t.total)


def bars(out: Console) -> Bars:
    """Progress bars on ``out``, installed as the flows' progress sink."""
    from flows import progress

    sink = Bars(out)
    progress.install(sink)
    return sink


def warnings(out: Console, items: Iterable[str], shown: int | None = None, rest: str = "") -> None:
    """One ``warning:`` line each (the first ``shown``; then how many more, and where they are)."""
    items = list(items)
    for w in items[:shown]:
        out.print(f"[yellow]warning[/]: {w}")
    if shown is not None and len(items) > shown:
        out.print(f"... and {len(items) - shown} more warnings{rest}")


def build_summary(out: Console, result: dict, seconds: float) -> None:
    """A build's one-line summary, its warnings and its QC verdicts."""
    out.print(f"[bold]{result['title']}[/]: {result['duration']} ({result['frames']} frames), "
              f"{len(result['segments'])} segments, {len(result['records_used'])} records, "
              f"{result['credited']} people credited; pieces rendered {result['pieces']['rendered']}, "
              f"cached {result['pieces']['cached']}; {seconds:.0f} s")
    warnings(out, result["warnings"], WARNINGS_SHOWN, " in build.json")
    qc_verdicts(out, result.get("qc"), result.get("loudness"))


def qc_verdicts(out: Console, qc: dict | None, loudness: dict | None) -> None:
    """The QC verdicts, one line per check (the ranges and figures are in qc.json)."""
    if not qc:
        return
    verdict = "[green]pass[/]" if qc["passed"] else "[red]FAIL[/]"
    acts = "".join(f", act {a['act']} {a['gain_db']:+.1f} dB" for a in (loudness or {}).get("acts") or ())
    how = f" (levelled {loudness['mode']}, {loudness['gain_db']:+.1f} dB{acts})" if loudness else ""
    out.print(f"[bold]QC[/] {verdict}{how}")
    for name, check in qc["checks"].items():
        mark = "[green]ok[/]  " if check["passed"] else "[red]FAIL[/]"
        out.print(f"  {mark} {name:<9} {check['summary']}")


def table(title: str, columns: Iterable[tuple[str, str]], rows: Iterable[Iterable[str]]) -> None:
    """A table on stdout: ``columns`` as (name, justify)."""
    shown = Table(title=title)
    for name, justify in columns:
        shown.add_column(name, justify=justify, overflow="fold")
    for row in rows:
        shown.add_row(*row)
    Console().print(shown)


def intake_table(callout, report, clips: dict[str, str]) -> None:
    """Every record of the call-out: accepted (as what, and its conformed clip) or quarantined (why)."""
    why = {q.record.record_id: q.reason for q in report.quarantined}
    rows = []
    for rec in callout.records:
        src = report.sources.get(rec.record_id)
        if src is not None:
            took = f"[green]accepted[/] as {src.visual}" + (f" -> {clips[rec.record_id]}" if rec.record_id in clips else "")
        else:
            took = f"[red]quarantined[/]: {why[rec.record_id]}" if rec.record_id in why else "?"
        rows.append((rec.record_id, rec.kind, rec.file or "(text)", took))
    table(f"{callout.id}: {len(report.sources)} accepted, {len(report.quarantined)} quarantined",
          [(c, "left") for c in ("record", "kind", "file", "result")], rows)


def analysis_table(callout_id: str, doc: dict) -> None:
    """analysis.json as a table: a record per row, its loudness, tempo, shots and flags."""
    rows = []
    for rec in doc["records"]:
        loud, audio, pictures = rec["loudness"] or {}, rec["audio"] or {}, rec["pictures"] or {}
        lufs = loud.get("integrated_lufs")
        rows.append((rec["record"], rec["kind"], f"{rec['duration_s']:.1f} s" if rec["duration_s"] else "",
                     "silent" if lufs is not None and lufs <= -70 else (f"{lufs:.1f}" if lufs is not None else ""),
                     f"{loud['true_peak_dbtp']:.1f}" if loud.get("true_peak_dbtp") is not None else "",
                     f"{audio['tempo_bpm']:.0f} BPM" if audio.get("tempo_bpm") else "",
                     str(len(pictures["shots"])) if pictures.get("shots") else "", flags(rec)))
    table(f"{callout_id}: {len(doc['records'])} records analysed, {len(doc['quarantined'])} quarantined",
          (("record", "left"), ("kind", "left"), ("duration", "right"), ("LUFS", "right"), ("peak dBTP", "right"),
           ("tempo", "right"), ("shots", "right"), ("flags", "left")), rows)


def flags(rec: dict) -> str:
    """The one-line warnings an editor wants about a record (from its analysis.json entry)."""
    out = []
    audio, pictures = rec.get("audio") or {}, rec.get("pictures") or {}
    if pictures.get("flashes"):
        out.append(f"[red]flashing[/] at {pictures['flashes'][0]['start_tc']}")
    if audio.get("clipped_samples"):
        out.append(f"clipping ({len(audio['clipping'])}x)")
    if pictures.get("black"):
        out.append(f"black {len(pictures['black'])}x")
    if pictures.get("frozen"):
        out.append(f"frozen {len(pictures['frozen'])}x")
    if audio.get("dead_air"):
        out.append(f"dead air {sum(d['end_s'] - d['start_s'] for d in audio['dead_air']):.1f} s")
    if audio.get("content") and audio["content"] != "silence":
        out.append(audio["content"])
    elif audio.get("content") == "silence":
        out.append("silent")
    return ", ".join(out)
