"""corral.daemons."""
