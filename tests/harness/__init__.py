"""What the tests and the benchmarks run beside a control plane; not part of the package.

- `toxiproxy`: Toxiproxy's server as a process and its HTTP API (network faults between
  candidates and the apiserver);
- `event_lines`: candidate processes that print one line per event, read as they come.

Importable as `harness` under pytest (`pythonpath` in pyproject.toml) and from
`python -m benchmarks` (which puts tests/ on `sys.path`).
"""
