"""Fixtures of the core tests: the default policy, loaded once (it is frozen)."""

from __future__ import annotations

import pytest

from streams.core.policy import Policy, load_policy


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()
