"""corral.osapi."""
