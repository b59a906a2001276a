"""Benchmarks (run from the repository root; see bench/RESULTS.md for each command and its figures)."""
