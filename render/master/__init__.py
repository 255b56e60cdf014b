"""The master stage: the rendered pieces made into the programme, and its quality control.

- ``programme``: ``join``, the stage's one entry: handed the rendered pieces, it joins their pictures
  by stream copy, levels and encodes their sound, writes the chapters and muxes the MP4
  (and ``render_timeline``, ``write_clip``: render and join without Prefect).
- ``level``: loudness levelling (per-piece meters, the level plan, loudnorm or a limiter).
- ``sound``: the programme's AAC, encoded a part a core or spliced where an edit changed it.
- ``chapters``: chapters at act breaks, as ffmetadata.
- ``qc``: the programme's QC checks (``qc.json``) from the pieces' measures and the final file.
"""
