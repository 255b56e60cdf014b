"""The payout ledger splits the pool exactly, by time in the cut, and up the remix lineage."""

import csv
import json
import random
from collections import defaultdict
from fractions import Fraction

import pytest

from render.callout.folder import load_callout
from render.core.errors import UserError
from render.deliver import credits as credits_mod
from render.deliver.ledger import compute, largest_remainder, write
from render.edit.timeline import Segment, Shot, Timeline
from tests.support.callouts import write_callout
from tests.support.credits import RATE, random_callout, timeline


def cut(*shots):
    shots = tuple(Shot(kind, frames, rid) for kind, frames, rid in shots)
    return Timeline("T", RATE, (Segment("s", "montage", 0, sum(s.frames for s in shots), shots),))


def cents(ledger):
    return {p.username: p.cents for p in ledger.payees}


def check_traceable(ledger):
    """Every amount adds up: records' own amounts are the pool, flows balance, payees sum their shares."""
    assert sum(p.cents for p in ledger.payees) == ledger.pool_cents
    assert sum(r.own for r in ledger.records) == ledger.pool_cents
    assert sum(r.kept for r in ledger.records) == ledger.pool_cents
    assert sum(p.exact for p in ledger.payees) == ledger.pool_cents
    for r in ledger.records:
        assert r.own + sum(a for _, a in r.received) - sum(a for _, a in r.passed) == r.kept
        assert r.kept >= 0
    for p in ledger.payees:
        assert sum(s.amount for s in p.shares) == p.exact
        assert all(sum(a for _, a in s.paid_for) == s.amount for s in p.shares)
        assert abs(p.cents - p.exact) < 1 and p.cents >= 0


def test_a_hand_worked_split(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "ana;Bo:director", "remix_of": "C"},
        {"record_id": "B", "file": "", "kind": "text", "text": "b", "contributors": "ANA"},
        {"record_id": "C", "file": "", "kind": "text", "text": "c", "contributors": "cy", "remix_of": "D"},
        {"record_id": "D", "file": "", "kind": "text", "text": "d", "contributors": "dee"},
    ], [("ana", "Ana", "GB"), ("bo", "Bo", ""), ("cy", "Cy", ""), ("dee", "Dee", "")]))
    # A: 300 frames of video = screen + sound, weight 2; B: 300 frames of a still, weight 1
    ledger = compute(cut(("video", 300, "A"), ("image", 300, "B")), c, 3000)
    # A owns 2000, passes half (1000) to C and keeps 1000 for ana and bo; B's 1000 is ana's;
    # C passes half of its 1000 on to D
    assert cents(ledger) == {"ana": 1500, "bo": 500, "cy": 500, "dee": 500}
    flows = {r.record_id: r for r in ledger.records}
    assert flows["A"].screen_s == flows["A"].sound_s == Fraction(300) / RATE
    assert flows["B"].sound_s == 0
    assert flows["C"].received == (("A", 1000),) and flows["C"].passed == (("D", 500),)
    dee = next(p for p in ledger.payees if p.username == "dee")
    assert dee.shares[0].record_id == "D" and dee.shares[0].paid_for == (("A", 500),)
    assert [p.username for p in ledger.payees] == ["ana", "bo", "cy", "dee"]
    check_traceable(ledger)


def test_audio_shots_count_their_sound_and_text_only_its_screen_time(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "S", "file": "", "kind": "text", "text": "s", "contributors": "singer"},
        {"record_id": "P", "file": "", "kind": "text", "text": "p", "contributors": "poet"},
    ], []))
    ledger = compute(cut(("audio", 100, "S"), ("text", 200, "P")), c, 1000, upstream_share=Fraction(0))
    assert cents(ledger) == {"singer": 500, "poet": 500}


def test_largest_remainder_ties_go_to_the_smaller_name_and_sum_exactly():
    third = Fraction(100, 3)
    assert largest_remainder({"cy": third, "ana": third, "bo": third}, 100) == {"ana": 34, "bo": 33, "cy": 33}
    assert largest_remainder({"x": Fraction(5, 2), "y": Fraction(5, 2)}, 5) == {"x": 3, "y": 2}
    assert largest_remainder({}, 0) == {}


def test_cycles_missing_ids_and_self_references_still_sum_exactly(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "ana", "remix_of": "B;A;ZZ"},
        {"record_id": "B", "file": "", "kind": "text", "text": "b", "contributors": "bo", "remix_of": "C"},
        {"record_id": "C", "file": "", "kind": "text", "text": "c", "contributors": "cy", "remix_of": "A"},
    ], []))
    ledger = compute(cut(("image", 90, "A")), c, 1001)
    check_traceable(ledger)
    # A passes half to its only real parent, B; B half of that to C; C's edge back to A closes the cycle
    assert cents(ledger) == {"ana": 501, "bo": 250, "cy": 250}
    assert any("cycle A -> B -> C -> A" in w for w in ledger.warnings)
    assert any("ZZ" in w for w in ledger.warnings) and any("A lists itself" in w for w in ledger.warnings)


def test_pool_must_be_whole_non_negative_cents_and_needs_someone_to_pay(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "ana"}], []))
    for bad in (-1, 10.5, "100", True):
        with pytest.raises(UserError, match="pool"):
            compute(cut(("image", 30, "A")), c, bad)
    with pytest.raises(UserError, match="upstream_share"):
        compute(cut(("image", 30, "A")), c, 100, Fraction(3, 2))
    with pytest.raises(UserError, match="nobody to pay"):
        compute(Timeline("T", RATE, ()), c, 100)
    assert compute(Timeline("T", RATE, ()), c, 0).payees == ()
    assert cents(compute(cut(("image", 30, "A"), ("image", 30, "NOPE")), c, 100)) == {"ana": 100}


def _oracle(timeline, callout, pool, share):
    """Exact amounts for an acyclic remix graph, by the definition: fixpoint of held = own + inflow."""
    times = defaultdict(Fraction)
    for seg in timeline.segments:
        for s in seg.shots:
            times[s.record_id] += Fraction(s.frames) / RATE * (2 if s.kind in ("video", "audio") else 1)
    total = sum(times.values())
    parents = {}
    stack = list(times)
    while stack:
        r = stack.pop()
        if r not in parents:
            parents[r] = list(dict.fromkeys(p for p in callout.record(r).remix_of
                                            if p != r and callout.record(p) is not None))
            stack += parents[r]
    held = {r: pool * times.get(r, 0) / total for r in parents}
    for _ in range(len(parents) + 1):
        new = {r: pool * times.get(r, 0) / total for r in parents}
        for r, ps in parents.items():
            for p in ps:
                new[p] += held[r] * share / len(ps)
        held = new
    out = defaultdict(Fraction)
    for r, h in held.items():
        kept = h * (1 - share) if parents[r] else h
        who = list(dict.fromkeys(c.username.casefold() for c in callout.record(r).credits))
        for u in who:
            out[u] += kept / len(who)
    return dict(out)


@pytest.mark.parametrize("seed", range(80))
def test_random_pools_and_graphs_sum_exactly_and_match_the_definition(tmp_path, seed):
    rng = random.Random(1000 + seed)
    n = rng.randrange(1, 50)
    # odd seeds: acyclic graphs (remixes point at later records; R<n> is a missing id)
    c, _ = random_callout(tmp_path, rng, n_records=n, n_people=rng.randrange(1, 30), acyclic=seed % 2 == 1)
    used = rng.sample(range(n), rng.randrange(1, n + 1))
    tl = cut(*[(rng.choice(["video", "audio", "image", "text"]), rng.randrange(1, 2000), f"R{i}") for i in used])
    pool = rng.choice([0, 1, 7, 100, 99_999, rng.randrange(10**12)])
    share = rng.choice([Fraction(0), Fraction(1, 2), Fraction(1, 3), Fraction(1), Fraction(rng.randrange(101), 100)])
    ledger = compute(tl, c, pool, share)
    check_traceable(ledger)
    assert ledger == compute(tl, c, pool, share)  # deterministic
    credited = {p.username.casefold() for p in credits_mod.compute(tl, c).people}
    assert {p.username.casefold() for p in ledger.payees} == credited
    if not any("cycle" in w for w in ledger.warnings):
        exact = {p.username.casefold(): p.exact for p in ledger.payees}
        assert exact == _oracle(tl, c, pool, share)


def test_many_contributors_many_records_sum_exactly(tmp_path):
    rng = random.Random(42)
    c, _ = random_callout(tmp_path, rng, n_records=900, n_people=600)
    used = rng.sample(range(900), 600)
    tl = cut(*[(rng.choice(["video", "image"]), rng.randrange(30, 900), f"R{i}") for i in used])
    ledger = compute(tl, c, 12_345_678)
    check_traceable(ledger)
    assert len(ledger.payees) > 500


def test_write_ledger_csv_and_json(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "ana;bo", "remix_of": "B"},
        {"record_id": "B", "file": "", "kind": "text", "text": "b", "contributors": "cy"},
    ], [("ana", "علي", "EG"), ("bo", "Bo 🎸", "GB"), ("cy", "Cy", "")]))
    ledger = compute(timeline("A", kind="video", frames=300), c, 1000)
    out = tmp_path / "out"
    write(ledger, out)
    assert sorted(p.name for p in out.iterdir()) == ["ledger.csv", "ledger.json"]
    with open(out / "ledger.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["username"], r["credit_name"], r["cents"], r["records"], r["paid_for"]) for r in rows] == [
        ("cy", "Cy", "500", "B", "A"), ("ana", "علي", "250", "A", "A"), ("bo", "Bo 🎸", "250", "A", "A")]
    assert all(r["screen_seconds"] == r["sound_seconds"] == "10.010" for r in rows)
    data = json.loads((out / "ledger.json").read_text(encoding="utf-8"))
    assert data["paid_cents"] == data["pool_cents"] == 1000
    a = next(r for r in data["records"] if r["record"] == "A")
    assert a["own_cents"] == "1000" and a["passed"] == [{"to": "B", "exact_cents": "500"}]


def test_a_3000_record_remix_chain_with_a_cycle_neither_recurses_nor_loops(tmp_path):
    n = 3000
    rows = [{"record_id": f"R{i}", "file": "", "kind": "text", "text": "t", "contributors": f"u{i % 700}",
             "remix_of": f"R{(i + 1) % n}"} for i in range(n)]  # R2999 remixes R0: one long cycle
    c = load_callout(write_callout(tmp_path / "c", rows, []))
    tl = timeline("R0")
    credits = credits_mod.compute(tl, c)
    assert len(credits.people) == 700 and any("cycle" in w for w in credits.warnings)
    ledger = compute(tl, c, 1_000_000)
    check_traceable(ledger)
    assert len(ledger.payees) == 700
