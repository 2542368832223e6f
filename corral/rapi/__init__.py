"""corral.rapi."""
