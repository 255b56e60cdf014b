"""remixtv's Prefect flows and CLI. Everything media-related lives in ``render``."""

import os

# Quiet and local by default: no telemetry, no server needed (Prefect runs ephemerally).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
# The ephemeral server's start-up (8-14 s here) can pass Prefect's 20 s default on a loaded 2-core
# machine (a nightly build next to an editor's session); waiting longer beats failing the build.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
