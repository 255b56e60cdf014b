"""Credits come from the cut and walk the remix graph safely."""

from fractions import Fraction

import pytest
from conftest import write_callout

from render.callout import load_callout
from render.credits import compute, layout, roll
from render.errors import UserError
from render.timeline import Segment, Shot, Timeline

RATE = Fraction(30000, 1001)


def timeline(*record_ids):
    shots = tuple(Shot("image", 30, rid) for rid in record_ids)
    return Timeline("T", RATE, (Segment("s", "montage", 0, 30 * len(shots), shots),))


def test_cycles_self_references_and_missing_ids_terminate(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "ana:writer", "remix_of": "B;A;ZZ"},
        {"record_id": "B", "file": "", "kind": "text", "text": "b", "contributors": "BO", "remix_of": "C"},
        {"record_id": "C", "file": "", "kind": "text", "text": "c", "contributors": "cy:director", "remix_of": "A"},
        {"record_id": "D", "file": "", "kind": "text", "text": "d", "contributors": "dee"},
    ], [("ana", "Ana", ""), ("bo", "Bo", ""), ("cy", "Cy", ""), ("dee", "Dee", "")]))
    credits = compute(timeline("A"), c)
    assert sorted(p.username.lower() for p in credits.people) == ["ana", "bo", "cy"]
    cy = next(p for p in credits.people if p.username == "cy")
    assert cy.headings == ("Remixed from the work of",) and cy.remixed_via == (("A", "B", "C"),)
    assert any("ZZ" in w for w in credits.warnings)
    assert [h for h, _ in credits.groups] == ["Writing", "Remixed from the work of"]


def test_a_person_is_listed_once_per_heading_whatever_the_case(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "Ana:writer"},
        {"record_id": "B", "file": "", "kind": "text", "text": "b", "contributors": "ANA:writer;ana:director"},
    ], [("ana", "Ana", "")]))
    credits = compute(timeline("A", "B"), c)
    assert len(credits.people) == 1
    assert dict(credits.groups) == {"Directed by": ("Ana",), "Writing": ("Ana",)}


def _many(tmp_path, n):
    rows = [{"record_id": f"R{i}", "file": "", "kind": "text", "text": "x", "contributors": f"u{i}"} for i in range(n)]
    return load_callout(write_callout(tmp_path / "c", rows, [(f"u{i}", f"Person Number {i}", "") for i in range(n)]))


def test_roll_keeps_every_name_on_screen_long_enough(tmp_path):
    c = _many(tmp_path, 426)
    credits = compute(timeline(*[f"R{i}" for i in range(426)]), c)
    lay = layout(credits, Fraction(90))
    assert lay.name_on_screen_s >= Fraction(3, 2)
    doc = roll(credits, Fraction(90))
    assert doc.count("Person Number") == 426


def test_roll_says_what_slot_it_needs_when_names_cannot_fit(tmp_path):
    c = _many(tmp_path, 426)
    credits = compute(timeline(*[f"R{i}" for i in range(426)]), c)
    with pytest.raises(UserError, match=r"needs a slot of at least \d+ s"):
        layout(credits, Fraction(8))
