"""RAPI v2, Ganeti's remote API, served by corral-masterd over HTTPS (port 5080).

`resources` builds the answers from the master's query resources with
Ganeti 3.0.2's shapes; `server` is the aiohttp listener and routing. Only
the read resources exist so far (see docs/decisions.md).
"""
