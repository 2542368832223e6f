"""corral.web."""
