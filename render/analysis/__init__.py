"""Analysis of accepted records; each heavy library is confined to one module here.

- ``loudness``: BS.1770 / R128 meter (ffmpeg ebur128): integrated, LRA, true peak, max short-term.
- ``audio``: silence and dead air, clipping, speech or music, tempo and beats (librosa only here).
- ``pictures``: one decode pass per video at the project rate; black, frozen, flashing (OpenCV, numpy);
  it feeds the same frames to ``scenes``.
- ``scenes``: shot boundaries (scenedetect), per-shot quality and thumbnails (OpenCV); imports no other analysis.
- ``edit``: pure helpers that turn analysis into edit decisions for the planner.

Ranges are ``render.core.timebase.FrameRange`` (frames or samples). Results are frozen dataclasses with ``to_json``/``from_json``, cached by content hash + VERSION + parameters.
"""
