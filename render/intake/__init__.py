"""render.intake.records."""
