"""Sinks at the edge: where grades leave gradestream for other systems."""
