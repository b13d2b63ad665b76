"""Conversion: raw files -> S2I store (docs/design.md §1). `flow` (the `s2i convert` steps),
`shard` (one shard task's work), `executors` (inline, worker processes, Dask),
`worker_preload` (what the forkserver imports) and `add_streams` (`s2i encode`: new streams
for a finished store)."""
