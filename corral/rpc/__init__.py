"""corral.rpc."""
