"""Policies with a churn model, for the core tests (a Model with known parameters)."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from streams.core.policy import Policy, policy_from_dict
from streams.models.bgnbd import BgNbdParams
from streams.models.gamma_gamma import GammaGammaParams
from streams.models.model import Model

# docs/models.md's holdout fit (5000 simulated customers, seed 1): realistic magnitudes.
MODEL = Model(
    "bgnbd-gg-test",
    "USD",
    BgNbdParams(r=1.155, alpha=89.74, a=0.4168, b=7.70),
    GammaGammaParams(p=2.156, q=1.44, v=34.57),
)


def default_doc() -> dict[str, Any]:
    text = resources.files("streams.policies").joinpath("default.toml").read_text("utf-8")
    return tomllib.loads(text)


def model_doc(signal: str = "p_no_order_90d", weight: float = 0.45) -> dict[str, Any]:
    doc = default_doc()
    doc["policy_version"] = f"model-{signal}-{weight}"
    doc["churn"]["model"] = {"path": "MODEL.json", "signal": signal, "weight": weight}
    return doc


def model_policy(
    signal: str = "p_no_order_90d", weight: float = 0.45, model: Model = MODEL
) -> Policy:
    """The default policy's rules with MODEL as the churn model's time signal."""
    return policy_from_dict(model_doc(signal, weight), model=model)
