"""render.edit."""
