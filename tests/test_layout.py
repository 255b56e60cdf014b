"""The import rules of render/, read from the source with ``ast`` (nothing is imported):

- render/ never imports prefect, boto3 or flows, not even lazily inside a function;
- each stage imports only render.core and the stages before it on the data path,
  core < callout < intake < analysis < edit < compose < master < deliver (and itself);
  ``render`` itself (``__version__``) is importable by all, and render/__init__.py imports no stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO

STAGES = ("core", "callout", "intake", "analysis", "edit", "compose", "master", "deliver")
FORBIDDEN = ("prefect", "boto3", "flows")  # the orchestration and storage side: flows/ wraps render/, not the reverse


def imported_modules(path: Path, source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, at any depth: ``import a.b``,
    ``from a import b`` (as a.b: b may be a module), relative imports resolved against ``path``,
    and ``importlib.import_module("a")`` / ``__import__("a")`` with a literal name."""
    package = list(path.parent.parts)  # a module's package, and an __init__.py's own
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def broken_rules(path: Path, source: str) -> list[str]:
    """Every import in one file under render/ that breaks a rule, as 'file:line: what (rule)'."""
    parts = path.parts  # ("render", stage, ..., "x.py") or ("render", "__init__.py")
    stage = parts[1] if len(parts) > 2 else None
    if stage is not None and stage not in STAGES:
        return [f"{path}:1: render/{stage}/ is not a stage of the data path (known: {', '.join(STAGES)})"]
    allowed = STAGES[:STAGES.index(stage) + 1] if stage else ()
    problems, seen = [], set()
    for line, module in imported_modules(path, source):
        top, _, rest = module.partition(".")
        target = rest.split(".")[0] if top == "render" else top
        if (line, target) in seen:  # ``from render.master import level`` names render.master twice
            continue
        seen.add((line, target))
        if top in FORBIDDEN:
            problem = f"{path}:{line}: imports {module} (render/ never imports prefect, boto3 or flows)"
        elif top == "render" and rest:
            if target not in STAGES or target in allowed:
                continue  # a name from render/__init__.py (``__version__``), or an allowed stage
            if stage is None:
                problem = f"{path}:{line}: imports {module} (render/__init__.py imports no stage)"
            else:
                problem = (f"{path}:{line}: imports {module} ({stage} may import only "
                           f"{', '.join('render.' + s for s in allowed)}; the order is {' < '.join(STAGES)})")
        else:
            continue
        problems.append(problem)
    return problems


def violations() -> list[str]:
    found = []
    for file in sorted((REPO / "render").rglob("*.py")):
        rel = file.relative_to(REPO)
        found += broken_rules(rel, file.read_text(encoding="utf-8"))
    return found


def test_render_follows_its_import_rules():
    problems = violations()
    if problems:
        pytest.fail(f"{len(problems)} import(s) break the layout's rules:\n" + "\n".join(problems), pytrace=False)


def test_the_rules_see_lazy_relative_and_dynamic_imports():
    source = ("import json\n"
              "from render import __version__\n"
              "from render.core.cache import Cache\n"
              "from . import plan\n"
              "def later():\n"
              "    import prefect\n"
              "    from ..master import level\n"
              "    return importlib.import_module('boto3')\n"
              "from render import deliver\n")
    problems = broken_rules(Path("render/edit/spec.py"), source)
    assert [p.split(" (")[0] for p in problems] == [
        "render/edit/spec.py:6: imports prefect",
        "render/edit/spec.py:7: imports render.master",
        "render/edit/spec.py:8: imports boto3",
        "render/edit/spec.py:9: imports render.deliver",
    ], problems
    assert broken_rules(Path("render/__init__.py"), "from render.core import house\n") == [
        "render/__init__.py:1: imports render.core (render/__init__.py imports no stage)"]
    assert broken_rules(Path("render/extras/x.py"), "") == [
        ("render/extras/x.py:1: render/extras/ is not a stage of the data path "
         "(known: core, callout, intake, analysis, edit, compose, master, deliver)")]
