"""corral.config."""
