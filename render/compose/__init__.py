"""The compose stage: the Timeline rendered in cached pieces.

- ``pieces``: the Timeline cut into pieces (``Piece``, ``Edges``, ``pieces``), the units rendered and cached.
- ``graph``: a piece's ffmpeg filter graph (``build_command``): decode, conform, transitions, bed, one encode;
  or one stem of its sound (dialogue, music, effects) for a delivery.
- ``store``: the piece cache (``piece_key``, ``render_piece``, ``cached_piece``, ``RenderedPiece``):
  a piece rendered once, checked exact, kept under a key of everything that can change it; and its
  stems, when a delivery asks (``render_stems``, ``cached_stems``, ``RenderedStems``).
- ``measure``: QC's measures of a piece, taken from the picture as it is encoded (``PieceQC``).

The rendered pieces are handed to the master stage, which joins, levels and checks the programme.
"""
