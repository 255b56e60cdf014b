"""render.compose.pieces."""
