"""Code the tests share: call-outs, media, processes (fixtures stay in tests/conftest.py)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: librosa's numba JIT cache where a default build keeps it: machine code, compiled (~30 s) once per machine
NUMBA_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "remixtv" / "numba"


def numba_cache() -> str:
    """The numba JIT cache builds started by a test use: this process's, else the default one."""
    return os.environ.get("NUMBA_CACHE_DIR") or str(NUMBA_CACHE)
