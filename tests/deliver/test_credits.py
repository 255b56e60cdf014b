"""Credits come from the cut, walk the remix graph safely, and are grouped and ordered like TV credits."""

import csv
import io
import itertools
import json
import random
from collections import Counter
from fractions import Fraction

import pytest

from render.callout.folder import load_callout
from render.core.errors import UserError
from render.deliver.credits import HEADINGS, UPSTREAM, collation_key, compute, heading_for, layout, roll, write
from tests.support.callouts import write_callout
from tests.support.credits import random_callout, timeline


def expected_pairs(callout, used) -> Counter:
    """An independent oracle: (username casefolded, heading) for every credit the cut earns."""
    ancestors, stack = set(), [p for r in used for p in callout.record(r).remix_of]
    while stack:
        rid = stack.pop()
        if rid in ancestors or rid in used or callout.record(rid) is None:
            continue
        ancestors.add(rid)
        stack += callout.record(rid).remix_of
    pairs = {(c.username.casefold(), heading_for(c.role)) for r in used for c in callout.record(r).credits}
    pairs |= {(c.username.casefold(), UPSTREAM) for r in ancestors for c in callout.record(r).credits}
    return Counter(pairs)


def assert_exactly_once_per_heading(credits, callout, used):
    got = Counter((p.username.casefold(), h) for p in credits.people for h, _ in p.by_heading)
    assert got == expected_pairs(callout, used)
    # the roll's groups say the same: each heading lists exactly its people's credit names
    for heading, names in credits.groups:
        assert Counter(names) == Counter(p.credit_name for p in credits.people if heading in p.headings)
    rows = list(csv.DictReader(io.StringIO(credits.to_csv())))
    assert Counter((r["username"].casefold(), r["heading"]) for r in rows) == got


def test_cycles_self_references_and_missing_ids_terminate_with_warnings(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "ana:writer", "remix_of": "B;A;ZZ"},
        {"record_id": "B", "file": "", "kind": "text", "text": "b", "contributors": "BO", "remix_of": "C"},
        {"record_id": "C", "file": "", "kind": "text", "text": "c", "contributors": "cy:director", "remix_of": "A"},
        {"record_id": "D", "file": "", "kind": "text", "text": "d", "contributors": "dee"},
    ], [("ana", "Ana", ""), ("bo", "Bo", ""), ("cy", "Cy", ""), ("dee", "Dee", "")]))
    credits = compute(timeline("A"), c)
    assert sorted(p.username.lower() for p in credits.people) == ["ana", "bo", "cy"]
    cy = next(p for p in credits.people if p.username == "cy")
    assert cy.headings == (UPSTREAM,) and cy.remixed_via == (("A", "B", "C"),)
    assert any("ZZ" in w for w in credits.warnings)
    assert any("A lists itself" in w for w in credits.warnings)
    assert any("cycle A -> B -> C -> A" in w for w in credits.warnings)
    assert [h for h, _ in credits.groups] == ["Writing", UPSTREAM]


def test_a_cycle_between_two_sources_is_found_even_off_the_first_path(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "U", "file": "", "kind": "text", "text": "u", "contributors": "u", "remix_of": "X;Y"},
        {"record_id": "X", "file": "", "kind": "text", "text": "x", "contributors": "x", "remix_of": "Y"},
        {"record_id": "Y", "file": "", "kind": "text", "text": "y", "contributors": "y", "remix_of": "X"},
    ], [("u", "U", ""), ("x", "X", ""), ("y", "Y", "")]))
    credits = compute(timeline("U"), c)
    assert any("cycle X -> Y -> X" in w for w in credits.warnings)
    assert {p.username: p.remixed_via for p in credits.people if p.remixed_via} == {"x": (("U", "X"),),
                                                                                    "y": (("U", "Y"),)}


def test_a_person_is_listed_once_per_heading_whatever_the_case(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "Ana:writer"},
        {"record_id": "B", "file": "", "kind": "text", "text": "b", "contributors": "ANA:writer;ana:director"},
        {"record_id": "C", "file": "", "kind": "text", "text": "c", "contributors": "aNa:poet", "remix_of": "A"},
    ], [("ana", "Ana", "")]))
    credits = compute(timeline("B", "C"), c)
    assert len(credits.people) == 1
    assert dict(credits.groups) == {"Directed by": ("Ana",), "Writing": ("Ana",), UPSTREAM: ("Ana",)}
    ana = credits.people[0]
    assert dict(ana.by_heading) == {"Directed by": ("B",), "Writing": ("B", "C"), UPSTREAM: ("A",)}


def test_headings_in_tv_order_unknown_roles_after_known_and_upstream_last(tmp_path):
    roles = ["sound design", "editor", "illustrator", "photographer", "poet", "narrator", "composer", "animator",
             "camera", "director", "Best Boy"]
    rows = [{"record_id": f"R{i}", "file": "", "kind": "text", "text": "t", "contributors": f"p{i}:{role}",
             "remix_of": "SRC"} for i, role in enumerate(roles)]
    rows.append({"record_id": "SRC", "file": "", "kind": "text", "text": "s", "contributors": "src"})
    c = load_callout(write_callout(tmp_path / "c", rows, []))
    credits = compute(timeline(*[f"R{i}" for i in range(len(roles))]), c)
    assert [h for h, _ in credits.groups] == [h for h, _ in HEADINGS] + ["Best Boy", "Sound Design", UPSTREAM]


def test_names_sort_by_unicode_collation_and_credit_names_are_kept_exactly(tmp_path):
    names = ["Zoë", "Émile Zola", "Eve", "Ólafur", "Omar", "Åsa", "Ben", "ørjan", "Ña", "Nadia", "eva"]
    rows = [{"record_id": f"R{i}", "file": "", "kind": "text", "text": "t", "contributors": f"u{i}:writer"}
            for i in range(len(names))]
    c = load_callout(write_callout(tmp_path / "c", rows, [(f"u{i}", n, "") for i, n in enumerate(names)]))
    credits = compute(timeline(*[f"R{i}" for i in range(len(names))]), c)
    assert dict(credits.groups)["Writing"] == (
        "Åsa", "Ben", "Émile Zola", "eva", "Eve", "Ña", "Nadia", "Ólafur", "Omar", "ørjan", "Zoë")
    # composed and decomposed accents collate together; case only breaks ties
    assert sorted(["e\u0301b", "éa", "ec"], key=collation_key) == ["éa", "e\u0301b", "ec"]


def test_every_contributor_of_the_lineage_appears_exactly_once_per_heading_with_500_people(tmp_path):
    rng = random.Random(6)
    c, _ = random_callout(tmp_path, rng, n_records=1200, n_people=700)
    used = [f"R{i}" for i in rng.sample(range(1200), 800)]
    credits = compute(timeline(*used), c)
    assert len(credits.people) > 500
    assert_exactly_once_per_heading(credits, c, set(used))
    names = {p.credit_name for p in credits.people}
    assert {"علي حسن", "🌈🦄", "Zoë 🎸", "e\u0301milie"} <= names  # exactly as given, not normalised


@pytest.mark.parametrize("seed", range(25))
def test_random_graphs_credit_exactly_the_lineage(tmp_path, seed):
    rng = random.Random(seed)
    n = rng.randrange(1, 60)
    c, _ = random_callout(tmp_path, rng, n_records=n, n_people=rng.randrange(1, 40))
    used = [f"R{i}" for i in rng.sample(range(n), rng.randrange(1, n + 1))]
    credits = compute(timeline(*used), c)
    assert_exactly_once_per_heading(credits, c, set(used))
    for p in credits.people:  # every upstream path is a real remix chain from the cut
        for path in p.remixed_via:
            assert path[0] in used and all(b in c.record(a).remix_of for a, b in itertools.pairwise(path))


def test_used_record_missing_from_the_callout_is_a_warning_not_a_crash(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "ana"}], [("ana", "Ana", "")]))
    credits = compute(timeline("A", "NOPE"), c)
    assert [p.username for p in credits.people] == ["ana"]
    assert any("NOPE" in w for w in credits.warnings)


def test_write_puts_text_json_and_csv_atomically(tmp_path):
    c = load_callout(write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "", "kind": "text", "text": "a", "contributors": "ana:writer;Bo:director",
         "remix_of": "B"},
        {"record_id": "B", "file": "", "kind": "text", "text": "b", "contributors": "cy", "remix_of": "C"},
        {"record_id": "C", "file": "", "kind": "text", "text": "c", "contributors": "dee"},
    ], [("ana", "علي, \"Ana\"", "EG"), ("bo", "Bo", "GB"), ("cy", "Cy 🎸", ""), ("dee", "Dee", "")]))
    credits = compute(timeline("A"), c)
    out = tmp_path / "out"
    write(credits, out)
    assert sorted(p.name for p in out.iterdir()) == ["credits.csv", "credits.json", "credits.txt"]
    with open(out / "credits.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"username": "bo", "credit_name": "Bo", "country": "GB", "heading": "Directed by", "records": "A",
         "remixed_via": ""},
        {"username": "ana", "credit_name": "علي, \"Ana\"", "country": "EG", "heading": "Writing", "records": "A",
         "remixed_via": ""},
        {"username": "cy", "credit_name": "Cy 🎸", "country": "", "heading": UPSTREAM, "records": "B",
         "remixed_via": "A>B"},
        {"username": "dee", "credit_name": "Dee", "country": "", "heading": UPSTREAM, "records": "C",
         "remixed_via": "A>B>C"},
    ]
    data = json.loads((out / "credits.json").read_text(encoding="utf-8"))
    dee = next(p for p in data["people"] if p["username"] == "dee")
    assert dee["roles"] == [UPSTREAM] and dee["remixed_via"] == [["A", "B", "C"]]
    assert data["count"] == 4
    assert "Cy 🎸" in (out / "credits.txt").read_text(encoding="utf-8")


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


def test_collation_without_pyuca_still_sorts_accents_with_their_letters(monkeypatch):
    import render.deliver.credits as credits_mod

    monkeypatch.setattr(credits_mod, "_collator", lambda: None)
    names = ["Zoë", "zoe", "Émile", "Eve", "Åsa", "Ben", "e\u0301a"]
    assert sorted(names, key=credits_mod.collation_key) == ["Åsa", "Ben", "e\u0301a", "Émile", "Eve", "zoe", "Zoë"]
