"""The payout ledger: a pool of money split among everyone whose work is in the cut.

How the pool is split (all arithmetic in exact Fractions; only the final cents are rounded):

1. Weight. Each record in the cut weighs its **screen seconds plus its sound seconds**: every
   shot counts its frames as screen time, and shots that play the record's sound ("video",
   "audio") count them again as sound time. So ten seconds of a song over its waveform weigh
   as much as ten seconds of video with its sound, and twice a silent photo or text card.
   (The Timeline does not know whether a video upload actually has a sound track; a silent
   video counts as "video".) A record's own amount is ``pool * weight / total weight``.
2. Remix lineage. A record that remixes others passes ``upstream_share`` of everything it
   holds (its own amount plus what records built on it passed to it) to the records it
   remixes, split equally among them, and keeps the rest; its sources do the same, one level
   at a time. Self-references, ids not in the call-out and the edge that closes a remix cycle
   (found by a depth-first walk from the cut, in timeline and listed order) carry nothing, with
   a warning, so the flow is a finite DAG and every cent stays with someone.
3. People. What a record keeps is split equally among its contributors (usernames matched
   case-insensitively, each once per record); a person on several records gets the sum.
4. Cents. Exact amounts are floored and the remaining cents go to the largest remainders,
   ties broken by username (casefolded), so the cents always sum to the pool exactly and
   nobody is more than one cent from their exact share.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from render.callout import remix
from render.callout.folder import CallOut
from render.core.cache import write_text_atomic
from render.core.errors import UserError
from render.edit.timeline import Timeline

SCHEMA = "remixtv.ledger/1"
CSV_COLUMNS = ("username", "credit_name", "country", "cents", "exact_cents", "records", "paid_for",
               "screen_seconds", "sound_seconds")


@dataclass(frozen=True, slots=True)
class RecordFlow:
    """One record's part of the split: its time in the cut and every amount in and out (in cents)."""

    record_id: str
    screen_s: Fraction  # 0 for a record that is only upstream of the cut
    sound_s: Fraction
    own: Fraction  # from its own weight
    received: tuple[tuple[str, Fraction], ...]  # (record built on it, amount passed up)
    passed: tuple[tuple[str, Fraction], ...]  # (record it remixes, amount passed up)
    kept: Fraction  # own + received - passed: what its contributors share
    contributors: tuple[str, ...]  # usernames as first written, one per person


@dataclass(frozen=True, slots=True)
class Share:
    """Part of a payee's exact amount: their equal split of what ``record_id`` kept, and the
    records in the cut whose time it was earned by (``record_id`` itself, or records remixing it)."""

    record_id: str
    amount: Fraction
    paid_for: tuple[tuple[str, Fraction], ...]  # (record in the cut, part of amount)


@dataclass(frozen=True, slots=True)
class Payee:
    username: str
    credit_name: str
    country: str
    cents: int
    exact: Fraction  # exact cents before rounding
    shares: tuple[Share, ...]


@dataclass(frozen=True, slots=True)
class Ledger:
    title: str
    pool_cents: int
    upstream_share: Fraction
    payees: tuple[Payee, ...]  # in descending cents, then by username
    records: tuple[RecordFlow, ...]  # cut records in timeline order, then their sources as reached
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        def q(x: Fraction) -> str:
            return str(x)  # exact, as "n/d"

        return {
            "schema": SCHEMA, "title": self.title, "pool_cents": self.pool_cents,
            "upstream_share": q(self.upstream_share), "paid_cents": sum(p.cents for p in self.payees),
            "weights": "screen seconds + sound seconds (video and audio shots) per record",
            "payees": [{"username": p.username, "credit_name": p.credit_name, "country": p.country,
                        "cents": p.cents, "exact_cents": q(p.exact),
                        "shares": [{"record": s.record_id, "exact_cents": q(s.amount),
                                    "paid_for": [{"record": k, "exact_cents": q(v)} for k, v in s.paid_for]}
                                   for s in p.shares]}
                       for p in self.payees],
            "records": [{"record": r.record_id, "screen_s": q(r.screen_s), "sound_s": q(r.sound_s),
                         "own_cents": q(r.own), "received": [{"from": k, "exact_cents": q(v)} for k, v in r.received],
                         "passed": [{"to": k, "exact_cents": q(v)} for k, v in r.passed],
                         "kept_cents": q(r.kept), "contributors": list(r.contributors)} for r in self.records],
            "warnings": list(self.warnings),
        }

    def to_csv(self) -> str:
        """One row per payee: their records, the records in the cut their money was earned by
        (``paid_for``, ``;``-separated) and those records' seconds on screen and in the sound."""
        flows = {r.record_id: r for r in self.records}
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(CSV_COLUMNS)
        for p in self.payees:
            paid_for = list(dict.fromkeys(k for s in p.shares for k, _ in s.paid_for))
            w.writerow([p.username, p.credit_name, p.country, p.cents, f"{float(p.exact):.4f}",
                        ";".join(s.record_id for s in p.shares), ";".join(paid_for),
                        f"{float(sum(flows[r].screen_s for r in paid_for)):.3f}",
                        f"{float(sum(flows[r].sound_s for r in paid_for)):.3f}"])
        return out.getvalue()


def largest_remainder(exact: dict[str, Fraction], total: int) -> dict[str, int]:
    """Integers that sum to ``total``, each the floor or ceiling of its exact value.

    The exact values must sum to ``total``. Leftover units go to the largest fractional parts;
    ties go to the smaller key, so the result never depends on dict order.
    """
    floors = {k: math.floor(v) for k, v in exact.items()}
    left = total - sum(floors.values())
    assert 0 <= left <= len(exact), "exact amounts must sum to the total"
    for k in sorted(exact, key=lambda k: (-(exact[k] - floors[k]), k))[:left]:
        floors[k] += 1
    return floors


def _time_in_cut(timeline: Timeline) -> dict[str, tuple[Fraction, Fraction]]:
    """record -> (screen seconds, sound seconds), from the cut (a bed's record earns sound time)."""
    screen, sound = timeline.record_frames(), timeline.sound_frames()
    return {r: (Fraction(screen.get(r, 0)) / timeline.rate, Fraction(sound.get(r, 0)) / timeline.rate)
            for r in dict.fromkeys([*screen, *sound])}


def compute(timeline: Timeline, callout: CallOut, pool_cents: int,
            upstream_share: Fraction = Fraction(1, 2)) -> Ledger:
    """Split ``pool_cents`` among the contributors of the cut and its remix lineage (see module doc)."""
    if isinstance(pool_cents, bool) or not isinstance(pool_cents, int) or pool_cents < 0:
        raise UserError(f"pool: {pool_cents!r} must be a whole, non-negative number of cents")
    upstream_share = Fraction(upstream_share)
    if not 0 <= upstream_share <= 1:
        raise UserError(f"upstream_share: {upstream_share} must be between 0 and 1")
    warnings: list[str] = []
    times = _paid_times(timeline, callout, warnings)
    total_weight = sum(sum(t) for t in times.values())
    if total_weight == 0 and pool_cents:
        raise UserError("the cut uses no call-out record for any time, so there is nobody to pay the pool to")
    parents, order = _remix_dag(times, callout, warnings)
    own = {r: (pool_cents * sum(times[r]) / total_weight if r in times else Fraction(0)) for r in order}
    passing = _pass_up(order, parents, times, own, upstream_share)
    flows, payees = _people(order, times, own, passing, callout, pool_cents)
    return Ledger(timeline.title, pool_cents, upstream_share, payees, flows, tuple(dict.fromkeys(warnings)))


def _paid_times(timeline: Timeline, callout: CallOut, warnings: list[str]) -> dict[str, tuple[Fraction, Fraction]]:
    """(screen, sound) seconds of every call-out record the cut uses for some time, in timeline order."""
    times = {}
    for rid, t in _time_in_cut(timeline).items():
        if callout.record(rid) is None:
            warnings.append(f"{rid} is in the cut but not in the call-out; its time is not paid")
        elif sum(t) > 0:
            times[rid] = t
    return times


def _remix_dag(times: dict, callout: CallOut, warnings: list[str]) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The remix DAG reachable from the cut: each record's parents (existing ones, minus self-references
    and the edges that close a cycle), and every reachable record, the cut's first."""
    found = remix.cycles(times, callout)
    closing = {(c[-2], c[-1]) for c in found}
    for c in found:
        warnings.append(f"remix cycle {' -> '.join(c)}: {c[-2]} passes nothing to {c[-1]}")
    parents: dict[str, tuple[str, ...]] = {}
    order: list[str] = []
    stack = list(reversed(times))
    while stack:  # depth first, in timeline and listed order
        rid = stack.pop()
        if rid in parents:
            continue
        for p in remix.broken_edges(rid, callout):
            if p == rid:
                warnings.append(f"{rid} lists itself in remix_of; it passes nothing to itself")
            else:
                warnings.append(f"{rid} remixes {p}, which is not in the call-out; that share stays with {rid}")
        ok = [p for p in remix.parents(rid, callout) if (rid, p) not in closing]
        parents[rid] = tuple(ok)
        order.append(rid)
        stack += reversed(ok)
    return parents, list(times) + [r for r in order if r not in times]


@dataclass(frozen=True, slots=True)
class _Passing:
    """Amounts after passing up the DAG: by record, what it received, passed and kept, and what it
    kept by the record in the cut whose time earned it (``origins``, for tracing)."""

    received: dict[str, list[tuple[str, Fraction]]]
    passed: dict[str, list[tuple[str, Fraction]]]
    kept: dict[str, Fraction]
    origins: dict[str, dict[str, Fraction]]


def _pass_up(order: list[str], parents: dict[str, tuple[str, ...]], times: dict, own: dict[str, Fraction],
             upstream_share: Fraction) -> _Passing:
    """Pass amounts up in topological order: a record is settled once every record built on it is."""
    children_left = {r: 0 for r in order}
    for r in order:
        for p in parents[r]:
            children_left[p] += 1
    held = dict(own)
    origins: dict[str, dict[str, Fraction]] = {r: ({r: held[r]} if r in times else {}) for r in order}
    received: dict[str, list[tuple[str, Fraction]]] = defaultdict(list)
    passed: dict[str, list[tuple[str, Fraction]]] = defaultdict(list)
    kept: dict[str, Fraction] = {}
    ready = [r for r in reversed(order) if children_left[r] == 0]
    while ready:
        r = ready.pop()
        up = parents[r]
        each = held[r] * upstream_share / len(up) if up else Fraction(0)
        for p in up:
            held[p] += each
            for o, amount in origins[r].items():
                origins[p][o] = origins[p].get(o, Fraction(0)) + amount * upstream_share / len(up)
            received[p].append((r, each))
            passed[r].append((p, each))
            children_left[p] -= 1
            if children_left[p] == 0:
                ready.append(p)
        kept[r] = held[r] - each * len(up)
        if up:
            origins[r] = {o: amount * (1 - upstream_share) for o, amount in origins[r].items()}
    assert len(kept) == len(order), "the remix graph left after removing cycle edges must be acyclic"
    return _Passing(received, passed, kept, origins)


def _people(order: list[str], times: dict, own: dict[str, Fraction], passing: _Passing, callout: CallOut,
            pool_cents: int) -> tuple[tuple[RecordFlow, ...], tuple[Payee, ...]]:
    """Each record's kept amount split equally among its contributors, and the cents they are paid."""
    exact: dict[str, Fraction] = defaultdict(Fraction)
    shares: dict[str, list[Share]] = defaultdict(list)
    written: dict[str, str] = {}  # casefolded -> username as first written
    flows = []
    for r in order:
        first: dict[str, str] = {}
        for c in callout.record(r).credits:
            first.setdefault(c.username.casefold(), c.username)
            written.setdefault(c.username.casefold(), c.username)
        who = list(first)
        kept = passing.kept[r]
        for key in who:
            exact[key] += kept / len(who)
            shares[key].append(Share(r, kept / len(who), tuple((o, amount / len(who))
                                                                for o, amount in passing.origins[r].items() if amount)))
        screen, sound = times.get(r, (Fraction(0), Fraction(0)))
        flows.append(RecordFlow(r, screen, sound, own[r], tuple(passing.received[r]), tuple(passing.passed[r]), kept,
                                tuple(first[k] for k in who)))
    cents = largest_remainder(dict(exact), pool_cents)
    payees = []
    for key in sorted(exact, key=lambda k: (-cents[k], k)):
        c = callout.contributor(written[key])
        payees.append(Payee(c.username, c.credit_name, c.country, cents[key], exact[key], tuple(shares[key])))
    return tuple(flows), tuple(payees)


def write(ledger: Ledger, folder: Path) -> None:
    """``ledger.csv`` and ``ledger.json``, each written atomically."""
    write_text_atomic(Path(folder) / "ledger.csv", ledger.to_csv())
    write_text_atomic(Path(folder) / "ledger.json", json.dumps(ledger.to_json(), ensure_ascii=False, indent=2))
