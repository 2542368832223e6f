"""corral.htools."""
