"""Benchmarks: each script prints a table and ratios and can write them into docs/benchmarks.md."""
