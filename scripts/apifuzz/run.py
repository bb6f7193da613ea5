"""Property-based tests of the running gpudev-api against its own OpenAPI document (schemathesis).

Starts a throwaway PostgreSQL with PGMQ, a local STS (moto, strict authentication), a built
gpudev-api, and gpudev-processor over the test kit's fake Kubernetes API server (so the scheduler
has published its state, which bookings are checked against), all on 127.0.0.1; creates an admin user and an API key with gpudev-admin; then runs
`schemathesis run` over every operation of /openapi.json with the key. The run fails on any 5xx,
on any answer the document does not describe (status code, body schema, content type, headers),
on a schema-breaking request answered with a 2xx, on a schema-valid one refused, and on the other
checks listed at CHECKS (exceptions per operation, with reasons, in schemathesis.toml).

Run through scripts/schemathesis, which installs the tools and builds the binaries first.

    SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase   (default 10)
    SCHEMATHESIS_SEED          random seed                          (default 8; "random" for a new one)
    SCHEMATHESIS_WORKERS       concurrent workers                   (default 1)
    SCHEMATHESIS_PHASES        phases to run                        (default all four)
    SCHEMATHESIS_CHECKS        checks to run                        (default: see CHECKS)
    SCHEMATHESIS_EXCLUDE_CHECKS checks to leave out                 (default: see EXCLUDED_CHECKS)
    SCHEMATHESIS_REPORT_DIR    where reports go                     (default target/schemathesis)

Extra arguments are passed to `schemathesis run` (e.g. --include-path-regex /v1/jobs).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from local import Postgres, VENV_BIN, free_port, run, start_sts, stop, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = TARGET / os.environ.get("SCHEMATHESIS_PROFILE", "debug")
REPORT_DIR = Path(os.environ.get("SCHEMATHESIS_REPORT_DIR", TARGET / "schemathesis"))
USERNAME = "schemathesis"
# Every check: no 5xx; every answer as the document describes it (status, body, content type,
# headers); requests that break the schema refused with a 4xx and requests it allows accepted;
# authentication enforced; an undeclared method answered 405 with `Allow`; a deleted resource
# gone and a created one there. The few operations where the document cannot state what the
# deployment accepts are listed, with their reasons, in CONFIG.
CHECKS = "all"
EXCLUDED_CHECKS = ""
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"


def main(extra_args):
    workdir = Path(tempfile.mkdtemp(prefix="gpudev-schemathesis-"))
    # Throwaway data: durability only costs time here.
    pg = Postgres(workdir, "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    moto = api = cluster = processor = None
    api_log_path = REPORT_DIR / "api.log"
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    # Reports of earlier runs would pile up (the cassettes are megabytes): keep this run's only.
    for old in [*REPORT_DIR.glob("junit-*.xml"), *REPORT_DIR.glob("vcr-*.yaml")]:
        old.unlink()
    try:
        env = dict(os.environ, DATABASE_URL=pg.start())
        run([str(BIN / "gpudev-admin"), "migrate"], env=env)
        run([str(BIN / "gpudev-admin"), "users", "create", "--admin", USERNAME], env=env)

        # The logins call STS: a local moto in strict mode, so no request ever leaves this machine.
        moto, sts, _ = start_sts()

        port, metrics_port = free_port(), free_port()
        api_env = dict(
            env,
            BIND_ADDR=f"127.0.0.1:{port}",
            METRICS_ADDR=f"127.0.0.1:{metrics_port}",
            AWS_ENDPOINT_URL_STS=sts,
            STS_ALLOWED_HOSTS=sts.removeprefix("http://"),
            # Limits high enough that the generated traffic tests the handlers, not the limiters or
            # the quota (their 429 and 409 answers are documented and covered by the Rust tests).
            RATE_LIMIT_PER_MINUTE="1000000",
            RATE_LIMIT_BURST="1000000",
            LOGIN_RATE_LIMIT_PER_MINUTE="100000",
            MAX_QUEUED_RESERVATIONS_PER_USER="0",
            MAX_GPUS_PER_USER="100000000",
            KEY_CACHE_SECONDS="0",
            RUST_LOG="warn",
            LOG_FORMAT="json",
        )
        # The scheduler: the fake cluster (seeded with nodes of every GPU type) and the processor,
        # whose first pass publishes the queue's state.
        kubeconfig = workdir / "kubeconfig"
        cluster = subprocess.Popen(
            [str(BIN / "gpudev-fake-cluster")],
            env=dict(env, FAKE_CLUSTER_ADDR=f"127.0.0.1:{free_port()}", FAKE_CLUSTER_KUBECONFIG=str(kubeconfig)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if kubeconfig.exists() and kubeconfig.stat().st_size > 0:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("the fake Kubernetes API server did not start")
        processor_log = open(REPORT_DIR / "processor.log", "w")
        processor = subprocess.Popen(
            [str(BIN / "gpudev-processor")],
            env=dict(env, KUBECONFIG=str(kubeconfig), METRICS_ADDR=f"127.0.0.1:{free_port()}",
                     SCHEDULER_INTERVAL_SECONDS="2", POLL_SECONDS="1", RUST_LOG="warn", LOG_FORMAT="json",
                     MAX_GPUS_PER_USER="100000000"),
            stdout=processor_log, stderr=processor_log)
        psql = [str(pg.bindir / "psql"), env["DATABASE_URL"], "-Atqc", "SELECT count(*) FROM scheduler_state"]
        for _ in range(300):
            if run(psql).stdout.strip() == "1":
                break
            if processor.poll() is not None:
                raise SystemExit(f"gpudev-processor exited; see {REPORT_DIR / 'processor.log'}")
            time.sleep(0.1)
        else:
            raise SystemExit("the scheduler published no state within 30 s")

        api_log = open(api_log_path, "w")
        api = subprocess.Popen([str(BIN / "gpudev-api")], env=api_env, stdout=api_log, stderr=api_log)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", "gpudev-api", api)

        seed = os.environ.get("SCHEMATHESIS_SEED", "8")
        cmd = [
            str(VENV_BIN / "schemathesis"), "--config-file", str(CONFIG), "run", f"{base}/openapi.json",
            "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"),
            "--workers", os.environ.get("SCHEMATHESIS_WORKERS", "1"),
            "--phases", os.environ.get("SCHEMATHESIS_PHASES", "examples,coverage,fuzzing,stateful"),
            "--generation-database", "none",
            "--request-timeout", "30",
            "--no-color",
            "--report", "junit,vcr",
            "--report-dir", str(REPORT_DIR),
        ]
        # Every check unless told otherwise: naming them on the command line would override the
        # per-operation exceptions of CONFIG.
        if os.environ.get("SCHEMATHESIS_CHECKS", CHECKS) != "all":
            cmd += ["--checks", os.environ["SCHEMATHESIS_CHECKS"]]
        excluded = os.environ.get("SCHEMATHESIS_EXCLUDE_CHECKS", EXCLUDED_CHECKS)
        if excluded:
            cmd += ["--exclude-checks", excluded]
        if seed != "random":
            cmd += ["--seed", seed]
        cmd += extra_args
        st_env = dict(
            os.environ,
            SCHEMATHESIS_HOOKS="gpudev_auth",
            PYTHONPATH=str(ROOT / "scripts" / "apifuzz"),
            GPUDEV_ADMIN=str(BIN / "gpudev-admin"),
            GPUDEV_SCHEMATHESIS_USER=USERNAME,
            DATABASE_URL=env["DATABASE_URL"],
        )
        print(f"==> schemathesis against {base} (seed {seed}); API log in {api_log_path}", flush=True)
        started = time.monotonic()
        # From the report directory: schemathesis keeps a cache of crashes in its working directory.
        code = subprocess.run(cmd, env=st_env, cwd=REPORT_DIR).returncode
        print(f"==> schemathesis finished in {time.monotonic() - started:.0f} s with exit code {code}")
        if api.poll() is not None:
            print(f"gpudev-api died during the run (exit {api.returncode}); see {api_log_path}", file=sys.stderr)
            code = code or 1
        return code
    finally:
        stop(api)
        stop(processor)
        stop(cluster)
        stop(moto)
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
