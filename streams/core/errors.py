"""The one error root of gradestream, and the rejection that sends an event to the dead letters."""

from __future__ import annotations

from typing import NamedTuple


class GradestreamError(Exception):
    """Root of every error gradestream raises on purpose."""


class PolicyError(GradestreamError):
    """A policy file is invalid; the message names the key and the reason."""


class Rejection(NamedTuple):
    """Why an input event is refused. It goes to the dead-letter topic, never dropped.

    `code` is stable and machine-readable (e.g. ``schema_violation``, ``unknown_currency``);
    `message` is for people and names the field or byte position at fault.
    """

    code: str
    message: str
