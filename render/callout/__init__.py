"""render.callout.folder."""
