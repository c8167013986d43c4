"""Head-to-head benchmarks: this library, client-go and the `kubernetes` Python client on one
real control plane. Run with `nox -s bench` (or `python -m benchmarks --help`)."""
