"""corral.utils."""
