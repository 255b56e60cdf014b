"""render.master.level."""
