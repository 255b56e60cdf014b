"""remixtv's Prefect flows and CLI. Everything media-related lives in ``render``."""

from .prefect_setup import defaults

defaults()  # before anything imports Prefect, which reads them once
