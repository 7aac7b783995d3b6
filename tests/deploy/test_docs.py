"""The generated reference docs are current, complete, and their examples run."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from streams import docgen
from streams.core.policy import Policy
from streams.policy_meanings import MEANINGS


def test_generated_docs_are_up_to_date() -> None:
    """docs/contracts-reference.md and docs/policy.md equal what `python -m streams.docgen`
    writes from schemas/ and the policy model: run it after changing either."""
    for path, text in docgen.outputs().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name}: run python -m streams.docgen"
        )
    assert docgen.main(["--check"]) == 0


def _policy_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        sub: Any = docgen._model_of(field.annotation)
        if sub is not None:
            is_list = "list" in str(field.annotation)
            keys += _policy_keys(sub, f"{prefix}{name}{'[]' if is_list else ''}.")
    return keys


def test_every_policy_key_has_a_meaning_and_no_meaning_is_stale() -> None:
    keys = _policy_keys(Policy)
    assert len(keys) > 50
    assert sorted(set(keys) - set(MEANINGS)) == []
    assert sorted(set(MEANINGS) - set(keys)) == []
    text = docgen.POLICY_DOC.read_text(encoding="utf-8")
    for key in keys:
        assert f"| `{key}` |" in text


def test_every_schema_and_field_is_in_the_contracts_reference() -> None:
    text = docgen.CONTRACTS_DOC.read_text(encoding="utf-8")
    schemas = docgen._load_schemas()
    assert set(schemas) == set(docgen.SCHEMA_ORDER)
    for name, schema in schemas.items():
        assert f"\n## {name}\n" in text
        for field in schema.get("properties", {}):
            assert f"| `{field}` |" in text
    assert "| `snapshot.churn.reasons[].code` |" not in text  # the snapshot is described once
    assert "| `churn.reasons[].code` |" in text
    assert "| `source (kafka).offset` |" in text


def test_docgen_refuses_a_policy_key_without_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(MEANINGS, "limits.max_complaints")
    with pytest.raises(SystemExit, match=r"limits\.max_complaints"):
        docgen.policy_reference()


def test_consumers_doc_contains_every_example_verbatim() -> None:
    text = (docgen.REPO / "docs" / "consumers.md").read_text(encoding="utf-8")
    examples = sorted((docgen.REPO / "docs" / "examples").glob("*.py"))
    assert len(examples) == 4
    for example in examples:
        assert f"```python\n{example.read_text(encoding='utf-8')}```" in text, example.name
