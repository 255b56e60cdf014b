"""Code the tests share: call-outs, media, processes (fixtures stay in tests/conftest.py)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
