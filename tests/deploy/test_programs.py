"""The real programs accept the settings the chart gives them.

Each workload's environment is assembled from the rendered chart exactly as Kubernetes would
(ConfigMaps through envFrom, then env, with placeholder values for Secret references) and the
program is started with it. Every program reads all its settings before doing anything else and
exits with status 2 on a bad one, so a program that gets past that point (it then fails to reach
the database or the cluster, or keeps running) accepted the chart's settings.

The binaries come from the workspace's target directory; scripts/check-deploy builds them."""

from __future__ import annotations

import base64
import functools
import os
import tempfile
import socket
import subprocess
import time
from pathlib import Path

import pytest

import support
from support import one, render_scenario, workloads

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", support.REPO / "target")) / "debug"


def binary(command: list[str]) -> Path:
    path = TARGET / Path(command[0]).name
    if not path.exists():
        pytest.skip(f"{path} is not built (scripts/check-deploy builds it)")
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@functools.cache
def test_certificates() -> dict[str, Path]:
    """A self-signed CA and a client certificate and key signed by it, as files (openssl)."""
    folder = Path(tempfile.mkdtemp(prefix="gpudev-deploy-certs-"))
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    cert, key, csr = folder / "tls.crt", folder / "tls.key", folder / "tls.csr"
    quiet = {"check": True, "capture_output": True}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "1", "-subj", "/CN=test-ca"], **quiet)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(csr), "-subj", "/CN=gpudev"], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(cert), "-days", "1"], **quiet)
    return {"POSTGRES_SSLROOTCERT": ca, "POSTGRES_SSLCERT": cert, "POSTGRES_SSLKEY": key}


def environment(objects, spec, port: int) -> dict[str, str]:
    """The container's environment as the kubelet would build it, pointed at nowhere."""
    [c] = spec["containers"]
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:  # a Secret reference: a placeholder of the right shape
            env[e["name"]] = {
                "DATABASE_URL": f"postgres://gpudev:pw@127.0.0.1:{port}/gpudev",
                "POSTGRES_PASSWORD": "placeholder",
                "EXPIRY_WEBHOOK_URL": "https://hooks.example.com/placeholder",
                "SECRETS_ENCRYPTION_KEYS": "placeholder-1:" + base64.b64encode(bytes(32)).decode(),
                "OIDC_CONSOLE_CLIENT_SECRETS_JSON": '{"https://login.example.com": "placeholder"}',
            }[e["name"]]
    # Nothing listens on the database address; nothing is reachable as a cluster.
    if "POSTGRES_HOST" in env:
        env["POSTGRES_HOST"], env["POSTGRES_PORT"] = "127.0.0.1", str(port)
    for key in ("BIND_ADDR", "METRICS_ADDR"):
        if key in env:
            assert env[key].startswith("0.0.0.0:"), env[key]
            env[key] = "127.0.0.1:0"  # never listen on this machine's public addresses
    # Certificate files the chart mounts from Secrets: real ones of the right kind, made here.
    for key in ("POSTGRES_SSLROOTCERT", "POSTGRES_SSLCERT", "POSTGRES_SSLKEY"):
        if key in env:
            env[key] = str(test_certificates()[key])
    env["DB_CONNECT_TIMEOUT_SECONDS"] = "1"
    env["KUBECONFIG"] = "/nonexistent/kubeconfig"
    env["HOSTNAME"] = "check-deploy"
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return env


@pytest.mark.parametrize("scenario", ["default", "full", "external-db-password", "external-db-url", "cloudnativepg-example"])
def test_every_program_accepts_the_settings_the_chart_gives_it(scenario):
    objects = render_scenario(scenario)
    port = closed_port()
    for comp, _, spec in workloads(objects):
        command = spec["containers"][0]["command"]
        env = environment(objects, spec, port)
        proc = subprocess.Popen(
            [str(binary(command)), *command[1:]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, err = proc.communicate(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        assert proc.returncode != 2 and "configuration error" not in err, (
            f"{scenario}/{comp}: {command[0]} refused the chart's settings: {err.strip()[-800:]}"
        )
        # It got as far as trying the database (or the cluster), so every setting was read.
        assert proc.returncode != 0, f"{scenario}/{comp} should not succeed without a database: {err}"


def test_a_bad_setting_is_caught_by_this_check():
    # Guards against a check that passes everything: the same start-up with one bad value.
    objects = render_scenario("default")
    [(comp, spec)] = [(c, s) for c, _, s in workloads(objects) if c == "processor"]
    env = environment(objects, spec, closed_port())
    env["MAX_READS"] = "many"
    result = subprocess.run([str(binary(spec["containers"][0]["command"]))], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "MAX_READS" in result.stderr


# ---- against a real PostgreSQL with PGMQ ---------------------------------------------------------


def pg_bindir() -> Path:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("PostgreSQL is not installed (scripts/install-pgmq installs it)")
    return Path(out.strip())


def as_postgres(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster with a database `gpudev` owned by the non-superuser role
    `gpudev` (password auth over TCP), as docs/DEPLOYMENT.md tells operators to set it up."""
    import shutil
    import tempfile

    bindir = pg_bindir()
    data = Path(tempfile.mkdtemp(prefix="gpudev-check-deploy-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = closed_port()
    subprocess.run(
        as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                     "--auth-local=trust", "--auth-host=scram-sha-256"]),
        check=True, capture_output=True,
    )
    subprocess.run(
        as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "-o",
                     f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data} -c fsync=off",
                     "start"]),
        check=True, capture_output=True,
    )
    try:
        # Two commands: CREATE DATABASE cannot run inside a transaction.
        subprocess.run(as_postgres([str(bindir / "psql"), "-h", str(data), "-p", str(port), "-U", "postgres",
                                    "-v", "ON_ERROR_STOP=1", "-q",
                                    "-c", "CREATE ROLE gpudev LOGIN PASSWORD 'chart-test'",
                                    "-c", "CREATE DATABASE gpudev OWNER gpudev", "postgres"]),
                       check=True, capture_output=True)
        yield port
    finally:
        subprocess.run(as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def http_get(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_chart_migration_and_api_run_against_postgres_with_pgmq(postgres):
    """The hook's command migrates a database owned by a non-superuser role (it creates the pgmq
    extension itself), and the API started with the chart's settings answers its probes."""
    values = support.load_values(support.SCENARIOS["external-db-password"])
    values["database"].update({"host": "127.0.0.1", "port": postgres, "password": "chart-test", "name": "gpudev", "user": "gpudev"})
    values["config"] = {"queueName": "gpu_reservations_chart"}
    objects = support.render(values)
    by_comp = {c: s for c, _, s in workloads(objects)}

    def env_of(comp):
        env = environment(objects, by_comp[comp], postgres)
        env["POSTGRES_PASSWORD"] = "chart-test"
        return env

    migrate = by_comp["migration"]["containers"][0]["command"]
    result = subprocess.run([str(binary(migrate)), *migrate[1:]], env=env_of("migration"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "queue gpu_reservations_chart ready" in result.stdout

    env = env_of("api")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        api_port = s.getsockname()[1]
    env["BIND_ADDR"] = f"127.0.0.1:{api_port}"
    command = by_comp["api"]["containers"][0]["command"]
    proc = subprocess.Popen([str(binary(command))], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        container = by_comp["api"]["containers"][0]
        ready = None
        for _ in range(100):
            if proc.poll() is not None:
                break
            try:
                ready = http_get(f"http://127.0.0.1:{api_port}{container['readinessProbe']['httpGet']['path']}")
                break
            except OSError:
                time.sleep(0.1)
        assert ready == 200, proc.stderr.read() if proc.poll() is not None else f"readiness answered {ready}"
        assert http_get(f"http://127.0.0.1:{api_port}{container['livenessProbe']['httpGet']['path']}") == 200
        assert http_get(f"http://127.0.0.1:{api_port}/health") == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
