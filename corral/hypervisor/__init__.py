"""corral.hypervisor."""
