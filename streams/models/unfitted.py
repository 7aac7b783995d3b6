"""MODEL.json without parameters: what `gradestream fit` writes when it has too little
data, and the reader of MODEL.json files fitted or not (the policy's, so that a policy
naming an unfitted file grades with the model-free churn score meanwhile).

    {"format": "gradestream-model", "format_version": 1, "fitted": false,
     "reason": "40 customers with orders before the cut: too few to fit (at least 100)",
     "calibration_end": "...", "source": "...", "counts": {...}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.models.model import FORMAT, FORMAT_VERSION, Model, ModelError, _Obj

__all__ = ["Unfitted", "load_model_file"]


@dataclass(frozen=True, slots=True)
class Unfitted:
    """A MODEL.json without parameters: `gradestream fit` had too little data. A policy
    that names it grades with the model-free score until a fit succeeds."""

    reason: str  # what was missing, as the fit said it
    calibration_end: str
    source: str
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "fitted": False,
            "reason": self.reason,
            "calibration_end": self.calibration_end,
            "source": self.source,
            "counts": dict(self.counts),
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"

    @classmethod
    def from_dict(cls, doc: Any) -> Unfitted:
        d = _Obj(doc, "")
        d.raw("format")
        d.raw("format_version")
        if d.raw("fitted") is not False:
            raise ModelError("fitted: must be false in a file without parameters")
        counts = d.obj("counts")
        out = cls(
            reason=d.str_("reason"),
            calibration_end=d.str_("calibration_end"),
            source=d.str_("source"),
            counts={k: counts.count(k) for k in list(counts.doc)},
        )
        counts.done()
        d.done()
        return out


def load_model_file(path: str | Path) -> Model | Unfitted:
    """Read and validate MODEL.json, fitted or not; ModelError names the file and the bad
    key. A file with ``"fitted": false`` (too little data) is an `Unfitted`."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"(file): cannot read {path}: {exc.strerror}") from None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ModelError(f"{path}: (file): not valid JSON: {exc}") from None
    try:
        if isinstance(doc, dict) and doc.get("fitted") is False:
            _check_format(doc)
            return Unfitted.from_dict(doc)
        return Model.from_dict(doc)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def _check_format(doc: dict[str, Any]) -> None:
    if doc.get("format") != FORMAT:
        raise ModelError(f"format: must be {FORMAT!r}, not {doc.get('format')!r}")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"format_version: this gradestream reads version {FORMAT_VERSION}, "
            f"the file is version {doc.get('format_version')!r}"
        )
