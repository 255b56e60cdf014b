"""``remixtv schema``: the spec's JSON Schema, or (``--markdown``) its field reference."""

from __future__ import annotations

import json


def run(args) -> int:
    from render.edit.spec import fields_markdown, json_schema

    print(fields_markdown() if args.markdown else json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0
