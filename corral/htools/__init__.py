"""corral.htools: placement, balancing and capacity planning (Ganeti htools compatible).

Pure computation (no RPC, no config store). Modules, imported lazily by callers:

* `types`     -- specs, policies, groups, instances, `FailMode`, `HtoolsError`
* `nodeops`   -- node resource arithmetic (add/remove primary/secondary), vectorised
* `score`     -- the cluster score, exactly Ganeti 3.0's (metric table in its docstring)
* `cluster`   -- the `Cluster` model (node state as numpy arrays, undo journal)
* `text`      -- Ganeti's text backend (-t FILE), parse and serialize
* `ialloc`    -- iallocator v2 request parsing
* `iallocator`-- `run_request(request) -> {success, info, result}` (hail)
* `allocate`  -- placement search and the global N+1 capacity check
* `moves`     -- instance moves (failover, replace-*), as Ganeti applies them
* `balance`   -- hbal's greedy balancing (entry point; generic per-step search)
* `search`    -- fast move scoring: per-instance parts + pairwise target parts
* `candidates`-- listed best moves per instance (with deltas), peer/tag/location tables
* `greedy`    -- hbal's loop: exhaustive on small groups, `lazy` (same steps) above
* `lazy`      -- the exhaustive step without scoring rows a bound rules out
* `capacity`  -- hspace's standard and tiered allocation
* `loader`    -- data sources for the CLIs (-t now; -L/-m pluggable later)
"""
