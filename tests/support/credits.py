"""Cuts and call-outs that credits and the payout ledger are tested on."""

from __future__ import annotations

import random
from fractions import Fraction

from render.callout.folder import load_callout
from render.edit.timeline import Segment, Shot, Timeline
from tests.support.callouts import write_callout

RATE = Fraction(30000, 1001)
#: Names that need shaping, bidi, fallback fonts or careful collation.
HARD_NAMES = ["علي حسن", "דוד לוי", "अनीता शर्मा", "李小龍", "山田 太郎", "김민지", "Zoë 🎸", "🌈🦄", "Ørjan Øvreås",
              "Ólafur Arnalds", "Nguyễn Thị Minh", "e\u0301milie", "Ǆemal", "Ñandú", "Åsa Öberg", "Σοφία"]


def timeline(*record_ids, kind="image", frames=30):
    """A one-segment cut of one shot per record, ``frames`` long each."""
    shots = tuple(Shot(kind, frames, rid) for rid in record_ids)
    return Timeline("T", RATE, (Segment("s", "montage", 0, frames * len(shots), shots),))


def random_callout(tmp_path, rng: random.Random, n_records: int, n_people: int, acyclic: bool = False):
    """A call-out with a random remix graph (cycles unless ``acyclic``, self-references, missing ids)
    and random usernames in random capitalisation; returns (callout, the rows written)."""
    roles = ["", "writer", "director", "music", "voice", "camera", "animator", "illustrator", "editor", "sound design",
             "Foley"]
    people = [(f"user{i}", (HARD_NAMES[i] if i < len(HARD_NAMES) else f"Person {i:04d}"), rng.choice(["", "GB", "EG"]))
              for i in range(n_people)]
    rows = []
    for i in range(n_records):
        who = rng.sample(range(n_people), min(n_people, rng.choice([1, 1, 1, 2, 3])))
        contributors = []
        for k in who:
            name = people[k][0]
            name = rng.choice([name, name.upper(), name.capitalize()])
            role = rng.choice(roles)
            contributors.append(f"{name}:{role}" if role else name)
        remix = [f"R{rng.randrange(i + 1 if acyclic else 0, n_records + acyclic)}"
                 for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
        if rng.random() < 0.05:
            remix.append(f"R{i}")  # self-reference
        if rng.random() < 0.05:
            remix.append(f"GONE{i}")  # not in the call-out
        rows.append({"record_id": f"R{i}", "file": "", "kind": "text", "text": f"text {i}",
                     "contributors": ";".join(contributors), "remix_of": ";".join(remix)})
    folder = write_callout(tmp_path / f"c{rng.random()}", rows, people)
    return load_callout(folder), rows
