"""deploy/k8s/ validates against the Kubernetes 1.37 schemas (kubernetes-validate, offline)
and has what ops rely on: probes, requests, HPA within the partitions, PDBs, the Job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.topics import all_topics

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SERVICES = {"registration": 8001, "notification": 8002, "resolutions": 8003, "webhooks": 8006}
VERSION = "1.37.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == kind}


@pytest.mark.parametrize(("name", "doc"), documents(), ids=lambda x: str(x)[:40])
def test_manifest_validates_against_the_kubernetes_schema(name, doc) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    bad = dict(by_kind("Deployment")["mkutano-registration"])
    bad = yaml.safe_load(yaml.safe_dump(bad))
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8001"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kust["resources"]) == files


def test_each_service_has_probes_requests_service_hpa_and_pdb() -> None:
    deployments, services = by_kind("Deployment"), by_kind("Service")
    hpas, pdbs = by_kind("HorizontalPodAutoscaler"), by_kind("PodDisruptionBudget")
    partitions = max(t.partitions for t in all_topics())
    for svc, port in SERVICES.items():
        name = f"mkutano-{svc}"
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["ports"][0]["containerPort"] == port
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        refs = {next(iter(e.values()))["name"] for e in container["envFrom"]}
        assert refs == {"mkutano-config", "mkutano-secrets"}
        assert (
            services[name]["spec"]["selector"]
            == deployments[name]["spec"]["selector"]["matchLabels"]
        )
        assert 1 <= hpas[name]["spec"]["minReplicas"] <= hpas[name]["spec"]["maxReplicas"]
        assert hpas[name]["spec"]["maxReplicas"] <= partitions
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == services[name]["spec"]["selector"]


def test_topics_job_and_no_real_secret_committed() -> None:
    (job,) = by_kind("Job").values()
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["python", "-m", "deploy.topics_job"]
    (secret,) = by_kind("Secret").values()
    assert all("REPLACE" in v for v in secret["stringData"].values())
    config = by_kind("ConfigMap")["mkutano-config"]["data"]
    assert config["MKUTANO_ENV"] == "production" and config["OTEL_TRACES_EXPORTER"] == "none"
    assert "OTEL_EXPORTER" not in config  # the standard names only
    for svc in SERVICES:
        assert f"{svc.upper()}_MONGO_URL" in secret["stringData"]
