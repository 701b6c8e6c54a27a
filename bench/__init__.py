"""Benchmarks: `make bench` runs them all and writes bench/results/latest.json (never part of the tests)."""
