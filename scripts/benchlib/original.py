"""gpudev-api side by side with the API service of the system it replaces, in one run.

Run through scripts/bench-original, which builds the release binaries first. The original's
sources are not part of this repository: the first argument names a clone of its repository
(read at ORIGINAL_COMMIT, the last commit that has its API service and PGMQ schema) or a
directory holding its `terraform-gpu-devservers/` tree.

Both services run on loopback against one PostgreSQL server with default durable settings,
each in its own database seeded alike: 64 users with a key each and a history of reservations.
The original runs as its Dockerfile runs it (uvicorn, one worker) from a virtualenv with its own
pinned requirements; gpudev-api is the release build with default settings and raised quotas, as
scripts/bench-api runs it. Every case runs the services in turn, REPEATS times, alternating which
goes first; each run is preceded by a short warm-up, and a figure is the median of its runs.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from api import HISTORY, SEED_HISTORY, USERS, api_settings, median_of, status_mib, wrk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from local import Postgres, free_port, machine, run, stop, wait_http, write_bench_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
# The last commit of the original's repository (wdvr/osdc, branch feat/k8s-direct) that has its
# API service and the PostgreSQL + PGMQ schema it runs on.
ORIGINAL_COMMIT = "079b7f87e6652ce007af9cacb21a6e34867b2702"
TREE = "terraform-gpu-devservers"
SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP_SECONDS", "3"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "2"))
ONLY = [c for c in os.environ.get("BENCH_ONLY", "").split(",") if c]
# A directory with an earlier release build of gpudev-api and gpudev-admin, measured in the same
# run as a third service (the report then has its columns too).
BEFORE = os.environ.get("BENCH_BEFORE")
# How the report names that build (a commit, say).
BEFORE_NAME = os.environ.get("BENCH_BEFORE_NAME", "before")
COMMAND = "scripts/bench-original ORIGINAL"
# The original client's own submit body (GPU type and count in env_vars), naming a GitHub user
# so that gpudev's SSH-access check at submit passes (the original only passes it on).
SUBMIT_BODY = json.dumps({"image": "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel",
                          "instance_type": "p5.48xlarge", "duration_hours": 4,
                          "env_vars": {"GPU_TYPE": "h100", "GPU_COUNT": "1", "GITHUB_USER": "octocat"}})
# (case, connections, script, path): what each service is asked, in the report's order.
CASES = [
    ("`GET /health`", 64, None, "/health"),
    ("`GET /v1/jobs?limit=10`, 64 users' keys", 64, "get.lua", "/v1/jobs?limit=10"),
    ("`GET /v1/jobs/{id}`, 64 users' keys", 64, "get_one.lua", "/"),
    ("`POST /v1/jobs/submit`, one key", 8, "submit_one.lua", "/v1/jobs/submit"),
    ("`POST /v1/jobs/submit`, one key", 64, "submit_one.lua", "/v1/jobs/submit"),
    ("`POST /v1/jobs/submit`, 64 users' keys", 8, "submit.lua", "/v1/jobs/submit"),
    ("`POST /v1/jobs/submit`, 64 users' keys", 64, "submit.lua", "/v1/jobs/submit"),
]

# The original's users, keys and reservation histories, shaped like gpudev's (SEED_HISTORY):
# per user HISTORY reservations, the newest queued and the rest ended. Its reservations name
# their owner by username, and its keys are stored as SHA-256 hex digests.
ORIGINAL_SEED = f"""
INSERT INTO api_users (username) SELECT 'bench' || i FROM generate_series(0, {USERS} - 1) i;
INSERT INTO reservations (reservation_id, user_id, status, gpu_type, gpu_count, instance_type,
    duration_hours, created_at, launched_at, expires_at, name, pod_name, github_user)
SELECT gen_random_uuid()::text, u.username, CASE WHEN i = 1 THEN 'queued' WHEN i % 7 = 0 THEN 'cancelled' ELSE 'expired' END,
    't4', 1 + i % 4, CASE WHEN i > 1 THEN 'g4dn.xlarge' END, 2, now() - make_interval(hours => i * 5),
    CASE WHEN i > 1 THEN now() - make_interval(hours => i * 5 - 1) END,
    CASE WHEN i > 1 THEN now() - make_interval(hours => i * 5 - 3) END,
    'bench', 'gpu-dev-bench', 'octocat'
FROM api_users u, generate_series(1, {HISTORY}) i
ORDER BY i, u.user_id;
"""


def original_sources(source, workdir):
    """The original's `terraform-gpu-devservers` tree: `source` itself when it holds one, else
    extracted from the git repository `source` at ORIGINAL_COMMIT."""
    tree = Path(source) / TREE
    if (tree / "api-service" / "app" / "main.py").exists():
        return tree
    archive = subprocess.run(["git", "-C", source, "archive", ORIGINAL_COMMIT, f"{TREE}/api-service",
                              f"{TREE}/database"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive, check=True)
    return workdir / TREE


def original_venv(requirements):
    """A virtualenv with the original's pinned requirements, kept under the user's cache by
    their digest (made again when missing)."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpudev"
    venv = cache / f"original-venv-{digest}"
    if not (venv / "bin" / "uvicorn").exists():
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(requirements)])
    return venv


class Service:
    """One API under test: its process, address and the keys and job ids of its bench users."""

    def __init__(self, name, proc, base, keys, job_ids):
        self.name, self.proc, self.base, self.keys, self.job_ids = name, proc, base, keys, job_ids
        self.peak_mib = 0.0

    def sample_memory(self):
        self.peak_mib = max(self.peak_mib, status_mib(self.proc.pid, "VmHWM"))


def psql(pg, db):
    return [str(pg.bindir / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-q",
            "-v", "ON_ERROR_STOP=1", db]


def start_original(pg, tree, venv):
    run(psql(pg, "postgres") + ["-c", "CREATE DATABASE original"])
    run(psql(pg, "original") + ["-c", "CREATE EXTENSION pgmq"])
    for sql in sorted((tree / "database" / "schema").glob("*.sql")) + sorted(
            (tree / "database" / "fixtures").glob("*.sql")):
        run(psql(pg, "original") + ["-f", str(sql)])
    keys = [f"bench-original-key-{i:02d}-" + hashlib.sha256(f"k{i}".encode()).hexdigest()[:24]
            for i in range(USERS)]
    values = ",".join(f"('bench{i}', '{hashlib.sha256(k.encode()).hexdigest()}', '{k[:8]}')"
                      for i, k in enumerate(keys))
    run(psql(pg, "original") + ["-c", ORIGINAL_SEED, "-c",
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, expires_at) SELECT u.user_id, v.h, v.p, "
        f"now() + interval '30 days' FROM (VALUES {values}) v(name, h, p) JOIN api_users u ON u.username = v.name",
        "-c", "VACUUM ANALYZE"])
    job_ids = run(psql(pg, "original") + ["-At", "-c",
        "SELECT reservation_id FROM reservations r JOIN api_users u ON u.username = r.user_id "
        "WHERE status = 'queued' ORDER BY u.user_id"]).stdout.split()
    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{pg.port}/original")
    proc = subprocess.Popen([str(venv / "bin" / "uvicorn"), "app.main:app", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=tree / "api-service", env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health", "the original API", proc)
    return Service("original", proc, base, keys, job_ids)


def start_gpudev(pg, name, bindir, db):
    run(psql(pg, "postgres") + ["-c", f"CREATE DATABASE {db}"])
    url = f"postgres://postgres@127.0.0.1:{pg.port}/{db}"
    env = dict(os.environ, DATABASE_URL=url)
    admin = str(Path(bindir) / "gpudev-admin")
    run([admin, "migrate"], env=env)
    keys = []
    for i in range(USERS):
        run([admin, "users", "create", f"bench{i}"], env=env)
        keys.append(run([admin, "keys", "create", "--user", f"bench{i}"], env=env).stdout.strip())
    run(psql(pg, db) + ["-c", SEED_HISTORY, "-c", "VACUUM ANALYZE"])
    job_ids = run(psql(pg, db) + ["-At", "-c", "SELECT DISTINCT ON (user_id) reservation_id FROM reservations "
                                  "WHERE status = 'queued' ORDER BY user_id"]).stdout.split()
    port, mport = free_port(), free_port()
    proc = subprocess.Popen([str(Path(bindir) / "gpudev-api")], env=dict(env, **api_settings(port, mport)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health", name, proc)
    return Service(name, proc, base, keys, job_ids)


def write_scripts(service, scripts):
    """The wrk scripts of `service` (its keys and job ids) in `scripts`; returns the directory."""
    d = scripts / service.name
    d.mkdir()
    lua_keys = "local keys = {" + ",".join(f'"{k}"' for k in service.keys) + "}\n"
    by_key = "request = function()\n  i = i + 1\n  local n = (i % #keys) + 1\n" \
             '  wrk.headers["Authorization"] = "Bearer " .. keys[n]\n'
    (d / "get.lua").write_text(lua_keys + "local i = 0\n" + by_key + "  return wrk.format(nil)\nend\n")
    (d / "get_one.lua").write_text(
        lua_keys + "local ids = {" + ",".join(f'"{j}"' for j in service.job_ids) + "}\nlocal i = 0\n"
        + by_key + '  return wrk.format(nil, "/v1/jobs/" .. ids[n])\nend\n')
    post = f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{SUBMIT_BODY}\'\n'
    (d / "submit_one.lua").write_text(post + f'wrk.headers["Authorization"] = "Bearer {service.keys[0]}"\n')
    (d / "submit.lua").write_text(lua_keys + post + "local i = 0\n" + by_key + "  return wrk.format(nil)\nend\n")
    return d


def measure(services, scripts):
    """Every case on every service, alternated; returns {(case, conns): {service name: figures}}."""
    results = {}
    cases = [c for c in CASES if not ONLY or any(o in f"{c[0]} {c[1]}" for o in ONLY)]
    for case, conns, script, path in cases:
        runs = {s.name: [] for s in services}
        for repeat in range(REPEATS):
            order = services if repeat % 2 == 0 else services[::-1]
            for s in order:
                lua = str(scripts[s.name] / script) if script else None
                wrk(f"{s.base}{path}", conns, lua, WARMUP_SECONDS)
                runs[s.name].append(wrk(f"{s.base}{path}", conns, lua, SECONDS))
                s.sample_memory()
        results[(case, conns)] = {name: median_of(r) for name, r in runs.items()}
        print(case, conns, {n: round(r["rps"]) for n, r in results[(case, conns)].items()}, file=sys.stderr)
    return results


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/bench-original ORIGINAL (a clone of the original's repository, or a "
                 f"directory holding its {TREE}/ tree)")
    workdir = Path(tempfile.mkdtemp(prefix="gpudev-side-"))
    pg = Postgres(workdir, "-c max_connections=300")
    services = []
    try:
        tree = original_sources(sys.argv[1], workdir)
        venv = original_venv(tree / "api-service" / "requirements.txt")
        pg.start()
        services.append(start_original(pg, tree, venv))
        if BEFORE:
            services.append(start_gpudev(pg, f"gpudev {BEFORE_NAME}", BEFORE, "gpudev_before"))
        services.append(start_gpudev(pg, "gpudev", TARGET, "gpudev_now"))
        scripts_dir = workdir / "wrk"
        scripts_dir.mkdir()
        scripts = {s.name: write_scripts(s, scripts_dir) for s in services}
        results = measure(services, scripts)
        report(services, results)
    finally:
        for s in services:
            s.proc.send_signal(signal.SIGTERM)
            try:
                s.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(s.proc)
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(services, results):
    names = [s.name for s in services]
    others = names[1:]
    head = "| Case | Connections | " + " | ".join(f"{n} req/s" for n in names) + " | " + " | ".join(
        f"{n} ÷ original" for n in others) + " | p99 ms (" + " / ".join(names) + ") |"
    lines = [
        "<!-- original-bench:start -->",
        "## Side by side with the original API service",
        "",
        f"Command: `{COMMAND}`"
        + (f" with `BENCH_BEFORE` naming a release build of gpudev {BEFORE_NAME} (its columns)" if BEFORE else "")
        + f" (wrk with 2 threads, {SECONDS} s runs each after a {WARMUP_SECONDS} s warm-up, median of "
        f"{REPEATS} runs with the services alternated; one PostgreSQL with default durable settings "
        "for all).",
        f"Machine: {machine()}. Measured {time.strftime('%Y-%m-%d')}.",
        "",
        head,
        "|---|---:|" + "---:|" * (len(names) + len(others)) + "---|",
    ]
    for (case, conns), by in results.items():
        orig = by["original"]["rps"]
        lines.append(
            f"| {case} | {conns} | " + " | ".join(f"{by[n]['rps']:,.0f}" for n in names) + " | "
            + " | ".join(f"{by[n]['rps'] / orig:.2f}×" for n in others) + " | "
            + " / ".join(f"{by[n]['p99']:.0f}" for n in names)
            + (" (errors: " + ", ".join(f"{n} {by[n]['errors']}" for n in names if by[n]["errors"]) + ")"
               if any(by[n]["errors"] for n in names) else "") + " |")
    lines += [
        "",
        "Peak resident memory (VmHWM) through the run: "
        + ", ".join(f"{s.name} {s.peak_mib:.0f} MiB" for s in services) + ".",
        "",
        f"The original is its API service at commit `{ORIGINAL_COMMIT[:7]}` of its repository "
        "(the last with the API service and its PGMQ schema), run with one uvicorn worker as its "
        "Dockerfile runs it, from a virtualenv with its pinned requirements, on a database made "
        "from its own schema files. Each service has its own database on the same server, "
        f"seeded alike: {USERS} users with a key each and {HISTORY} reservations per user (one "
        "queued). Submits carry the original client's body (an h100 in `env_vars`, and a GitHub "
        "user, which gpudev checks at submit). The original's submit sends its queue message "
        "and records the key's last use; it stores no reservation row, no event, no audit record "
        "and checks no quota, all of which gpudev's submit does in the same transaction. gpudev "
        "runs with default settings but for raised quotas and rate limits (a benchmark, not a "
        "user), as `scripts/bench-api` runs it.",
        "<!-- original-bench:end -->",
    ]
    if ONLY:
        print("\n".join(lines))
        return
    write_bench_section("<!-- original-bench:start -->", "<!-- original-bench:end -->", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
