"""Logical units: one module per object and aspect.

`corral.cmdlib.base` holds the LU contract (LogicalUnit, LUContext, lock
levels), `corral.cmdlib.registry` maps opcodes to LUs and names to query
resources, `corral.cmdlib.query_base` the query field machinery. Every other
module registers its LUs and query resources on import (`registry.load_all`).
"""
