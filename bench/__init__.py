"""Benchmarks of the mock: `make bench` (or `python -m bench.run`) prints one table."""
