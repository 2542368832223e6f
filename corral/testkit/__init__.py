"""corral.testkit."""
