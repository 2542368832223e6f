"""corral: a cluster virtualization manager that speaks Ganeti's languages."""

__version__ = "0.1.0"
