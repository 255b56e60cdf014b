"""Analysis of accepted records; each heavy library is confined to one module here.

- ``loudness``: BS.1770 / R128 meter (ffmpeg ebur128): integrated, LRA, true peak, max short-term.
- ``audio``: silence and dead air, clipping, speech or music, tempo and beats (librosa only here).
- ``pictures``: one decode pass per video at the project rate; black, frozen, flashing (OpenCV, numpy).
- ``scenes``: shot boundaries (scenedetect), per-shot quality and thumbnails (OpenCV).
- ``edit``: pure helpers that turn analysis into edit decisions for the planner.
- ``pipe``: streams raw frames/samples out of ``ffmpeg.run`` through a FIFO.

Results are frozen dataclasses with ``to_json``/``from_json``, cached by content hash + VERSION + parameters.
"""
