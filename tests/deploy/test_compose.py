"""docker/compose.yaml: valid Compose, the same commands and hardening as the chart, a working
local STS set-up, and a CronJob loop that really loops. No Docker engine is needed: the file is
read as Compose reads it (merge keys, interpolation) and checked with the compose_spec parser."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

import support
from support import COMMANDS, render_scenario, workloads

# compose service -> chart component
SERVICES = {
    "migrate": "migration",
    "api": "api",
    "processor": "processor",
    "availability": "availability",
    "expiry": "expiry",
}
LOOPED = {"availability", "expiry"}


@pytest.fixture(scope="module")
def stack():
    return support.compose()


def test_compose_file_is_valid_compose(stack):
    from compose_spec import PyCompose

    parsed = PyCompose.from_json(json.dumps(stack))
    parsed.validate()
    parsed.to_spec()  # the full Compose specification model
    assert set(parsed.service_names()) == {"postgres", "sts", "sts-setup", *SERVICES}


def test_the_compose_parser_rejects_a_broken_file(stack):
    # Guards against a parser that accepts anything.
    from compose_spec import PyCompose

    broken = json.loads(json.dumps(stack))
    broken["services"]["api"]["restart"] = "sometimes"
    with pytest.raises(ValueError):
        PyCompose.from_json(json.dumps(broken))


def test_references_between_services_and_volumes_resolve(stack):
    services = stack["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in stack.get("volumes", {}), f"{name} mounts undeclared volume {source}"
    for name in ("api", "processor", "availability", "expiry"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_every_gpudev_service_runs_the_same_command_as_the_chart(stack):
    chart = {comp: spec["containers"][0]["command"] for comp, _, spec in workloads(render_scenario("default"))}
    for service, comp in SERVICES.items():
        command = stack["services"][service]["command"]
        assert command == chart[comp] == COMMANDS[comp], service
        if service in LOOPED:
            # The loop wrapper runs the command unchanged ("$@").
            entry = stack["services"][service]["entrypoint"]
            assert entry[:2] == ["/busybox/sh", "-c"] and '"$@"' in entry[2]
            assert stack["services"][service]["build"]["target"] == "local-loop"
        else:
            assert "entrypoint" not in stack["services"][service]
            assert stack["services"][service]["build"]["target"] == "runtime"


def test_gpudev_services_are_hardened_like_the_chart(stack):
    for service in SERVICES:
        s = stack["services"][service]
        assert s["user"] == "65532:65532", service
        assert s["read_only"] is True, service
        assert s["cap_drop"] == ["ALL"], service
        assert "no-new-privileges:true" in s["security_opt"], service
        assert s["build"]["context"] == ".." and s["build"]["dockerfile"] == "docker/Dockerfile"


# Read by the AWS SDK's credential chain rather than by our code.
AWS_SDK_VARS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_every_variable_compose_sets_is_read_by_the_program(stack):
    import yaml

    raw = yaml.safe_load((support.DOCKER / "compose.yaml").read_text())
    shared = set(raw["x-database"])
    everyone = set().union(*(support.env_vars_read_by(c) for c in set(support.CRATES.values())))
    assert not shared - everyone, sorted(shared - everyone)
    for service, comp in SERVICES.items():
        reads = support.env_vars_read_by(support.CRATES[comp]) | AWS_SDK_VARS | {"LOOP_SECONDS"}
        unread = set(stack["services"][service]["environment"]) - shared - reads
        assert not unread, f"{service}: {sorted(unread)}"


def test_images_are_pinned_upstream_versions(stack):
    services = stack["services"]
    assert re.fullmatch(r"ghcr\.io/pgmq/pg\d+-pgmq:v\d+\.\d+\.\d+", services["postgres"]["image"])
    for name in ("sts", "sts-setup"):
        assert re.fullmatch(r"motoserver/moto:\d+\.\d+\.\d+", services[name]["image"])
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_the_cluster_programs_need_the_cluster_profile(stack):
    for name in ("processor", "availability", "expiry"):
        assert stack["services"][name]["profiles"] == ["cluster"]
        assert stack["services"][name]["environment"]["KUBECONFIG"] == "/etc/gpudev/kubeconfig"
    for name in ("postgres", "sts", "sts-setup", "migrate", "api"):
        assert "profiles" not in stack["services"][name]


def test_the_cronjob_loop_runs_its_command_again_and_again(tmp_path, stack):
    # The loop is plain POSIX shell (busybox sh in the image); run it with this machine's sh.
    entry = stack["services"]["availability"]["entrypoint"]
    script = entry[2]
    marker = tmp_path / "runs"
    proc = subprocess.Popen(
        ["sh", "-c", script, entry[3], "sh", "-c", f"echo run >> {marker}; exit 3"],
        env={**os.environ, "LOOP_SECONDS": "0.1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 10
        while time.time() < deadline and (not marker.exists() or marker.read_text().count("run") < 3):
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    assert marker.read_text().count("run") >= 3
    # A failed run is reported and the loop goes on.
    assert "exited with 3" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto():
    port = free_port()
    proc = subprocess.Popen(
        [support.tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("moto did not start")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sts_setup_writes_working_credentials_and_makes_moto_strict(moto, tmp_path):
    env = {
        **os.environ,
        "STS_ENDPOINT": moto,
        "TESTKIT_PY": str(support.REPO / "crates" / "testkit" / "py"),
        "SETUP_OUT": str(tmp_path),
        "ALLOWED_AWS_ROLE": "SSOCloudDevGpuReservation",
        "LOCAL_USER": "alice",
    }
    python = support.tool("python")
    for _ in range(2):  # the second run reuses the admin of the first (moto is strict by then)
        result = support.run([python, str(support.DOCKER / "local" / "sts_setup.py")], env=env)
        assert result.returncode == 0, result.stderr
    login = json.loads((tmp_path / "aws-login.json").read_text())
    assert set(login) == {"aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
    assert "[gpudev-local]" in (tmp_path / "aws-credentials").read_text()
    assert (tmp_path / "aws-login.json").stat().st_mode & 0o077 == 0
    helper = str(support.REPO / "crates" / "testkit" / "py" / "moto_admin.py")
    who = json.loads(support.run([python, helper, "caller-identity", moto, login["aws_access_key_id"],
                                  login["aws_secret_access_key"], login["aws_session_token"]]).stdout)
    assert who == {"status": 200, "arn": "arn:aws:sts::123456789012:assumed-role/SSOCloudDevGpuReservation/alice"}
    garbage = json.loads(support.run([python, helper, "caller-identity", moto, "AKIAGARBAGE000000000", "nope"]).stdout)
    assert garbage["status"] == 403


def test_every_program_accepts_the_settings_compose_gives_it(stack):
    from test_programs import binary, closed_port

    port = closed_port()
    for service, comp in SERVICES.items():
        env = {k: str(v) for k, v in stack["services"][service]["environment"].items()}
        env.update({"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(port), "DB_CONNECT_TIMEOUT_SECONDS": "1",
                    "KUBECONFIG": "/nonexistent/kubeconfig", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        for key in ("BIND_ADDR", "METRICS_ADDR"):
            if key in env:
                env[key] = "127.0.0.1:0"
        command = stack["services"][service]["command"]
        proc = subprocess.Popen([str(binary(command)), *command[1:]], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        assert proc.returncode not in (0, 2) and "configuration error" not in err, f"{service}: {err.strip()[-600:]}"
