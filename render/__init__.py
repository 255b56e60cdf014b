"""remixtv's media engine: a plain library (it never imports Prefect).

Data flows one way: call-out folder -> Catalog -> (intake, analysis) ->
EpisodeSpec + Catalog -> Timeline -> rendered segments -> episode.
"""

__version__ = "0.1.0"
