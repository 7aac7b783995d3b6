"""Start-up failures explain themselves (issue 16): `gradestream worker` with a bad
environment ends in one line on stderr naming the GRADESTREAM_ variable, and exit code 2,
never a traceback. Run as a real process, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import SettingsError, load_settings, unknown_variables

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pa55"  # noqa: S105 (a test value)


def worker(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`gradestream worker` in `tmp_path` with only `env` set among GRADESTREAM_* names."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("GRADESTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(REPO), "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("settings refused: GRADESTREAM_")
    return lines[0]


def test_a_data_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    line = refusal(worker(tmp_path, GRADESTREAM_DATADIR=str(tmp_path / "data")))
    assert (
        line
        == f"settings refused: GRADESTREAM_DATADIR: {tmp_path / 'data'} is a file, not a directory"
    )


def test_a_data_directory_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    line = refusal(worker(tmp_path, GRADESTREAM_DATADIR=str(tmp_path / "data" / "worker")))
    assert "GRADESTREAM_DATADIR: " in line
    assert "is a file, not a directory" in line


def test_a_data_directory_that_cannot_be_created(tmp_path: Path) -> None:
    # /proc refuses new folders, even to root (whom file permissions would not stop).
    line = refusal(worker(tmp_path, GRADESTREAM_DATADIR="/proc/self/gradestream"))
    assert line.startswith("settings refused: GRADESTREAM_DATADIR: /proc/")
    assert line.endswith("/gradestream cannot be used")


@pytest.mark.parametrize("url", ["not a url", "localhost:6379", f"http://:{SECRET}@redis:6379", ""])
def test_a_redis_url_that_is_not_one(tmp_path: Path, url: str) -> None:
    line = refusal(worker(tmp_path, GRADESTREAM_REDIS_URL=url))
    assert line.startswith("settings refused: GRADESTREAM_REDIS_URL: not a Redis URL")
    assert SECRET not in line  # the URL may carry a password: never echoed


@pytest.mark.parametrize(
    "variable", ["GRADESTREAM_REDIS_TLS_CA_FILE", "GRADESTREAM_KAFKA_SSL_CA_FILE"]
)
def test_a_missing_ca_file(tmp_path: Path, variable: str) -> None:
    line = refusal(worker(tmp_path, **{variable: str(tmp_path / "missing-ca.pem")}))
    assert line == f"settings refused: {variable}: Path does not point to a file"


def test_a_bad_value_names_the_variable_not_the_field(tmp_path: Path) -> None:
    line = refusal(worker(tmp_path, GRADESTREAM_CLOCK="sundial"))
    assert line == "settings refused: GRADESTREAM_CLOCK: Input should be 'wall' or 'event'"


def test_every_bad_variable_is_named_on_the_one_line(tmp_path: Path) -> None:
    line = refusal(worker(tmp_path, GRADESTREAM_CLOCK="sundial", GRADESTREAM_WEB_PORT="70000"))
    assert "GRADESTREAM_CLOCK: " in line
    assert "; GRADESTREAM_WEB_PORT: Input should be less than or equal to 65535" in line


def test_a_missing_or_hostile_policy(tmp_path: Path) -> None:
    line = refusal(worker(tmp_path, GRADESTREAM_POLICY=str(tmp_path / "missing.toml")))
    assert line == "settings refused: GRADESTREAM_POLICY: Path does not point to a file"
    default = REPO / "streams" / "policies" / "default.toml"
    hostile = tmp_path / "gold-inf.toml"
    hostile.write_text(default.read_text().replace("min_spend = 80000.0", "min_spend = inf"))
    line = refusal(worker(tmp_path, GRADESTREAM_POLICY=str(hostile)))
    assert line.startswith("settings refused: GRADESTREAM_POLICY: ")
    assert "tiers.ladder[3].min_spend: Input should be a finite number" in line


def test_a_misspelt_variable_is_named_in_a_warning(tmp_path: Path) -> None:
    # A bad clock too, so that the worker stops right after its checks.
    result = worker(tmp_path, GRADESTREAM_CLOK="bogus", GRADESTREAM_PARTITIONS="0")
    warning, error = result.stderr.splitlines()
    assert warning == (
        "warning: GRADESTREAM_CLOK is not a gradestream setting and is ignored "
        "(did you mean GRADESTREAM_CLOCK?)"
    )
    assert error.startswith("settings refused: GRADESTREAM_PARTITIONS: ")


def test_unknown_variables() -> None:
    names = [
        "GRADESTREAM_CLOK",
        "gradestream_web_host",  # pydantic-settings reads names in any case
        "GRADESTREAM_SCHEMAS_DIR",  # read by streams.contracts
        "GRADESTREAM_TOPICS_REPLICATION_FACTOR",  # read by `topics create`
        "GRADESTREAM_ZZZ",
        "HOME",
    ]
    assert unknown_variables(names) == [
        "GRADESTREAM_CLOK is not a gradestream setting and is ignored "
        "(did you mean GRADESTREAM_CLOCK?)",
        "GRADESTREAM_ZZZ is not a gradestream setting and is ignored",
    ]


def test_load_settings_resolves_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRADESTREAM_DATADIR", ".local/worker")  # relative: to the cwd
    settings = load_settings()
    assert settings.datadir == tmp_path.resolve() / ".local" / "worker"
    assert not settings.datadir.exists()  # reading settings makes no folder
    monkeypatch.setenv("GRADESTREAM_REDIS_URL", f"redis//:{SECRET}@host")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith("GRADESTREAM_REDIS_URL: not a Redis URL")
    assert SECRET not in str(caught.value)
