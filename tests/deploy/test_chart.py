"""The Helm chart, rendered by the real Helm engine: lint, schema, Kubernetes 1.30 validity,
security properties, RBAC, NetworkPolicies, hooks, CronJobs, monitoring, and agreement with
what the Rust programs actually read and export."""

from __future__ import annotations

import copy
import ipaddress
import json
import re

import pytest
import yaml

import support
from support import NAMESPACE, RELEASE, SCENARIOS, one, objects_of, render_scenario, workloads

FULL = support.load_values(SCENARIOS["full"])


def fullname(suffix: str) -> str:
    return f"{RELEASE}-{suffix}"


# ---- lint and schema ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_strict_reports_no_warning_or_error(scenario):
    import helm_python

    report = helm_python.chart.lint(
        str(support.CHART),
        support.load_values(SCENARIOS[scenario]),
        strict=True,
        namespace=NAMESPACE,
        kube_version="v1.30.0",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, json.dumps(report, indent=2)
    assert report["total_charts_linted"] == 1


def test_values_yaml_passes_its_own_schema():
    import jsonschema

    schema = json.loads((support.CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    for name, path in SCENARIOS.items():
        values = support.load_values(path)
        import helm_python

        with helm_python.Chart.load(str(support.CHART)) as chart:
            chart.validate_schema(chart.merge_values(values))  # raises on failure
        assert name


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"api": {"replicas": "two"}}, "replicas"),
        ({"api": {"replicaCount": 2}}, "replicaCount"),
        ({"config": {"logFormat": "xml"}}, "logFormat"),
        ({"config": {"queueName": "bad-name"}}, "queueName"),
        ({"config": {"maxNodes": 0}}, "maxNodes"),
        ({"api": {"config": {"apiKeyTtlHours": 500}}}, "apiKeyTtlHours"),
        ({"api": {"service": {"type": "ExternalName"}}}, "type"),
        ({"availability": {"schedule": "every minute"}}, "schedule"),
        ({"userNamespace": {"name": "Not_A_Namespace"}}, "name"),
        ({"database": {"url": "mysql://x"}}, "url"),
        ({"networkPolicy": {"userPods": {"deniedCIDRs": ["not-a-cidr"]}}}, "deniedCIDRs"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"monitoring": {"prometheusRule": {"apiErrorRatio": 5}}}, "apiErrorRatio"),
        ({"expiry": {"config": {"warningMinutes": [0]}}}, "warningMinutes"),
        ({"processor": {"config": {"storageClass": "Bad_Class"}}}, "storageClass"),
        ({"processor": {"config": {"retryBackoffBaseSeconds": 0}}}, "retryBackoffBaseSeconds"),
        ({"config": {"gpuCatalogJson": "{}"}}, "gpuCatalogJson"),
        ({"secretsEncryption": {"keys": "k1:not-32-bytes"}}, "keys"),
        ({"api": {"config": {"consolePublicUrl": "https://gpudev.example.com/ui"}}}, "consolePublicUrl"),
        (
            {"api": {"config": {"oidc": {"issuers": [
                {"issuer": "https://id.example", "client_id": "c", "console_client_id": "w", "console_scopes": ["email"]}
            ]}}}},
            "console_scopes",
        ),
    ],
)
def test_the_schema_rejects_bad_values(change, complaint):
    import helm_python

    with pytest.raises(helm_python.HelmError) as err:
        support.render(change)
    assert complaint in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"userNamespace": {"name": NAMESPACE}}, "must differ from the release namespace"),
        (
            {"api": {"config": {"maxReservationHours": 48, "maxLifetimeHours": 24}}},
            "maxLifetimeHours must be at least",
        ),
        (
            {"database": {"url": "postgres://u@h/db", "existingSecret": {"name": "s"}}},
            "not both",
        ),
        (
            {"processor": {"config": {"retryBackoffBaseSeconds": 60, "retryBackoffMaxSeconds": 30}}},
            "retryBackoffMaxSeconds must be at least",
        ),
        (
            {"monitoring": {"prometheusRule": {"enabled": True, "dailyGpuCostUsd": 100}}},
            "needs config.gpuHourlyPrices",
        ),
    ],
)
def test_inconsistent_values_fail_with_a_clear_message(change, complaint):
    import helm_python

    with pytest.raises(helm_python.HelmError) as err:
        support.render(change)
    assert complaint in str(err.value)


# ---- Kubernetes validity -----------------------------------------------------------------------


def write_objects(objects, directory):
    paths = []
    for n, (_, obj) in enumerate(objects):
        path = directory / f"{n:02d}-{obj['kind']}-{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(obj))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_rendered_manifest_is_valid_for_kubernetes_1_30(scenario, tmp_path):
    paths = write_objects(render_scenario(scenario), tmp_path)
    result = support.run([support.tool("kubernetes-validate"), "--strict", "-k", "1.30.0", *paths])
    assert result.returncode == 0, result.stdout + result.stderr
    # Only our custom resources may go unvalidated (no schema ships for them).
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("WARN"):
            assert re.search(r"kind (ServiceMonitor|PrometheusRule) ", line), line
        elif line.strip():
            assert line.startswith("INFO") and " passed " in line, line


def test_the_validator_rejects_a_broken_manifest(tmp_path):
    # Guards against a validator that passes everything (e.g. a broken install).
    deployment = copy.deepcopy(one(render_scenario("default"), "Deployment", fullname("api")))
    deployment["spec"]["replicas"] = "two"
    deployment["spec"]["template"]["spec"]["containers"][0]["unknownField"] = True
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(deployment))
    result = support.run([support.tool("kubernetes-validate"), "--strict", "-k", "1.30.0", str(path)])
    assert result.returncode != 0, result.stdout


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_object_names_fit_kubernetes_limits(scenario):
    for _, obj in render_scenario(scenario):
        name = obj["metadata"]["name"]
        limit = 52 if obj["kind"] == "CronJob" else 63
        assert len(name) <= limit and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name


# ---- security ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_container_is_non_root_read_only_and_drops_every_capability(scenario):
    pods = [(o["kind"], o["metadata"]["name"], s) for _, o in render_scenario(scenario) if (s := support.pod_spec(o))]
    assert pods
    for kind, name, spec in pods:
        where = f"{kind}/{name}"
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), where
        assert not any("hostPath" in v for v in spec.get("volumes", [])), where
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged") in (None, False), where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert "resources" in c and c["resources"].get("limits", {}).get("memory"), where


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_api_has_no_kubernetes_token_and_no_permissions(scenario):
    objects = render_scenario(scenario)
    api = [o for c, o, _ in workloads(objects) if c == "api"]
    assert len(api) == 1
    spec = support.pod_spec(api[0])
    assert spec["automountServiceAccountToken"] is False
    account = spec["serviceAccountName"]
    for sa in objects_of(objects, "ServiceAccount"):
        if sa["metadata"]["name"] == account:
            assert sa["automountServiceAccountToken"] is False
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in objects_of(objects, kind):
            assert account not in [s["name"] for s in binding["subjects"]], binding["metadata"]["name"]


def test_only_the_programs_that_drive_kubernetes_get_a_token():
    objects = render_scenario("default")
    tokens = {c: support.pod_spec(o).get("automountServiceAccountToken") for c, o, _ in workloads(objects)}
    assert tokens == {
        "api": False,
        "processor": True,
        "availability": True,
        "expiry": True,
        "migration": False,
    }
    test_pod = one(objects, "Pod", fullname("test-api"))
    assert test_pod["spec"]["automountServiceAccountToken"] is False


def rules_of(role):
    return sorted(
        (tuple(r.get("apiGroups", [])), tuple(r.get("resources", [])), tuple(sorted(r["verbs"])))
        for r in role["rules"]
    )


# Each rule is what the program was seen using on a real API server (the processor's
# chart_rbac test reads the audit log and fails on any right never used).
EXPECTED_RULES = {
    ("Role", "gpudev-processor"): [
        (("",), ("events",), ("list",)),
        (("",), ("persistentvolumeclaims",), ("create", "get")),
        (("",), ("pods",), ("create", "delete", "get", "list", "watch")),
        (("",), ("services", "secrets"), ("create", "delete", "get", "list", "patch")),
    ],
    ("Role", "gpudev-expiry"): [
        (("",), ("persistentvolumeclaims",), ("delete",)),
        (("",), ("pods",), ("delete", "get", "list")),
        (("",), ("pods/exec",), ("create", "get")),
        (("",), ("services", "secrets"), ("delete", "list")),
        (("snapshot.storage.k8s.io",), ("volumesnapshots",), ("create", "delete", "get", "list")),
    ],
    ("ClusterRole", f"{NAMESPACE}-gpudev-processor-cluster"): [
        (("",), ("nodes",), ("get", "list", "watch")),
        (("",), ("pods",), ("list", "watch")),
    ],
    ("ClusterRole", f"{NAMESPACE}-gpudev-availability-cluster"): [
        (("",), ("nodes", "pods"), ("list",)),
    ],
}


def bound_subjects(objects):
    """role (kind, name, namespace) -> sorted subject "namespace/name"s."""
    out = {}
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for b in objects_of(objects, kind):
            key = (b["roleRef"]["kind"], b["roleRef"]["name"], b["metadata"].get("namespace"))
            out[key] = sorted(f"{s['namespace']}/{s['name']}" for s in b["subjects"])
    return out


def test_rbac_is_exactly_the_intended_least_privilege():
    objects = render_scenario("default")
    roles = {(o["kind"], o["metadata"]["name"]): o for k in ("Role", "ClusterRole") for o in objects_of(objects, k)}
    assert set(roles) == set(EXPECTED_RULES)
    for key, expected in EXPECTED_RULES.items():
        assert rules_of(roles[key]) == sorted(expected), key
        if key[0] == "Role":
            assert roles[key]["metadata"]["namespace"] == "gpu-dev", key
    # Nothing broad, nothing that grants more RBAC.
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert not {"escalate", "bind", "impersonate", "update"} & set(rule["verbs"])
            assert "resourceNames" not in rule
    assert bound_subjects(objects) == {
        ("Role", "gpudev-processor", "gpu-dev"): [f"{NAMESPACE}/gpudev-processor"],
        ("Role", "gpudev-expiry", "gpu-dev"): [f"{NAMESPACE}/gpudev-expiry"],
        ("ClusterRole", f"{NAMESPACE}-gpudev-processor-cluster", None): [f"{NAMESPACE}/gpudev-processor"],
        ("ClusterRole", f"{NAMESPACE}-gpudev-availability-cluster", None): [
            f"{NAMESPACE}/gpudev-availability"
        ],
    }
    # No Lease permissions: leader election is a PostgreSQL advisory lock.
    assert "leases" not in json.dumps([r["rules"] for r in roles.values()])


def test_rbac_follows_the_user_namespace_and_disabled_cronjobs():
    objects = render_scenario("external-db-url")  # both CronJobs off
    kinds = {(o["kind"], o["metadata"]["name"]) for _, o in objects}
    assert ("Role", "gpudev-expiry") not in kinds
    assert ("CronJob", "gpudev-expiry") not in kinds and ("CronJob", "gpudev-availability") not in kinds
    reader = one(objects, "ClusterRoleBinding", f"{NAMESPACE}-gpudev-processor-cluster")
    assert [s["name"] for s in reader["subjects"]] == ["gpudev-processor"]
    assert ("ClusterRole", f"{NAMESPACE}-gpudev-availability-cluster") not in kinds
    full = render_scenario("full")
    assert one(full, "Role", "gpudev-processor")["metadata"]["namespace"] == "gpu-dev-prod"


def test_the_user_namespace_survives_uninstall_and_enforces_baseline():
    ns = one(render_scenario("default"), "Namespace", "gpu-dev")
    assert ns["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert not objects_of(render_scenario("existing-password-secret"), "Namespace")


# ---- network policies --------------------------------------------------------------------------


def container_port(objects, comp, port_name):
    for c, _, spec in workloads(objects):
        if c == comp:
            for p in spec["containers"][0].get("ports", []):
                if p["name"] == port_name:
                    return p["containerPort"]
    raise AssertionError(f"{comp} has no port {port_name}")


@pytest.mark.parametrize("scenario", ["default", "full"])
def test_user_pods_cannot_reach_cloud_metadata_or_the_control_plane(scenario):
    objects = render_scenario(scenario)
    values = support.load_values(SCENARIOS[scenario])
    user_ns = values.get("userNamespace", {}).get("name", "gpu-dev")
    denied_ns = {NAMESPACE, *values.get("networkPolicy", {}).get("userPods", {}).get("deniedNamespaces", [])}
    policy = one(objects, "NetworkPolicy", fullname("user-pods-egress"))
    assert policy["metadata"]["namespace"] == user_ns
    assert policy["spec"]["podSelector"] == {}  # every pod in the user namespace
    assert policy["spec"]["policyTypes"] == ["Egress"]
    metadata = ipaddress.ip_address("169.254.169.254")
    peers = [p for rule in policy["spec"]["egress"] for p in rule["to"]]
    assert peers
    for peer in peers:
        if "ipBlock" in peer:
            block = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            excepted = [ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", [])]
            if block.version == 4:
                assert metadata in block and any(metadata in e for e in excepted), peer
            else:
                assert ipaddress.ip_address("fd00:ec2::254") in excepted[0], peer
        else:
            # Pods elsewhere in the cluster: never the control plane's namespace.
            assert "podSelector" not in peer
            exprs = peer["namespaceSelector"]["matchExpressions"]
            assert exprs == [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": sorted(denied_ns, key=lambda n: n != NAMESPACE)}
            ], exprs
    if scenario == "full":
        blocks = [p["ipBlock"] for p in peers if "ipBlock" in p]
        assert blocks == [{"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "10.0.0.0/8"]}]


def test_the_api_accepts_traffic_only_on_its_port_and_never_from_user_pods():
    for scenario in ("default", "full"):
        objects = render_scenario(scenario)
        user_ns = "gpu-dev-prod" if scenario == "full" else "gpu-dev"
        deny = one(objects, "NetworkPolicy", fullname("default-deny-ingress"))
        assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
        assert deny["spec"]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "gpudev",
            "app.kubernetes.io/instance": RELEASE,
        }
        api = one(objects, "NetworkPolicy", fullname("api"))
        assert api["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
        [rule] = api["spec"]["ingress"]
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        assert container_port(objects, "api", "http") == (8080 if scenario == "full" else 8000)
        first = rule["from"][0]
        assert first == {
            "namespaceSelector": {
                "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [user_ns]}]
            }
        }
        metrics = one(objects, "NetworkPolicy", fullname("metrics"))
        [mrule] = metrics["spec"]["ingress"]
        assert mrule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    # Every other policy admits nothing but these ports: the union of allowed ports is exactly
    # {http on the API, metrics on API and processor}.
    policies = objects_of(render_scenario("default"), "NetworkPolicy")
    ports = sorted(p["port"] for pol in policies for r in pol["spec"].get("ingress", []) for p in r["ports"])
    assert ports == ["http", "metrics"]


def test_network_policies_can_be_switched_off():
    assert not objects_of(support.render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")
    names = [o["metadata"]["name"] for o in objects_of(render_scenario("external-db-url"), "NetworkPolicy")]
    assert fullname("user-pods-egress") not in names and fullname("api") in names


# ---- workloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_workload_runs_its_program_from_the_one_image(scenario):
    objects = render_scenario(scenario)
    values = support.load_values(SCENARIOS[scenario])
    image = values.get("image", {})
    if image.get("digest"):
        expected_image = f"{image['repository']}@{image['digest']}"
    else:
        expected_image = f"{image.get('repository', 'ghcr.io/gpudev/gpudev')}:0.1.0"
    seen = set()
    for comp, _, spec in workloads(objects):
        [container] = spec["containers"]
        assert container["command"] == support.COMMANDS[comp], comp
        assert container["image"] == expected_image, comp
        assert "args" not in container
        seen.add(comp)
    expected = set(support.COMMANDS)
    if scenario == "external-db-url":
        expected -= {"availability", "expiry"}
    assert seen == expected


def test_api_probes_use_livez_and_readyz_with_the_configured_timings():
    for scenario, probes in (("default", None), ("full", FULL["api"]["probes"])):
        [api] = [o for c, o, _ in workloads(render_scenario(scenario)) if c == "api"]
        c = support.pod_spec(api)["containers"][0]
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        if probes:
            for kind, field in (("liveness", "livenessProbe"), ("readiness", "readinessProbe"), ("startup", "startupProbe")):
                for key, value in probes[kind].items():
                    assert c[field][key] == value, (kind, key)


def test_processor_probes_its_metrics_listener():
    [proc] = [o for c, o, _ in workloads(render_scenario("default")) if c == "processor"]
    c = support.pod_spec(proc)["containers"][0]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_api_deployment_replicas_pdb_spread_and_hpa():
    objects = render_scenario("default")
    dep = one(objects, "Deployment", fullname("api"))
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    keys = [t["topologyKey"] for t in dep["spec"]["template"]["spec"]["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert one(objects, "PodDisruptionBudget", fullname("api"))["spec"]["minAvailable"] == 1
    assert not objects_of(objects, "HorizontalPodAutoscaler") and not objects_of(objects, "Ingress")

    full = render_scenario("full")
    dep = one(full, "Deployment", fullname("api"))
    assert "replicas" not in dep["spec"]  # the HPA owns it
    hpa = one(full, "HorizontalPodAutoscaler", fullname("api"))
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": fullname("api")}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu", "memory"]
    ingress = one(full, "Ingress", fullname("api"))
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": fullname("api"), "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"secretName": "gpudev-tls", "hosts": ["gpudev.example.com"]}]
    assert ingress["spec"]["ingressClassName"] == "nginx"


def test_processor_runs_two_replicas_safely_with_a_pdb():
    objects = render_scenario("default")
    dep = one(objects, "Deployment", fullname("processor"))
    assert dep["spec"]["replicas"] == 2
    assert one(objects, "PodDisruptionBudget", fullname("processor"))["spec"]["maxUnavailable"] == 1
    single = render_scenario("external-db-url")
    assert one(single, "Deployment", fullname("processor"))["spec"]["replicas"] == 1
    assert fullname("processor") not in [o["metadata"]["name"] for o in objects_of(single, "PodDisruptionBudget")]


def test_cronjobs_run_every_minute_never_overlap_and_are_bounded():
    objects = render_scenario("default")
    for name, deadline in (("availability", 50), ("expiry", 300)):
        cj = one(objects, "CronJob", fullname(name))
        spec = cj["spec"]
        assert spec["schedule"] == "* * * * *"
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["startingDeadlineSeconds"] == 50
        assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 3
        job = spec["jobTemplate"]["spec"]
        assert job["activeDeadlineSeconds"] == deadline
        assert job["template"]["spec"]["restartPolicy"] == "Never"
    full = one(render_scenario("full"), "CronJob", fullname("availability"))["spec"]
    assert full["concurrencyPolicy"] == "Forbid"  # not configurable
    assert (full["schedule"], full["timeZone"], full["startingDeadlineSeconds"]) == ("*/2 * * * *", "Europe/Paris", 100)


def test_migration_is_a_pre_install_and_pre_upgrade_hook_that_runs_first():
    for scenario in ("default", "external-db-password"):
        objects = render_scenario(scenario)
        job = one(objects, "Job", fullname("migration"))
        ann = job["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        spec = job["spec"]["template"]["spec"]
        assert spec["containers"][0]["command"] == ["/usr/local/bin/gpudev-admin", "migrate"]
        assert spec["restartPolicy"] == "Never"
        # Everything the Job uses exists before it: hook objects with a lower weight, never the
        # release's ordinary ConfigMaps or Secret (they are created after the hooks).
        assert "envFrom" not in spec["containers"][0]
        sa = one(objects, "ServiceAccount", spec["serviceAccountName"])
        assert int(sa["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(ann["helm.sh/hook-weight"])
        for env in spec["containers"][0]["env"]:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secret = one(objects, "Secret", ref["name"])
                assert "pre-install" in secret["metadata"]["annotations"]["helm.sh/hook"]
                assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(ann["helm.sh/hook-weight"])
    assert not objects_of(support.render({"migration": {"enabled": False}}), "Job")


SECRETS_KEYS = "2026-12:" + "A" * 43 + "=," + "2026-06:" + "B" * 43 + "="


@pytest.mark.parametrize("scenario", ["default", "full", "external-db-password"])
def test_only_the_api_and_the_processor_get_the_secrets_keys(scenario):
    objects = render_scenario(scenario)
    for comp, _, spec in workloads(objects):
        env = env_of(spec["containers"][0])
        if comp in ("api", "processor"):
            ref = env["SECRETS_ENCRYPTION_KEYS"]["secretKeyRef"]
            assert ref == {"name": fullname("secrets-keys"), "key": "SECRETS_ENCRYPTION_KEYS"}, comp
        else:
            assert "SECRETS_ENCRYPTION_KEYS" not in env, comp
    for configmap in objects_of(objects, "ConfigMap"):
        assert "SECRETS_ENCRYPTION_KEYS" not in configmap.get("data", {})


def test_the_secrets_keys_come_from_values_an_existing_secret_or_are_generated_once():
    import base64

    def keys_in(objects):
        secret = one(objects, "Secret", fullname("secrets-keys"))
        return base64.b64decode(secret["data"]["SECRETS_ENCRYPTION_KEYS"]).decode()

    given = support.render({"secretsEncryption": {"keys": SECRETS_KEYS}})
    assert keys_in(given) == SECRETS_KEYS
    generated = keys_in(support.render())
    key_id, key = generated.split(":")
    assert re.fullmatch(r"chart-\d{8}", key_id) and len(base64.b64decode(key)) == 32
    secret = one(support.render(), "Secret", fullname("secrets-keys"))
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    theirs = support.render({"secretsEncryption": {"existingSecret": {"name": "my-keys", "key": "k"}}})
    assert not [s for s in objects_of(theirs, "Secret") if s["metadata"]["name"] == fullname("secrets-keys")]
    for comp, _, spec in workloads(theirs):
        if comp in ("api", "processor"):
            ref = env_of(spec["containers"][0])["SECRETS_ENCRYPTION_KEYS"]["secretKeyRef"]
            assert ref == {"name": "my-keys", "key": "k"}, comp


def env_of(container) -> dict:
    out = {}
    for e in container.get("env", []):
        out[e["name"]] = e.get("value", e.get("valueFrom"))
    return out


def test_database_credentials_come_from_the_right_secret():
    # Chart-made Secret with a password: host etc. in the ConfigMap, password from the Secret.
    objects = render_scenario("external-db-password")
    secret = one(objects, "Secret", fullname("database"))
    assert set(secret["data"]) == {"POSTGRES_PASSWORD"}
    common = one(objects, "ConfigMap", fullname("common"))["data"]
    assert (common["POSTGRES_HOST"], common["POSTGRES_PORT"], common["POSTGRES_DB"], common["POSTGRES_USER"]) == (
        "pg.example.internal", "6432", "gpudev_prod", "gpudev_app")
    for comp, _, spec in workloads(objects):
        env = env_of(spec["containers"][0])
        ref = env["POSTGRES_PASSWORD"]["secretKeyRef"]
        expected = fullname("migration-database") if comp == "migration" else fullname("database")
        assert ref == {"name": expected, "key": "POSTGRES_PASSWORD"}, comp
        assert "DATABASE_URL" not in env
    # A CloudNativePG-style Secret holding a URL: no chart Secret, no POSTGRES_* connection
    # fields; its CA is given, so TLS is verify-full against the mounted CA in every workload.
    objects = render_scenario("cloudnativepg-example")
    assert [s["metadata"]["name"] for s in objects_of(objects, "Secret")] == [fullname("secrets-keys")]
    common = one(objects, "ConfigMap", fullname("common"))["data"]
    assert not any(k.startswith("POSTGRES_") and not k.startswith("POSTGRES_SSL") for k in common)
    assert (common["POSTGRES_SSLMODE"], common["POSTGRES_SSLROOTCERT"]) == (
        "verify-full", "/etc/gpudev/postgres-ca/ca.crt")
    for comp, pod, spec in workloads(objects):
        assert env_of(spec["containers"][0])["DATABASE_URL"] == {"secretKeyRef": {"name": "gpudev-db-app", "key": "uri"}}
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts.get("postgres-ca") == "/etc/gpudev/postgres-ca", comp
        ca = [v for v in spec["volumes"] if v["name"] == "postgres-ca"]
        assert ca and ca[0]["secret"]["secretName"] == "gpudev-db-ca", comp
    # An existing Secret holding only the password.
    for comp, _, spec in workloads(render_scenario("existing-password-secret")):
        assert env_of(spec["containers"][0])["POSTGRES_PASSWORD"] == {"secretKeyRef": {"name": "gpudev-db", "key": "pg-password"}}
    # A URL in values goes to the chart's Secret, never into a ConfigMap or the pod spec.
    objects = render_scenario("external-db-url")
    assert set(one(objects, "Secret", fullname("database"))["data"]) == {"DATABASE_URL"}
    text = yaml.safe_dump_all([o for _, o in objects if o["kind"] != "Secret"])
    assert "s3cret-not-real" not in text


def test_secrets_never_appear_outside_secrets():
    for scenario in ("external-db-password", "external-db-url"):
        text = yaml.safe_dump_all([o for _, o in render_scenario(scenario) if o["kind"] != "Secret"])
        assert "s3cret-not-real" not in text and "not-a-real-token" not in text
    webhook = one(render_scenario("external-db-password"), "Secret", fullname("expiry-webhook"))
    assert list(webhook["data"]) == ["url"]


def test_a_config_change_rolls_the_pods():
    def checksum(values):
        dep = one(support.render(values), "Deployment", fullname("api"))
        return support.pod_template_metadata(dep)["annotations"]["checksum/config"]

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"api": {"config": {"rateLimitPerMinute": 7}}})


# ---- settings agree with the programs ----------------------------------------------------------


def settings_of(objects, comp, spec):
    """Every variable a workload's container gets: its ConfigMaps and its env."""
    [c] = spec["containers"]
    names = set(env_of(c))
    for source in c.get("envFrom", []):
        names |= set(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    return names


@pytest.mark.parametrize("scenario", ["default", "full", "external-db-password"])
def test_every_variable_the_chart_sets_is_read_by_the_program(scenario):
    objects = render_scenario(scenario)
    extra = set()
    for section in ("api", "processor", "availability", "expiry"):
        extra |= set(support.load_values(SCENARIOS[scenario]).get(section, {}).get("extraEnv", {}))
    for comp, _, spec in workloads(objects):
        reads = support.env_vars_read_by(support.CRATES[comp])
        own = settings_of(objects, comp, spec) - extra
        if comp == "migration":
            unread = own - reads
        else:
            # The shared ConfigMap serves every program; its keys must be read by at least one.
            common = set(one(objects, "ConfigMap", fullname("common"))["data"])
            unread = (own - common) - reads
            anyone = set().union(*(support.env_vars_read_by(c) for c in set(support.CRATES.values())))
            unread |= common - anyone
        assert not unread, f"{comp} is given variables no gpudev program reads: {sorted(unread)}"


# Settings the chart deliberately leaves to the environment (read by the programs, but not
# chart values): HOSTNAME is the pod's own name; KUBECONFIG is for runs outside a cluster.
NOT_CHART_SETTINGS = {"HOSTNAME", "KUBECONFIG", "DATABASE_URL", "POSTGRES_PASSWORD"}


@pytest.mark.parametrize("comp", ["api", "processor", "availability", "expiry"])
def test_every_setting_a_program_documents_can_be_set_through_the_chart(comp):
    crate = support.CRATES[comp]
    documented = support.config_vars_of(crate) | support.config_vars_of("store")
    objects = render_scenario("full")
    offered = set()
    for c, _, spec in workloads(objects):
        if c == comp:
            offered = settings_of(objects, comp, spec)
    offered |= set(support.config_vars_of("store")) - {"DATABASE_URL", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_DB"}
    missing = documented - offered - NOT_CHART_SETTINGS - {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_DB"}
    assert not missing, (
        f"crates/{crate}/src/config.rs reads {sorted(missing)}, which charts/gpudev cannot set: "
        "add a value (and docs/DEPLOYMENT.md), or list it in NOT_CHART_SETTINGS with a reason"
    )


def test_the_api_and_processor_share_catalog_quotas_and_queue():
    objects = render_scenario("full")
    common = one(objects, "ConfigMap", fullname("common"))["data"]
    for key in ("GPU_CATALOG_JSON", "MAX_ACTIVE_RESERVATIONS_PER_USER", "MAX_GPUS_PER_USER", "QUEUE_NAME",
                "DEV_IMAGE", "GPU_TYPE_LABEL", "DEFAULT_DISK_SIZE_GB", "MAX_NODES", "GPU_DEV_NAMESPACE"):
        assert key in common, key
    assert json.loads(common["GPU_CATALOG_JSON"])[0]["name"] == "h100"
    assert common["MAX_GPUS_PER_USER"] == "1000000"  # no 1e+06
    api = one(objects, "ConfigMap", fullname("api"))["data"]
    assert json.loads(api["GPU_HOURLY_PRICES"]) == {"h100": 4.5, "a100": 2.9, "t4": 0.35}
    assert api["BIND_ADDR"] == "0.0.0.0:8080" and api["METRICS_ADDR"] == "0.0.0.0:9191"
    assert api["MAX_RESERVATION_HOURS"] == "12.5"
    assert one(objects, "ConfigMap", fullname("expiry"))["data"]["WARNING_MINUTES"] == "60,10"
    assert one(objects, "ConfigMap", fullname("processor"))["data"]["GITHUB_KEYS_URL"] == ""


# ---- monitoring --------------------------------------------------------------------------------


def test_service_monitor_scrapes_both_metrics_services():
    objects = render_scenario("full")
    sm = one(objects, "ServiceMonitor", RELEASE)
    selector = sm["spec"]["selector"]["matchLabels"]
    selected = [s for s in objects_of(objects, "Service") if selector.items() <= s["metadata"]["labels"].items()]
    assert sorted(s["metadata"]["name"] for s in selected) == [fullname("api"), fullname("processor")]
    for service in selected:
        assert "metrics" in [p["name"] for p in service["spec"]["ports"]]
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}]
    assert sm["metadata"]["labels"]["release"] == "prometheus"


EXPECTED_ALERTS = {
    "GpudevApiHighErrorRate",
    "GpudevApiDown",
    "GpudevRateLimitsUnchecked",
    "GpudevDevBoxAgentsSilent",
    "GpudevQueueStalled",
    "GpudevProcessorDown",
    "GpudevProcessorNoLeader",
    "GpudevMessagesDeadLettered",
    "GpudevCronJobNotSucceeding",
    "GpudevDailyGpuCostHigh",
}


def known_metrics():
    return support.exported_metrics("api") | support.exported_metrics("processor")


def test_prometheus_rules_parse_and_use_metrics_the_programs_export():
    import promql_parser

    rule = one(render_scenario("full"), "PrometheusRule", RELEASE)
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules if "alert" in r} == EXPECTED_ALERTS
    runbook = (support.REPO / "docs" / "RUNBOOK.md").read_text(encoding="utf-8").lower()
    for r in rules:
        promql_parser.parse(r["expr"])  # raises on a syntax error
        unknown = support.gpudev_metric_names(r["expr"]) - known_metrics()
        assert not unknown, f"{r.get('alert', r.get('record'))} uses metrics nobody exports: {unknown}"
        if "alert" in r:
            anchor = r["annotations"]["runbook_url"].split("#")[1]
            assert anchor == r["alert"].lower()
            assert f"### {r['alert'].lower()}" in runbook, f"docs/RUNBOOK.md has no section {r['alert']}"
            assert r["labels"]["severity"] in ("warning", "critical")
            assert r["labels"]["team"] == "gpu-platform"
    by_name = {r["alert"]: r for r in rules if "alert" in r}
    assert "> 0.02" in by_name["GpudevApiHighErrorRate"]["expr"]
    assert "> 600" in by_name["GpudevQueueStalled"]["expr"]
    assert "> 900" in by_name["GpudevCronJobNotSucceeding"]["expr"]
    assert 'cronjob=~"gpudev-(availability|expiry)"' in by_name["GpudevCronJobNotSucceeding"]["expr"]
    assert "> 5000" in by_name["GpudevDailyGpuCostHigh"]["expr"]
    costs = [r for r in rules if r.get("record") == "gpudev:gpu_cost_usd_per_hour:by_gpu_type"]
    assert sorted(r["labels"]["gpu_type"] for r in costs) == ["a100", "h100", "t4"]


def test_the_cost_alert_needs_prices_and_a_threshold():
    rule = one(support.render({"monitoring": {"prometheusRule": {"enabled": True}}}), "PrometheusRule", RELEASE)
    names = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "GpudevDailyGpuCostHigh" not in names and "GpudevCronJobNotSucceeding" in names


def test_the_dashboard_shows_what_operators_asked_for():
    import promql_parser

    cm = one(render_scenario("full"), "ConfigMap", fullname("dashboard"))
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["gpudev.json"])
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for wanted in ("requests", "latency", "queue depth", "wait", "gpus in use by type", "cost per day"):
        assert wanted in titles, wanted
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$namespace", "ns")
            promql_parser.parse(expr)
            assert not support.gpudev_metric_names(expr) - known_metrics(), target["expr"]


def test_optional_monitoring_objects_are_off_by_default():
    kinds = {o["kind"] for _, o in render_scenario("default")}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert fullname("dashboard") not in [o["metadata"]["name"] for o in objects_of(render_scenario("default"), "ConfigMap")]


# ---- helm test and notes -----------------------------------------------------------------------


def test_helm_test_pod_checks_readyz_through_the_service():
    pod = one(render_scenario("default"), "Pod", fullname("test-api"))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = pod["spec"]["containers"][0]["command"]
    assert command[-1] == f"http://{fullname('api')}.{NAMESPACE}.svc:80/readyz"


def test_notes_warn_when_no_database_credentials_are_set():
    assert "WARNING: no database password" in support.notes({})
    assert "WARNING" not in support.notes(support.load_values(SCENARIOS["external-db-password"]))


def test_the_longest_names_still_fit():
    objects = support.render({"fullnameOverride": "g" * 39})
    for _, obj in objects:
        name = obj["metadata"]["name"]
        assert len(name) <= (52 if obj["kind"] == "CronJob" else 63), name
    assert one(objects, "CronJob", "g" * 39 + "-availability")
    import helm_python

    with pytest.raises(helm_python.HelmError):
        support.render({"fullnameOverride": "g" * 40})


# ---- the dev box agent (ADR 18) ------------------------------------------------------------------


def agent_settings(values):
    data = one(support.render(values), "ConfigMap", fullname("processor"))["data"]
    return data.get("AGENT_API_URL"), data.get("AGENT_IMAGE")


def test_the_agent_reports_to_the_ingress_host_or_the_given_url_with_the_charts_image():
    ingress = {"api": {"ingress": {"enabled": True, "hosts": [{"host": "gpu.corp.example", "paths": [{"path": "/", "pathType": "Prefix"}]}]}}}
    url, image = agent_settings(ingress)
    assert url == "http://gpu.corp.example"
    assert image.startswith("ghcr.io/") or ":" in image
    with_tls = {"api": {"ingress": {**ingress["api"]["ingress"], "tls": [{"secretName": "t", "hosts": ["gpu.corp.example"]}]}}}
    assert agent_settings(with_tls)[0] == "https://gpu.corp.example"
    given = {"processor": {"config": {"agent": {"apiUrl": "https://api.internal:8443", "image": "registry.example/gpudev:9"}}}}
    assert agent_settings(given) == ("https://api.internal:8443", "registry.example/gpudev:9")


def test_without_an_address_or_when_disabled_boxes_run_no_agent():
    assert agent_settings({}) == (None, None)
    off = {"processor": {"config": {"agent": {"enabled": False, "apiUrl": "https://x.example"}}}}
    assert agent_settings(off) == (None, None)


def test_the_agent_settings_refuse_what_is_not_a_url():
    with pytest.raises(Exception):
        support.render({"processor": {"config": {"agent": {"apiUrl": "gpu.corp.example"}}}})
