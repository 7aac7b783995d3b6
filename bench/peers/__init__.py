"""Peers of the worker for bench/stream_bench.py: run as subprocesses, never imported by
streams/ or tests/."""
