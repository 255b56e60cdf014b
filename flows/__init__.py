"""remixtv's Prefect flows and CLI. Everything media-related lives in ``render``."""

import os

# Quiet and local by default: no telemetry, no server needed (Prefect runs ephemerally).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
