"""scipy stays out of a start-up: the policy imports the model module, and scipy costs
~0.4 s to import, so every `gradestream` command paid it (docs/models.md, "Cost")."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_and_the_worker_start_without_scipy() -> None:
    probe = (
        "import sys, streams.cli, streams.app.worker, streams.core.policy; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_model_score_still_finds_scipy() -> None:
    probe = (
        "import sys\n"
        "from streams.models.bgnbd import BgNbdParams\n"
        "from streams.models.gamma_gamma import GammaGammaParams\n"
        "from streams.models.model import Model, score\n"
        "m = Model('m-1', 'USD', BgNbdParams(0.243, 30.9, 0.793, 2.426),"
        " GammaGammaParams(6.25, 3.74, 15.44))\n"
        "s = score(m, x=2, t_x_days=213.0, T_days=272.0, mean_order_value=40.0)\n"
        "print(round(s.expected_365d, 3), 'scipy.special' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["1.562", "True"]
