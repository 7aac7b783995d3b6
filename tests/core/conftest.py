"""Fixtures of the core tests.

Every output event and snapshot the engine returns while these tests run is checked
against its schema in schemas/ (see `_outputs_match_their_schemas`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streams.core import engine, grading
from streams.core.policy import Policy, load_policy
from tests.core.schemas import errors


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()


def _check_outputs(out: list[dict[str, Any]]) -> None:
    for o in out:
        found = errors(engine.OUTPUT_TOPICS[o["type"]], o)
        assert not found, (o, found)


def _check_grade(g: dict[str, Any]) -> None:
    found = errors("customer-grades", g)
    assert not found, (g, found)


def _checked(fn: Callable[..., Any], check: Callable[[Any], None]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        check(result)
        return result

    return wrapper


@pytest.fixture(scope="session", autouse=True)
def _outputs_match_their_schemas() -> Iterator[None]:
    """The core's public functions, wherever a module imported them, wrapped by checks.

    The wrappers sit at the API (what `apply`, `advance`, `regrade_for_policy`, `snapshot`,
    `grade` and `build_snapshot` return), not inside the core: when the core is compiled
    (mypyc) its calls between its own functions are direct C calls that no attribute patch
    can intercept, while everything the engine emits leaves through these functions.
    """
    wrappers: dict[int, Callable[..., Any]] = {
        id(engine.apply): _checked(engine.apply, lambda r: _check_outputs(r.outputs)),
        id(engine.advance): _checked(engine.advance, _check_outputs),
        id(engine.regrade_for_policy): _checked(engine.regrade_for_policy, _check_outputs),
        id(engine.snapshot): _checked(engine.snapshot, _check_grade),
        id(grading.grade): _checked(grading.grade, _check_grade),
        id(grading.build_snapshot): _checked(grading.build_snapshot, _check_grade),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, module in list(sys.modules.items()):
            if module is None or not name.startswith(("streams", "tests")):
                continue
            for attr, value in list(vars(module).items()):
                wrapper = wrappers.get(id(value))
                if wrapper is not None:
                    mp.setattr(module, attr, wrapper)
        yield
