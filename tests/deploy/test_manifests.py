"""deploy/validate.py (run by `make lint`): the real files pass, and broken copies are caught."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_validate", DEPLOY / "validate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validate = _load()


def test_the_committed_deployment_files_are_valid() -> None:
    assert validate.main() == 0


def _compose_copy(tmp_path: Path, edit: str, replacement: str) -> Path:
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert edit in text
    path = tmp_path / "docker-compose.yml"
    path.write_text(text.replace(edit, replacement, 1))
    return path


@pytest.mark.parametrize(
    ("edit", "replacement", "expected"),
    [
        ('    restart: "no"', '    restartt: "no"', "/services/topics: 'restartt'"),
        ("worker-2-data:/data", "worker-1-data:/data", "shares the data volume 'worker-1-data'"),
        ("GRADESTREAM_PARTITIONS:", "GRADESTREAM_PARTITION:", "GRADESTREAM_PARTITION is not"),
        ("GRADESTREAM_WEB_HOST: worker-2", "GRADESTREAM_WEB_HOST: localhost", "must be 'worker-2'"),
    ],
)
def test_compose_mistakes_are_caught(
    tmp_path: Path, edit: str, replacement: str, expected: str
) -> None:
    problems = validate.check_compose(_compose_copy(tmp_path, edit, replacement))
    assert any(expected in p for p in problems), problems


def test_a_dashboard_querying_an_unknown_metric_is_caught(tmp_path: Path) -> None:
    text = (DEPLOY / "grafana/dashboards/gradestream.json").read_text()
    (tmp_path / "d.json").write_text(text.replace("gradestream_consumer_lag", "gradestream_lagg"))
    problems = validate.check_grafana(tmp_path)
    assert any("gradestream_lagg" in p for p in problems), problems
    assert "gradestream_events_in_total" in validate.exported_metrics()


@pytest.fixture
def k8s(tmp_path: Path) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(DEPLOY / "k8s", copy)
    assert validate.check_kustomize(copy) == []
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_k8s_schema_is_strict(k8s: Path) -> None:
    _edit(k8s / "statefulset.yaml", "  replicas: 2", "  replica: 2")
    problems = validate.check_kustomize(k8s)
    assert any("statefulset.yaml" in p and "replica" in p for p in problems), problems


def test_k8s_unlisted_and_missing_resources(k8s: Path) -> None:
    (k8s / "extra.yaml").write_text((k8s / "service-http.yaml").read_text())
    _edit(k8s / "kustomization.yaml", "  - job-topics.yaml", "  - job-topic.yaml")
    problems = validate.check_kustomize(k8s)
    assert "kustomization.yaml: extra.yaml is not listed in resources" in problems
    assert "kustomization.yaml: resource job-topic.yaml does not exist" in problems
    assert "kustomization.yaml: job-topics.yaml is not listed in resources" in problems


def test_k8s_references_are_checked(k8s: Path) -> None:
    _edit(k8s / "poddisruptionbudget.yaml", "component: worker", "component: wrker")
    _edit(k8s / "statefulset.yaml", "path: /health/grading\n", "path: /health\n")
    _edit(k8s / "statefulset.yaml", "name: gradestream-policy", "name: gradestream-polcy")
    _edit(k8s / "statefulset.yaml", "GRADESTREAM_REDIS_PASSWORD", "GRADESTREAM_REDIS_PASSWD")
    problems = validate.check_kustomize(k8s)
    text = "\n".join(problems)
    assert "PodDisruptionBudget gradestream: selector" in text
    assert "does not probe /health/grading" in text
    assert "ConfigMap 'gradestream-polcy' is not generated" in text
    assert "GRADESTREAM_REDIS_PASSWD is not a gradestream setting" in text


def test_k8s_policy_file_must_be_a_valid_policy(k8s: Path) -> None:
    _edit(k8s / "policy.toml", "downgrade_grace_days = 30", "downgrade_grace_dayz = 30")
    problems = validate.check_kustomize(k8s)
    assert any("tiers.downgrade_grace_dayz" in p for p in problems), problems


def test_k8s_worker_wiring() -> None:
    """What Issue 7 asks of the base, read from the manifests."""
    sts = yaml.safe_load((DEPLOY / "k8s/statefulset.yaml").read_text())
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["GRADESTREAM_WEB_HOST"]["value"].startswith("$(POD_NAME).gradestream-headless.")
    assert env["GRADESTREAM_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
    assert env["GRADESTREAM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
    assert env["GRADESTREAM_POLICY"]["value"] == "/etc/gradestream/policy.toml"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    job = yaml.safe_load((DEPLOY / "k8s/job-topics.yaml").read_text())
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]
