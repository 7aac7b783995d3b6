"""Validate the deployment files without a Docker engine or a cluster (run by `make lint`).

    .venv/bin/python deploy/validate.py          # exit 1, listing every problem, if any

- deploy/docker-compose.yml against the Compose Specification's JSON Schema, as vendored
  by check-jsonschema (PyPI); then gradestream's own rules: every GRADESTREAM_* variable
  is a real setting, each worker has a data volume of its own and its service name as web
  host, Prometheus scrapes every worker.
- deploy/grafana: the dashboard is JSON and every gradestream_* metric it queries exists
  in streams/app/metrics.py.
- deploy/k8s: each resource against the Kubernetes OpenAPI schemas in strict mode (unknown
  fields refused), as vendored by kubernetes-validate (PyPI), for K8S_VERSION. Kustomize
  itself is not run (it is not on PyPI), so its kustomization.yaml is checked
  structurally: listed files exist, every manifest is listed, generator files exist; and
  the references between resources hold: the StatefulSet's serviceName is a headless
  Service, Service and PodDisruptionBudget selectors match the worker pods, ConfigMaps
  used are generated, probes name a declared port, env names are settings, the policy
  file is a valid policy.

Nothing here reaches the network: the schemas come from the installed packages.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from streams.core.errors import PolicyError
from streams.core.policy import load_policy
from streams.settings import unknown_variables

DEPLOY = Path(__file__).resolve().parent
K8S_VERSION = "1.31.0"
WORKER_PORT = 6066


def setting_problem(name: str) -> str | None:
    """Why an environment variable named GRADESTREAM_* is not a setting, or None: the
    worker's own start-up warning (streams.settings), so both know the same names."""
    problems = unknown_variables([name])
    return f"{problems[0]} (streams/settings.py)" if problems else None


# -- Docker Compose ---------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text("utf-8"))
    return schema


def check_compose(path: Path) -> list[str]:
    where = path.name
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    # The vendored schema names draft-07 as "https://json-schema.org/draft-07/schema",
    # a spelling jsonschema does not look up: say which draft it is.
    validator = jsonschema.Draft7Validator(compose_schema())
    problems = [
        f"{where}: /{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        return problems
    services: dict[str, Any] = doc.get("services", {})
    workers = {
        name: service
        for name, service in services.items()
        if service.get("command", ["worker"])[0] == "worker" and "build" in service
    }
    if len(workers) < 2:
        problems.append(f"{where}: expected at least two worker services, found {list(workers)}")
    data_volumes: dict[str, str] = {}
    app_ids = set()
    for name, service in services.items():
        env = service.get("environment") or {}
        for variable in env:
            if problem := setting_problem(variable):
                problems.append(f"{where}: services.{name}.environment: {problem}")
    for name, service in workers.items():
        env = service.get("environment") or {}
        app_ids.add(env.get("GRADESTREAM_APP_ID", "gradestream"))
        if env.get("GRADESTREAM_WEB_HOST") != name:
            problems.append(
                f"{where}: services.{name}: GRADESTREAM_WEB_HOST must be {name!r}, the name "
                "other workers forward customer lookups to"
            )
        volumes = [v for v in service.get("volumes", []) if str(v).endswith(":/data")]
        if not volumes:
            problems.append(f"{where}: services.{name}: no volume mounted at /data (RocksDB)")
        for volume in volumes:
            source = str(volume).split(":")[0]
            if source in data_volumes:
                problems.append(
                    f"{where}: services.{name} shares the data volume {source!r} with "
                    f"{data_volumes[source]}: each worker needs its own"
                )
            data_volumes[source] = name
    if len(app_ids) > 1:
        problems.append(f"{where}: workers have different GRADESTREAM_APP_IDs {sorted(app_ids)}")
    problems += check_prometheus(DEPLOY / "prometheus" / "prometheus.yml", set(workers))
    return problems


def check_prometheus(path: Path, workers: set[str]) -> list[str]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    targets = {
        target
        for job in doc.get("scrape_configs", [])
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    }
    wanted = {f"{worker}:{WORKER_PORT}" for worker in workers}
    return [f"prometheus.yml: does not scrape {t}" for t in sorted(wanted - targets)]


def exported_metrics() -> set[str]:
    """Every sample name the worker's metrics (streams/app/metrics.py) can export."""
    from prometheus_client.metrics import MetricWrapperBase

    from streams.app import metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for described in value.describe():
                for suffix in suffixes.get(described.type, ("",)):
                    names.add(described.name + suffix)
    return names


def check_grafana(dashboards: Path) -> list[str]:
    known = exported_metrics()
    problems = []
    files = sorted(dashboards.glob("*.json"))
    if not files:
        problems.append(f"{dashboards}: no dashboard")
    for file in files:
        try:
            dashboard = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            problems.append(f"{file.name}: not JSON: {err}")
            continue
        for panel in dashboard.get("panels", []):
            for target in panel.get("targets", []):
                for metric in re.findall(r"\bgradestream_[a-z_]+", target.get("expr", "")):
                    if metric not in known:
                        problems.append(
                            f"{file.name}: panel {panel.get('title')!r} queries {metric}, "
                            "which the worker does not export"
                        )
    return problems


# -- Kubernetes -------------------------------------------------------------------------


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_kustomize(directory: Path, version: str = K8S_VERSION) -> list[str]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    problems: list[str] = []
    listed: list[str] = kustomization.get("resources", [])
    for name in listed:
        if not (directory / name).is_file():
            problems.append(f"kustomization.yaml: resource {name} does not exist")
    manifests = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    for name in sorted(manifests - set(listed)):
        problems.append(f"kustomization.yaml: {name} is not listed in resources")

    generated: dict[str, dict[str, Any]] = {}
    for generator in kustomization.get("configMapGenerator", []):
        generated[generator["name"]] = generator
        for file in generator.get("files", []):
            source = file.split("=", 1)[-1]
            if not (directory / source).is_file():
                problems.append(f"kustomization.yaml: {generator['name']}: no file {source}")
            elif source.endswith((".toml", ".yaml", ".yml")) and "policy" in generator["name"]:
                try:
                    load_policy(directory / source)
                except PolicyError as err:
                    problems.append(f"{source}: {err}")
        for literal in generator.get("literals", []):
            if problem := setting_problem(literal.split("=", 1)[0]):
                problems.append(f"kustomization.yaml: {generator['name']}: {problem}")

    documents: list[tuple[str, dict[str, Any]]] = []
    for name in listed:
        if not (directory / name).is_file():
            continue
        for doc in yaml.safe_load_all((directory / name).read_text(encoding="utf-8")):
            if doc is None:
                continue
            documents.append((name, doc))
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except jsonschema.ValidationError as err:
                field = ".".join(str(p) for p in err.absolute_path)
                problems.append(f"{name}: {field}: {err.message}")
            except kubernetes_validate.SchemaNotFoundError as err:
                problems.append(f"{name}: {err.message}")
    problems += _check_references(documents, generated)
    return problems


def _check_references(
    documents: list[tuple[str, dict[str, Any]]], generated: Mapping[str, Any]
) -> list[str]:
    problems: list[str] = []
    by_kind: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, doc in documents:
        by_kind.setdefault(doc.get("kind", ""), []).append((name, doc))
    services = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("Service", [])}
    configmaps = set(generated) | {d["metadata"]["name"] for _, d in by_kind.get("ConfigMap", [])}

    statefulsets = by_kind.get("StatefulSet", [])
    if not statefulsets:
        problems.append("no StatefulSet (the workers)")
    pod_labels: list[dict[str, str]] = []
    for file, sts in statefulsets:
        spec = sts["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        pod_labels.append(labels)
        service = services.get(spec.get("serviceName", ""))
        if service is None or service["spec"].get("clusterIP") != "None":
            problems.append(
                f"{file}: serviceName {spec.get('serviceName')!r} is no headless Service"
            )
        claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
        for container in spec["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            datadir = env.get("GRADESTREAM_DATADIR", {}).get("value")
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            if datadir is None or mounts.get(datadir) not in claims:
                problems.append(
                    f"{file}: GRADESTREAM_DATADIR ({datadir}) is not a volumeClaimTemplate mount"
                )
            if "GRADESTREAM_WEB_HOST" not in env:
                problems.append(f"{file}: no GRADESTREAM_WEB_HOST (the pod's canonical URL host)")
    for _, doc in [*by_kind.get("Service", []), *by_kind.get("PodDisruptionBudget", [])]:
        selector = doc["spec"].get("selector", {})
        selector = selector.get("matchLabels", selector)
        if not any(_matches(selector, labels) for labels in pod_labels):
            kind, name = doc["kind"], doc["metadata"]["name"]
            problems.append(f"{kind} {name}: selector {selector} matches no worker pod")

    for file, doc in documents:
        for path, node in _walk(doc):
            if not isinstance(node, Mapping):
                continue
            if path.endswith(("configMapRef", "configMap")) and node.get("name") not in configmaps:
                problems.append(f"{file}: {path}: ConfigMap {node.get('name')!r} is not generated")
            variable = node.get("name") if re.search(r"\.env\[\d+\]$", path) else None
            if isinstance(variable, str) and (problem := setting_problem(variable)):
                problems.append(f"{file}: {path}: {problem}")
            if re.search(r"containers\[\d+\]$", path):
                ports = {p.get("name") for p in node.get("ports", [])}
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    get = node.get(probe, {}).get("httpGet")
                    if get is None:
                        continue
                    # Grading alone: /health is 503 while Redis is down, and a probe on it
                    # would restart every worker through a Redis outage.
                    if get.get("path") != "/health/grading":
                        problems.append(f"{file}: {path}.{probe} does not probe /health/grading")
                    if isinstance(get.get("port"), str) and get["port"] not in ports:
                        problems.append(f"{file}: {path}.{probe}: no port named {get['port']}")
    return problems


def main() -> int:
    problems = check_compose(DEPLOY / "docker-compose.yml")
    problems += check_grafana(DEPLOY / "grafana" / "dashboards")
    problems += check_kustomize(DEPLOY / "k8s")
    for problem in problems:
        print(f"deploy: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        "deploy: docker-compose.yml (compose-spec), grafana dashboards, "
        f"k8s (Kubernetes {K8S_VERSION}, strict) are valid"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
