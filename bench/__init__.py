"""Benchmark scripts (run by `make bench`); modules starting with _ are their helpers."""
