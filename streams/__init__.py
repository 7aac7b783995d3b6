"""gradestream: a streaming customer grader.

Layout: `streams.core` is the pure grading core (no I/O, no clock), `streams.contracts`
checks events against `schemas/`, `streams.app` is the Faust worker, `streams.sinks`
writes to the edges (Redis), `streams.cli` is the `gradestream` command.
"""

__version__ = "0.1.0"
