"""Benchmarks: `make bench` (python -m bench). They report; they never fail the test suite."""
