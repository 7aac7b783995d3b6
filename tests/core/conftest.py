"""Fixtures of the core tests.

Every output event and snapshot the engine builds while these tests run is checked
against its schema in schemas/ (see `_outputs_match_their_schemas`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streams.core import engine, grading
from streams.core.policy import Policy, load_policy
from tests.core.schemas import errors


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="session", autouse=True)
def _outputs_match_their_schemas() -> Iterator[None]:
    real_outputs, real_snapshot = engine._outputs, grading.build_snapshot

    def outputs(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        out = real_outputs(*args, **kwargs)
        for o in out:
            found = errors(engine.OUTPUT_TOPICS[o["type"]], o)
            assert not found, (o, found)
        return out

    def snapshot(*args: Any, **kwargs: Any) -> dict[str, Any]:
        g = real_snapshot(*args, **kwargs)
        found = errors("customer-grades", g)
        assert not found, (g, found)
        return g

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "_outputs", outputs)
        mp.setattr(engine, "build_snapshot", snapshot)
        mp.setattr(grading, "build_snapshot", snapshot)
        yield
