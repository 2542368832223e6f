"""corral.jobs."""
