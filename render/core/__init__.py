"""render.core."""
