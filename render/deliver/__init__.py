"""render.deliver."""
