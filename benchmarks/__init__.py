"""runkit's benchmark suite: ``python -m benchmarks [--smoke] [--only NAME]``.

The protocol (docs/benchmarks.md): one harness, sequential scenarios, each physical
baseline first, then runkit, then its peers, in the same run on the same
PostgreSQL cluster and file system, reported as ratios. ``docs/benchmarks.md`` has the
figures of the last full run and explains them.

Modules, one per scenario family:

* ``_harness``: environment record, quiet-machine guard, repetitions and statistics,
  PostgreSQL databases (one per system), SQLite files, result records.
* ``lifecycle``: issue #2, the storage lifecycle (create, claim, complete) through
  ``Runkit`` beside the raw-SQL ideal (B-SQ-2/3, B-PG-2/3).
* ``pagination``: issue #2, list and log pages at depth.
* ``e2e``: issue #3, real workers (embedded and processes) and dispatch latency.
* ``peers``: issue #3, pgqueuer, procrastinate and DBOS in the same run (each driven in a
  subprocess by ``_peer_main``).
* ``http``: issue #4, the ASGI app under uvicorn beside a bare Starlette endpoint.
"""
