"""Tests of the pure grading core (streams.core)."""
