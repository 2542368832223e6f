"""corral.cmdlib."""
