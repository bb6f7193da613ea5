"""Shared helpers for the deployment checks: rendering the chart with the real Helm engine
(PyPI helm-python-sdk), reading the compose file as Compose would, and finding what the Rust
crates actually read and export, so the chart and compose file cannot drift from the code."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "gpudev"
VALUES_DIR = Path(__file__).resolve().parent / "values"
DOCKER = REPO / "docker"
VENV_BIN = Path(os.environ.get("GPUDEV_VENV_BIN", REPO / ".tools" / "venv" / "bin"))

RELEASE = "gpudev"
NAMESPACE = "gpudev-system"

# The workloads the chart runs, by component label, and the program each runs.
COMMANDS = {
    "api": ["/usr/local/bin/gpudev-api"],
    "processor": ["/usr/local/bin/gpudev-processor"],
    "availability": ["/usr/local/bin/gpudev-availability"],
    "expiry": ["/usr/local/bin/gpudev-expiry"],
    "migration": ["/usr/local/bin/gpudev-admin", "migrate"],
}
# The crate whose sources define each program's settings.
CRATES = {
    "api": "api",
    "processor": "processor",
    "availability": "availability",
    "expiry": "expiry",
    "migration": "admin",
}

# Scenarios rendered by the tests: name -> values file (None = the chart's defaults).
SCENARIOS = {
    "default": None,
    "full": VALUES_DIR / "full.yaml",
    "external-db-password": VALUES_DIR / "external-db-password.yaml",
    "external-db-url": VALUES_DIR / "external-db-url.yaml",
    "existing-password-secret": VALUES_DIR / "existing-password-secret.yaml",
    "cloudnativepg-example": CHART / "examples" / "values-cloudnativepg.yaml",
}


def tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run scripts/install-python-tools")
    return str(path)


def load_values(path: Path | None) -> dict:
    if path is None:
        return {}
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def render(values: dict | None = None, *, namespace: str = NAMESPACE, upgrade: bool = False):
    """Renders the chart offline; returns (template path, object) for every object."""
    import helm_python

    with helm_python.Chart.load(str(CHART)) as chart:
        out = chart.render(
            values or {},
            name=RELEASE,
            namespace=namespace,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    objects = []
    for template, text in sorted(out.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((template, doc))
    return objects


@functools.lru_cache(maxsize=None)
def render_scenario(name: str):
    return tuple(render(load_values(SCENARIOS[name])))


def notes(values: dict | None = None) -> str:
    import helm_python

    with helm_python.Chart.load(str(CHART)) as chart:
        out = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for template, text in out.items() if template.endswith("NOTES.txt"))


def objects_of(objects, kind: str):
    return [o for _, o in objects if o["kind"] == kind]


def one(objects, kind: str, name: str):
    found = [o for o in objects_of(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(obj) -> dict | None:
    """The pod spec inside a workload object, or None for other kinds."""
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def pod_template_metadata(obj) -> dict:
    kind = obj["kind"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
    return obj["spec"]["template"]["metadata"]


def component(obj) -> str | None:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def workloads(objects):
    """(component, object, pod spec) of every gpudev workload (not the helm test pod)."""
    out = []
    for _, obj in objects:
        spec = pod_spec(obj)
        if spec is not None and component(obj) != "test":
            out.append((component(obj), obj, spec))
    return out


# ---- what the crates read and export -----------------------------------------------------------

_VAR = re.compile(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"')


_RUNTIME = REPO / "crates" / "runtime" / "src"
_SETTING = re.compile(r'pub const ([A-Z][A-Z0-9_]*): IntSetting = IntSetting \{\s*var: "([A-Z0-9_]+)"')
_READER = re.compile(r"pub fn (\w+)\(&self\)")


@functools.lru_cache(maxsize=None)
def _runtime_settings() -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """What gpudev-runtime reads on a program's behalf: its declared settings (constant name ->
    variable) and the variables each of Env's argument-less readers (`catalog()`, `quotas()`,
    `log_format()`, ...) reads."""
    texts = [path.read_text(encoding="utf-8") for path in _RUNTIME.rglob("*.rs")]
    consts: dict[str, str] = {}
    for text in texts:
        consts.update(_SETTING.findall(text))
    readers: dict[str, frozenset[str]] = {}
    for text in texts:
        parts = _READER.split(text)
        for name, body in zip(parts[1::2], parts[2::2]):
            body = body.split("\n    }\n", 1)[0]
            named = {var for const, var in consts.items() if re.search(rf"\b{const}\b", body)}
            readers[name] = frozenset(set(_VAR.findall(body)) | named)
    return consts, readers


def _read_through_runtime(text: str) -> set[str]:
    """Variables a source reads through gpudev-runtime: the shared settings it names
    (`shared::MAX_NODES`) and the readers it calls (`env.quotas()`)."""
    consts, readers = _runtime_settings()
    names = {var for const, var in consts.items() if re.search(rf"\bshared::{const}\b", text)}
    for reader, variables in readers.items():
        if re.search(rf"\.{reader}\(\)", text):
            names |= variables
    return names


@functools.lru_cache(maxsize=None)
def env_vars_read_by(crate: str) -> frozenset[str]:
    """Environment variable names a crate's sources name as string literals or read through
    gpudev-runtime, plus the shared database settings (gpudev-store's DbConfig), which every
    program reads."""
    names: set[str] = set()
    sealing = REPO / "crates" / "store" / "src" / "sealing.rs"
    for source in [*(REPO / "crates" / crate / "src").rglob("*.rs"), REPO / "crates" / "store" / "src" / "config.rs"]:
        text = source.read_text(encoding="utf-8")
        names.update(_VAR.findall(text))
        names.update(_read_through_runtime(text))
        # The secrets keys are read by gpudev-store's `SealingKeys::from_lookup`.
        if "SealingKeys::from_lookup" in text:
            names.update(_VAR.findall(sealing.read_text(encoding="utf-8")))
    # Read by libraries rather than by our code: the log filter (tracing-subscriber's EnvFilter)
    # and the Kubernetes client's configuration file.
    names.update({"RUST_LOG", "KUBECONFIG"})
    # clap's `env = "QUEUE_NAME"` in gpudev-admin.
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def config_vars_of(crate: str) -> frozenset[str]:
    """Variables read in a crate's config.rs (its documented settings), without the database."""
    path = REPO / "crates" / crate / "src" / "config.rs"
    if not path.exists():
        return frozenset()
    return frozenset(_VAR.findall(path.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=None)
def exported_metrics(crate: str) -> frozenset[str]:
    """Full Prometheus names a crate exports: its registry prefix + each metric's name."""
    text = (REPO / "crates" / crate / "src" / "metrics.rs").read_text(encoding="utf-8")
    prefix = re.search(r'Registry::new_custom\(Some\("([a-z_]+)"', text).group(1)
    names = set()
    for name in re.findall(r'"([a-z][a-z0-9_]*)"', text):
        names.add(f"{prefix}_{name}")
    return frozenset(names)


def gpudev_metric_names(expr: str) -> set[str]:
    """gpudev_* metric names used in a PromQL expression, without histogram suffixes."""
    found = set()
    for name in re.findall(r"\b(gpudev_[a-z0-9_]+)", expr):
        found.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return found


# ---- compose -----------------------------------------------------------------------------------


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-style interpolation of one string: $$ escapes, ${VAR}, ${VAR:-default},
    ${VAR-default}, $VAR (nested defaults allowed)."""
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = value[i + 1] if i + 1 < len(value) else ""
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            depth, j = 1, i + 2
            while j < len(value) and depth:
                depth += {"{": 1, "}": -1}.get(value[j], 0)
                j += 1
            body = value[i + 2 : j - 1]
            m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:-|-)?(.*)", body, re.S)
            if not m:
                raise ValueError(f"bad interpolation ${{{body}}}")
            name, sep, default = m.groups()
            v = env.get(name)
            if v is None or (sep == ":-" and v == ""):
                v = interpolate(default, env) if sep else ""
            out.append(v)
            i = j
            continue
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", value[i + 1 :])
        if m:
            out.append(env.get(m.group(0), ""))
            i += 1 + len(m.group(0))
            continue
        out.append("$")
        i += 1
    return "".join(out)


def interpolate_all(node, env):
    if isinstance(node, dict):
        return {k: interpolate_all(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_all(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def compose(env: dict[str, str] | None = None) -> dict:
    """docker/compose.yaml as Compose sees it: YAML merge keys resolved, variables interpolated."""
    with open(DOCKER / "compose.yaml", encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    return interpolate_all(raw, env if env is not None else {"HOME": "/home/dev"})


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)
