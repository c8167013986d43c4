"""What the tests and the benchmarks run beside a control plane; not part of the package.

- `toxiproxy`: Toxiproxy's server as a process and its HTTP API (network faults between
  candidates and the apiserver);
- `event_lines`: candidate processes that print one line per event, read as they come.
- `backends`: the event loops of the tests of both runtimes (trio, asyncio, asyncio on
  uvloop), as parameters of anyio's `anyio_backend` fixture.

Importable as `harness` under pytest (`pythonpath` in pyproject.toml) and from
`python -m benchmarks` (which puts tests/ on `sys.path`).
"""
