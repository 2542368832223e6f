"""corral.node."""
