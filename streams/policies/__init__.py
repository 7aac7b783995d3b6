"""Packaged grading policies (data files; `streams.core.policy.load_policy` reads them)."""
