"""The wheel works without the repository: built, installed into a fresh virtualenv and
run from another folder, it finds its schemas inside the package (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.conftest import REPO

DECODE = """
import json, streams, streams.contracts as c
event = {"event_id": "e1", "customer_id": "c1", "occurred_at": "2024-03-01T10:00:00Z",
         "type": "order_placed", "order_id": "o1", "amount": 12.5, "currency": "USD"}
decoded = c.decode(json.dumps(event).encode(), "orders", b"c1")
bad = c.decode(b'{"type": "order_placed"}', "orders", b"c1")
print(json.dumps({"package": streams.__file__, "schemas": str(c.SCHEMAS_DIR),
                  "event": decoded.event, "bad": bad.code}))
"""

# No GRADESTREAM_SCHEMAS_DIR nor PYTHONPATH: nothing may point back at the repository.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GRADESTREAM_", "PYTHON"))}


def sh(*args: str | Path, cwd: Path | None = None, **env: str) -> str:
    done = subprocess.run(
        [str(a) for a in args], env=ENV | env, cwd=cwd, check=True, capture_output=True, text=True
    )
    return done.stdout


def test_an_installed_wheel_decodes_events_without_the_repository(tmp_path: Path) -> None:
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    pip = ["-m", "pip", "--disable-pip-version-check"]
    # Pure Python (no mypyc) keeps the build to seconds; the schemas are copied alike.
    sh(
        sys.executable,
        *pip,
        "wheel",
        "-q",
        "--no-deps",
        "-w",
        wheels,
        REPO,
        GRADESTREAM_COMPILE="0",
    )
    [wheel] = wheels.glob("gradestream-*.whl")
    sh(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    sh(python, *pip, "install", "-q", "--no-deps", "--no-index", wheel)
    # The dependencies (orjson, jsonschema-rs, ...) from this environment, after the
    # venv's own site-packages, so that `streams` is the wheel's.
    site = sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(site.strip()) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere.mkdir()
    found = json.loads(sh(python, "-c", DECODE, cwd=elsewhere))
    assert found["package"].startswith(str(venv)), found
    assert found["schemas"] == str(Path(found["package"]).parent / "schemas")
    assert found["event"]["order_id"] == "o1"
    assert found["bad"] == "schema_violation"
