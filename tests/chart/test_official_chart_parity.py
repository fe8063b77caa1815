"""Our chart held against the official chart v0.6.0 that users upgrade from.

The facts (tests/chart/official_v0_6_0, see its README) are what the official chart renders; these
tests render ours from the same inputs and compare. Every difference is named below with its
reason, and the tests fail on any other difference and on a named difference that no longer
exists. docs/migration.md lists the same differences with the values restoring the old behaviour.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from helm import ChartUnderTest

OFFICIAL = Path(__file__).resolve().parent / "official_v0_6_0"
PLACEHOLDER = "__ACK_REGION_ID__"
MARKETPLACE_REGION = "cn-hangzhou"
KUBE_VERSION = "1.31.0"  # the facts' --kube-version
DS = "DaemonSet/csi-secrets-store-provider-alibabacloud"
CTR = f"{DS}.pod.containers[provider-alibabacloud-installer]"
DRIVER = "secrets-store-csi-driver"
ABSENT = "<absent>"
ANY = object()  # an expected value that is ours by nature (our image, our versions)

LABELLED = [f"{obj}.labels" for obj in (
    DS, "ServiceAccount/csi-secrets-store-provider-alibabacloud",
    "ClusterRole/csi-secrets-store-provider-alibabacloud",
    "ClusterRoleBinding/csi-secrets-store-provider-alibabacloud-binding",
)] + [f"{DS}.pod.template_labels"]

# Differences in every render: path -> (our value, reason).
COMMON: dict[str, tuple[Any, str]] = {
    # Versions: another chart and application.
    **{
        f"{where}[{label}]": (ANY, reason)
        for where in LABELLED
        for label, reason in (("app.kubernetes.io/version", "our appVersion"),
                              ("helm.sh/chart", "our chart version (1.0.0 sorts above 0.6.0)"))
    },
    # RBAC.
    "ClusterRole/csi-secrets-store-provider-alibabacloud.rules": (
        ANY, "Events on pods for rotations and failed republishes (events.enabled); `get` nodes "
        "only while no regionId is set, for the node's region label"),
    # Scheduling.
    f"{DS}.pod.priorityClassName": (
        "system-node-critical", "a node agent that pods need to start (linux.priorityClassName)"),
    f"{DS}.pod.tolerations": (
        [{"operator": "Exists"}], "run wherever the driver runs, which tolerates every taint "
        "(linux.tolerations)"),
    f"{DS}.pod.template_annotations": (
        {"prometheus.io/scrape": "true", "prometheus.io/port": "8990",
         "prometheus.io/path": "/metrics"}, "new metrics endpoint (metrics.scrapeAnnotations)"),
    # Hardening.
    f"{DS}.pod.securityContext": (
        {"seccompProfile": {"type": "RuntimeDefault"}}, "the runtime's default seccomp profile"),
    f"{CTR}.securityContext.privileged": (False, "explicit; the official default was false too"),
    f"{CTR}.securityContext.runAsGroup": (0, "linux.runAsGroup"),
    f"{CTR}.securityContext.runAsNonRoot": (False, "follows linux.runAsUser"),
    f"{DS}.pod.volumes.tmp": (
        ABSENT, "the provider writes no files (the Go provider left pod tokens there); "
        "linux.tmpSizeLimit: 10Mi restores it"),
    f"{CTR}.volumeMounts.tmp": (ABSENT, "see pod.volumes.tmp"),
    f"{DS}.pod.volumes[provider-vol].hostPath.type": (
        "DirectoryOrCreate", "the socket directory is created when missing"),
    # The container.
    f"{CTR}.image": (ANY, "this provider's image, not the Go one"),
    f"{CTR}.imagePullPolicy": (
        "IfNotPresent", "a versioned tag never changes; restarts work while the registry is "
        "unreachable (linux.image.pullPolicy: Always restores it)"),
    f"{CTR}.resources.limits.cpu": (
        "500m", "start-up and cold mounts are CPU bursts a 100m quota stretches into seconds"),
    f"{CTR}.readinessProbe": (ANY, "new /readyz endpoint"),
    f"{CTR}.ports.healthz": (
        {"containerPort": 8989, "protocol": "TCP"}, "named health port (linux.healthzPort)"),
    f"{CTR}.ports.metrics": (
        {"containerPort": 8990, "protocol": "TCP"}, "new metrics endpoint (metrics.port)"),
    f"{CTR}.env.NODE_NAME": (ANY, "Events and the node's region label need the node name"),
    f"{CTR}.env.POD_IP": (ANY, "the address health and metrics bind on the host network"),
    **{f"{CTR}.args[{flag}]": (value, reason) for flag, value, reason in [
        ("--log-format", "text", "logFormat"),
        ("--healthz-addr", "$(POD_IP)", "on the host network, bind the node's pod IP, not every "
                                        "node address"),
        ("--metrics-port", "8990", "new metrics endpoint (metrics.port)"),
        ("--metrics-addr", "$(POD_IP)", "see --healthz-addr"),
        ("--max-concurrent-kms-secret-pulls", "10", "the Go binary's default, now explicit"),
        ("--max-concurrent-oos-secret-pulls", "10", "the Go binary's default, now explicit"),
        ("--max-call-recv-msg-size", "4194304", "the driver's response limit, from the same "
                                                "value (secrets-store-csi-driver."
                                                "maxCallRecvMsgSize)"),
        ("--cache-ttl", "60s", "value cache (cache.ttl; 0 turns it off)"),
        ("--events", True, "Kubernetes Events (events.enabled)"),
    ]},
}
# Only while regionId is the unreplaced placeholder: no region rather than a bogus one (the
# provider then uses the node's region).
PLACEHOLDER_REGION = {
    f"{CTR}.args[--region]": (ABSENT, "the unreplaced __ACK_REGION_ID__ is not a region"),
}
# Provider RRSA (the rrsa seed file).
RRSA = {
    f"{CTR}.args[--rrsa-token-file]": (
        "/var/run/secrets/tokens/csi-secrets-store-provider-alibabacloud",
        "the token path, explicit (it is the provider's default)"),
    f"{CTR}.volumeMounts[csi-secrets-store-provider-alibabacloud].readOnly": (
        True, "the token volume is mounted read-only"),
}

RENDERS: dict[str, tuple[str, dict[str, tuple[Any, str]]]] = {
    # name: (facts file, differences)
    "default": ("default", {**COMMON, **PLACEHOLDER_REGION}),
    "ak": ("ak", {**COMMON, **PLACEHOLDER_REGION}),
    "rrsa": ("rrsa", {**COMMON, **PLACEHOLDER_REGION, **RRSA}),
    "marketplace": ("default", COMMON),
}

# Fields of our provider pod that the facts do not record: field -> reason.
POD_FIELDS_OUTSIDE_THE_FACTS = {
    "enableServiceLinks": "false: no Service variables in the environment of a node agent",
}

# Values we add to the official ones (the official chart had no schema, so these are new keys
# only), each with why. Official keys keep their names and meaning.
ADDED_VALUES: dict[str, str] = {
    "nameOverride": "documented by the official README, missing from its values.yaml",
    "fullnameOverride": "documented by the official README, missing from its values.yaml",
    "logFormat": "text or JSON logs",
    "logFormatJSON": "documented by the official README (no effect there); JSON logs here",
    "serviceAccount": "read by the official helpers; accepted, without effect as there",
    "envVarsFromSecret": "official (commented out in its values.yaml); here with a default {}",
    "rateLimits": "the Go provider's --max-concurrent-*-secret-pulls, now settable",
    "fetchConcurrency": "parallel fetch of a mount's objects",
    "cache": "value cache",
    "limits": "bounds on what a Mount request may make the provider do (docs/security.md)",
    "providerIdentity": "restrict provider-level identities to namespaces",
    "allowedEndpointSuffixes": "domains a pod's endpoint fields may name",
    "kmsCaBundle": "CA bundle for dedicated KMS gateways",
    "stsEndpoint": "STS endpoint",
    "disableImdsV1": "refuse the metadata service's v1 protocol",
    "endpointOverrides": "proxies and air-gapped setups",
    "metrics": "Prometheus metrics, monitors, alerts and dashboard",
    "networkPolicy": "an optional NetworkPolicy for the provider pods",
    "events": "Kubernetes Events",
    "linux.hostNetwork": "the official chart always used the host network; false opts out",
    "linux.dnsPolicy": "cluster DNS on the host network when endpointOverrides need it",
    "linux.runAsUser": "non-root when the socket directory allows it",
    "linux.runAsGroup": "see linux.runAsUser",
    "linux.tmpSizeLimit": "an optional /tmp (the official chart always mounted 10Mi)",
}
# Official defaults we changed: key -> (our default, reason). Same reasons as in RENDERS.
CHANGED_DEFAULTS: dict[str, tuple[Any, str]] = {
    "linux.image.repository": (ANY, "this provider's image"),
    "linux.image.tag": ("", "the chart's appVersion"),
    "linux.image.pullPolicy": ("IfNotPresent", "see the DaemonSet difference"),
    "linux.tolerations": ([{"operator": "Exists"}], "see the DaemonSet difference"),
    "linux.resources.limits.cpu": ("500m", "see the DaemonSet difference"),
    "linux.priorityClassName": ("system-node-critical", "see the DaemonSet difference"),
}


# ---- the facts and our renders in one comparable form ----

def _facts(name: str, region: str | None = None) -> list[dict[str, Any]]:
    text = (OFFICIAL / f"render-{name}.facts.yaml").read_text()
    if region:
        text = text.replace(PLACEHOLDER, region)
    facts: list[dict[str, Any]] = yaml.safe_load(text)
    return facts


def _official_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = yaml.safe_load((OFFICIAL / "values-defaults.facts.yaml").read_text())
    return defaults


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key paths to leaves, as values-defaults.facts.yaml writes them."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _pod(template: dict[str, Any]) -> dict[str, Any]:
    """The pod fields the facts record, from a rendered pod template."""
    meta, spec = template.get("metadata") or {}, template["spec"]
    keys = ("name", "image", "imagePullPolicy", "args", "env", "ports", "volumeMounts",
            "resources", "securityContext", "livenessProbe", "readinessProbe")
    return {
        "template_labels": meta.get("labels"),
        "template_annotations": meta.get("annotations"),
        "hostNetwork": spec.get("hostNetwork", False),
        "dnsPolicy": spec.get("dnsPolicy"),
        "serviceAccountName": spec.get("serviceAccountName"),
        "priorityClassName": spec.get("priorityClassName"),
        "nodeSelector": spec.get("nodeSelector"),
        "tolerations": spec.get("tolerations"),
        "affinity": spec.get("affinity"),
        "securityContext": spec.get("securityContext"),
        "volumes": spec.get("volumes"),
        "containers": [{k: c[k] for k in keys if k in c} for c in spec["containers"]],
    }


def _shape(obj: dict[str, Any]) -> dict[str, Any]:
    """A rendered object in the facts' form."""
    meta = obj["metadata"]
    shaped: dict[str, Any] = {
        "kind": obj["kind"], "name": meta["name"], "namespace": meta.get("namespace"),
        "labels": meta.get("labels"), "annotations": meta.get("annotations"),
    }
    if obj["kind"] == "ClusterRole":
        shaped["rules"] = obj["rules"]
    if obj["kind"] == "ClusterRoleBinding":
        shaped.update(roleRef=obj["roleRef"], subjects=obj["subjects"])
    if obj["kind"] == "DaemonSet":
        shaped.update(selector=obj["spec"]["selector"],
                      updateStrategy=obj["spec"]["updateStrategy"],
                      pod=_pod(obj["spec"]["template"]))
    return shaped


_NAMED_LISTS = {"containers", "volumes", "env", "volumeMounts", "ports"}


def _comparable(node: Any, key: str = "") -> Any:
    """Named lists become maps by name and args a map of flags, so order does not count and a
    difference is reported at the entry that differs."""
    if isinstance(node, dict):
        if key == "containers[]":  # a container's absent lists compare as empty
            node = {"env": [], "ports": [], **node}
        return {k: _comparable(v, k) for k, v in node.items()}
    if isinstance(node, list) and key in _NAMED_LISTS:
        return {item["name"]: _comparable({k: v for k, v in item.items() if k != "name"},
                                          f"{key}[]")
                for item in node}
    if isinstance(node, list) and key == "args":
        flags: dict[str, Any] = {}
        for arg in node:
            flag, sep, value = arg.partition("=")
            flags[flag] = value if sep else True
        return flags
    return node


def _join(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_]\w*", key) else f"{path}[{key}]"


def _diff(official: Any, ours: Any, path: str, out: dict[str, tuple[Any, Any]]) -> None:
    if official == ours:
        return
    if isinstance(official, dict) and isinstance(ours, dict):
        for key in sorted(set(official) | set(ours)):
            _diff(official.get(key, ABSENT), ours.get(key, ABSENT), _join(path, key), out)
        return
    out[path] = (official, ours)


def _by_object(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {f"{o['kind']}/{o['name']}": _comparable(o) for o in objects}


def _made_by(obj: dict[str, Any], chart_name: str) -> bool:
    return bool(obj["labels"]["app.kubernetes.io/name"] == chart_name)


def _provider_facts(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in facts if _made_by(o, "csi-secrets-store-provider-alibabacloud")]


def _differences(chart: ChartUnderTest, render: str, seed_values: dict[str, Path],
                 values: dict[str, Any] | None = None) -> dict[str, tuple[Any, Any]]:
    facts_name, _allowed = RENDERS[render]
    if render == "marketplace":
        facts = _facts(facts_name, MARKETPLACE_REGION)
        files = [chart.region_values(MARKETPLACE_REGION)]
    else:
        facts = _facts(facts_name)
        files = [seed_values[render]] if render in seed_values else []
    ours = chart.template(files, values, kube_version=KUBE_VERSION).objects
    diff: dict[str, tuple[Any, Any]] = {}
    _diff(_by_object(_provider_facts(facts)), _by_object([_shape(o) for o in ours]), "", diff)
    return diff


# ---- the provider's objects ----

@pytest.mark.parametrize("render", sorted(RENDERS))
def test_provider_objects_differ_only_as_documented(
    chart: ChartUnderTest, seed_values: dict[str, Path], render: str
) -> None:
    allowed = RENDERS[render][1]
    found = _differences(chart, render, seed_values)
    unexplained = {p: d for p, d in found.items() if p not in allowed}
    assert not unexplained, f"differences from the official chart without a reason: {unexplained}"
    stale = sorted(set(allowed) - set(found))
    assert not stale, f"named differences that no longer exist (remove them): {stale}"
    for path, (expected, _reason) in allowed.items():
        if expected is not ANY:
            assert found[path][1] == expected, (path, found[path])


def test_the_comparison_sees_a_change(
    chart: ChartUnderTest, seed_values: dict[str, Path]
) -> None:
    # Guards the comparison itself: an extra pod label is an unexplained difference, and the
    # official priority class restored makes a named difference disappear.
    found = _differences(chart, "default", seed_values, {"linux": {
        "podLabels": {"team": "payments"}, "priorityClassName": ""}})
    assert found[f"{DS}.pod.template_labels.team"] == (ABSENT, "payments")
    assert f"{DS}.pod.priorityClassName" not in found
    assert set(found) - set(RENDERS["default"][1]) == {f"{DS}.pod.template_labels.team"}


# Values that docs/migration.md says restore the official behaviour: (values, as the page writes
# them, the differences that then vanish).
RESTORING: list[tuple[dict[str, Any], str, list[str]]] = [
    ({"linux": {"image": {"pullPolicy": "Always"}}}, "`linux.image.pullPolicy: Always`",
     [f"{CTR}.imagePullPolicy"]),
    ({"linux": {"tolerations": []}}, "`linux.tolerations: []`", [f"{DS}.pod.tolerations"]),
    ({"linux": {"priorityClassName": ""}}, '`linux.priorityClassName: ""`',
     [f"{DS}.pod.priorityClassName"]),
    ({"linux": {"resources": {"limits": {"cpu": "100m"}}}}, "`linux.resources.limits.cpu: 100m`",
     [f"{CTR}.resources.limits.cpu"]),
    ({"linux": {"tmpSizeLimit": "10Mi"}}, "`linux.tmpSizeLimit: 10Mi`",
     [f"{DS}.pod.volumes.tmp", f"{CTR}.volumeMounts.tmp"]),
    ({"metrics": {"scrapeAnnotations": False}}, "`metrics.scrapeAnnotations: false`",
     [f"{DS}.pod.template_annotations"]),
]


@pytest.mark.parametrize(("values", "written", "vanish"), RESTORING,
                         ids=[written for _values, written, _vanish in RESTORING])
def test_the_documented_values_restore_the_official_behaviour(
    chart: ChartUnderTest, seed_values: dict[str, Path],
    values: dict[str, Any], written: str, vanish: list[str],
) -> None:
    migration = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text()
    assert written in migration
    found = _differences(chart, "default", seed_values, values)
    assert not set(vanish) & set(found)
    assert set(found) <= set(RENDERS["default"][1])  # and nothing new appears


def test_what_an_upgrade_must_keep(chart: ChartUnderTest) -> None:
    # The immutable selector, names, the host network and the container name, explicitly (the
    # comparison above would also catch them, this says why they matter).
    facts = {f"{o['kind']}/{o['name']}": o for o in _facts("default")}
    ours = {f"{o['kind']}/{o['metadata']['name']}": o for o in chart.template().objects}
    assert set(_by_object(_provider_facts(_facts("default")))) == set(ours)
    daemonset = ours[DS]
    assert daemonset["spec"]["selector"] == facts[DS]["selector"]
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and "dnsPolicy" not in pod
    assert pod["serviceAccountName"] == facts[DS]["pod"]["serviceAccountName"]
    assert [c["name"] for c in pod["containers"]] == ["provider-alibabacloud-installer"]
    # Pod fields outside what the facts record, each named.
    recorded = {"hostNetwork", "dnsPolicy", "serviceAccountName", "priorityClassName",
                "nodeSelector", "tolerations", "affinity", "securityContext", "volumes",
                "containers"}
    assert set(pod) - recorded == set(POD_FIELDS_OUTSIDE_THE_FACTS)


def test_a_region_is_passed_as_before(chart: ChartUnderTest) -> None:
    container = chart.template([chart.region_values("cn-beijing")]).one("DaemonSet")[
        "spec"]["template"]["spec"]["containers"][0]
    assert "--region=cn-beijing" in container["args"]
    [official] = [o for o in _facts("default", "cn-beijing") if o["name"] == DS.split("/")[1]
                  and o["kind"] == "DaemonSet"]
    assert "--region=cn-beijing" in official["pod"]["containers"][0]["args"]


# ---- values ----

def test_every_official_value_keeps_its_default(helm_lib: ModuleType) -> None:
    ours = _flatten(yaml.safe_load((helm_lib.CHART_DIR / "values.yaml").read_text()))
    changed: dict[str, tuple[Any, Any]] = {}
    for key, official in _official_defaults().items():
        assert key in ours, f"official value {key} is missing from values.yaml"
        if ours[key] != official:
            changed[key] = (official, ours[key])
    assert set(changed) == set(CHANGED_DEFAULTS), changed
    for key, (expected, _reason) in CHANGED_DEFAULTS.items():
        assert expected is ANY or changed[key][1] == expected, (key, changed[key])


def test_added_values_are_named(helm_lib: ModuleType) -> None:
    ours = yaml.safe_load((helm_lib.CHART_DIR / "values.yaml").read_text())
    official = _nest(_official_defaults())
    added = {key for key in ours if key not in official}
    added |= {f"linux.{key}" for key in ours["linux"] if key not in official["linux"]}
    assert added == set(ADDED_VALUES)


def test_the_official_values_file_installs_without_its_go_image(
    chart: ChartUnderTest, tmp_path: Path
) -> None:
    """A values file with every official value (what the marketplace form holds)."""
    official = _official_defaults()
    without_image = {k: v for k, v in official.items() if not k.startswith("linux.image.")}
    path = tmp_path / "official-values.yaml"
    path.write_text(yaml.safe_dump(_nest(without_image)))
    rendered = chart.template([path])
    assert rendered.one("DaemonSet")
    assert rendered.driver_values is not None
    # ... and with the Go image pinned, the refusal says what to do.
    path.write_text(yaml.safe_dump(_nest(official)))
    error = chart.template_error([path])
    assert "linux.image.repository" in error
    assert "secrets-store-csi-driver-provider-alibaba-cloud" in error
    assert "Remove linux.image" in error


# ---- the driver: values handed down, and what the official driver objects show of them ----

def test_driver_values_are_the_official_ones(chart: ChartUnderTest) -> None:
    handed = chart.template().driver_values
    assert handed is not None
    handed_flat = _flatten(handed)
    for key, official in _official_defaults().items():
        if key.startswith(f"{DRIVER}.") and key != f"{DRIVER}.install":
            assert handed_flat.get(key.removeprefix(f"{DRIVER}."), ABSENT) == official, key


def _driver_objects(facts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['name']}": o for o in facts if _made_by(o, DRIVER)}


@pytest.mark.parametrize("render", ["default", "ak", "rrsa"])
def test_driver_objects_follow_our_driver_values(
    chart: ChartUnderTest, seed_values: dict[str, Path], render: str
) -> None:
    """The official driver objects' images, metrics address, rotation and token audience are
    exactly what our values make the same driver chart version render."""
    values = chart.template([seed_values[render]] if render in seed_values else []).driver_values
    assert values is not None
    linux = values["linux"]
    driver = _driver_objects(_facts(render))

    def image(spec: dict[str, Any]) -> tuple[str, str]:
        return f"{spec['repository']}:{spec['tag']}", spec["pullPolicy"]

    containers = {c["name"]: c for c in driver[f"DaemonSet/{DRIVER}"]["pod"]["containers"]}
    expected = {"secrets-store": image(linux["image"]),
                "node-driver-registrar": image(linux["registrarImage"]),
                "liveness-probe": image(linux["livenessProbeImage"])}
    for job, container in (("upgrade-crds", "crds-upgrade"), ("keep-crds", "crds-keep")):
        [hook] = driver[f"Job/{DRIVER}-{job}"]["pod"]["containers"]
        containers[container] = hook
        expected[container] = image(linux["crds"]["image"])
    assert {name: (c["image"], c["imagePullPolicy"]) for name, c in containers.items()} == expected
    args = containers["secrets-store"]["args"]
    assert f"--metrics-addr={linux['metricsAddr']}" in args
    assert f"--rotation-poll-interval={values['rotationPollInterval']}" in args
    assert ("--enable-secret-rotation=true" in args) is values["enableSecretRotation"]
    csi = driver["CSIDriver/secrets-store.csi.k8s.io"]["spec"]
    assert csi["tokenRequests"] == values["tokenRequests"]


def test_driver_chart_version_is_the_bundled_one(helm_lib: ModuleType) -> None:
    chart = yaml.safe_load((helm_lib.CHART_DIR / "Chart.yaml").read_text())
    (dependency,) = chart["dependencies"]
    labels = _driver_objects(_facts("default"))[f"DaemonSet/{DRIVER}"]["labels"]
    assert labels["helm.sh/chart"] == f"{DRIVER}-{dependency['version']}"
    assert chart["kubeVersion"] == ">=1.30.0-0"
