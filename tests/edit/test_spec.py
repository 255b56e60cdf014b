"""The spec as editors meet it: a JSON Schema for their editor that agrees with the build's own
checks, the README field reference, variables and defaults."""

from __future__ import annotations

import json
from fractions import Fraction

import jsonschema
import pytest
import yaml

from render.core.errors import SpecError
from render.edit.spec import fields_markdown, json_schema, load_spec
from tests.support import REPO

SCHEMA = REPO / "episode_specs" / "remixtv-spec.schema.json"


def _validator():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_is_the_one_the_code_describes():
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "episode_specs/remixtv-spec.schema.json is stale: regenerate it with `remixtv schema > ...`")


def test_every_shipped_spec_passes_the_schema_and_the_build_checks():
    specs = sorted((REPO / "episode_specs").glob("*.yaml"))
    assert specs
    for path in specs:
        assert not [e.message for e in _validator().iter_errors(yaml.safe_load(path.read_text()))], path
        load_spec(path)
        assert "yaml-language-server: $schema=" in path.read_text()  # editors find the schema by themselves


@pytest.mark.parametrize(("mistake", "schema_says", "build_says"), [
    ({"shot_secs": 2}, "'shot_secs' was unexpected", "not a field of a montage segment (did you mean 'shot_seconds'?)"),
    ({"cut_on": "bars"}, "'bars' is not one of", "must be one of shots, beats"),
    ({"type": "montag"}, "'montag' is not one of", "unknown type 'montag' (did you mean 'montage'?)"),
    ({"allow_flashes": "yes please"}, "is not of type 'boolean'", "must be true or false"),
])
def test_schema_and_build_catch_the_same_mistakes(tmp_path, mistake, schema_says, build_says):
    doc = {"title": "x", "callout": ".", "runtime": "0:10",
           "segments": [{"id": "a", "type": "montage", "select": {"kinds": ["video"]}, **mistake}]}
    errors = [e.message for e in _validator().iter_errors(doc)]
    assert any(schema_says in e for e in errors), errors
    path = tmp_path / "ep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert any(build_says in str(p) and str(p).startswith(f"{path}:") for p in err.value.problems), err.value.problems


def test_the_spec_reference_documents_every_field():
    text = (REPO / "docs" / "spec-reference.md").read_text()
    assert fields_markdown() in text, "docs/spec-reference.md is stale: regenerate it (see its first lines)"


SERIES = """\
title: "RE: {{theme}}, episode {{episode}}"
callout: "callouts/{{episode}}"
runtime: "{{runtime}}"
vars: {theme: The Number One, episode: 3, runtime: "22:00"}
defaults:
  all: {allow_flashes: true}
  montage: {shot_seconds: 2.5}
segments:
  - {id: open, type: card, text: "{{theme}}"}
  - {id: m1, type: montage, select: {kinds: [video]}}
  - {id: m2, type: montage, shot_seconds: 4, allow_flashes: false, select: {kinds: [video]}}
  - {id: rest, type: fill}
"""


def test_variables_and_defaults_make_one_spec_serve_a_series(tmp_path):
    path = tmp_path / "series.yaml"
    path.write_text(SERIES)
    spec = load_spec(path)
    assert spec.title == "RE: The Number One, episode 3"
    assert spec.callout == (tmp_path / "callouts" / "3").resolve()
    assert spec.runtime_s == 22 * 60  # a whole-field variable keeps working as a duration
    m1, m2 = spec.segments[1], spec.segments[2]
    assert (m1.shot_seconds, m1.allow_flashes) == (Fraction(5, 2), True)  # from defaults
    assert (m2.shot_seconds, m2.allow_flashes) == (4, False)  # the segment's own fields win
    assert spec.segments[0].allow_flashes is None  # a card has no such field: 'all' gives it nothing
    nine = load_spec(path, {"episode": "9", "theme": "Front Lawn Freaks"})
    assert nine.title == "RE: Front Lawn Freaks, episode 9" and nine.callout.name == "9"


def test_variable_and_default_mistakes_name_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SERIES.replace('text: "{{theme}}"', 'text: "{{them}}"')
                    .replace("montage: {shot_seconds: 2.5}", "montage: {shot_secs: 2.5}\n  montag: {}"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    lines = sorted(str(p) for p in err.value.problems)
    assert f"{path}:7: defaults.montage.shot_secs: not a field of montage segments (did you mean 'shot_seconds'?)" \
        in lines, lines
    assert any(line.startswith(f"{path}:8: defaults.montag: not a segment type (did you mean 'montage'?)")
               for line in lines), lines
    assert any(line.startswith(f"{path}:10: segments[0].text: unknown variable {{{{them}}}} (did you mean 'theme'?)")
               for line in lines), lines


def test_the_readme_example_spec_is_valid(tmp_path):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### The episode spec"):]
    example = section[section.index("```yaml") + 7:section.index("```", section.index("```yaml") + 7)]
    assert not [e.message for e in _validator().iter_errors(yaml.safe_load(example))]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    spec = load_spec(path, {"theme": "Front Lawn Freaks"})
    assert spec.title == "RE: Front Lawn Freaks" and [s.type for s in spec.segments][:2] == ["montage", "card"]
    assert spec.segments[0].cut_on == "beats" and spec.segments[2].bed == "R0131"
