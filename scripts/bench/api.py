"""Load test of gpudev-api with wrk, against a pgbench baseline of the same SQL work.

Run through scripts/bench-api, which builds the release binaries first.
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CONNECTIONS = (8, 64)
USERS = 64
COMMAND = "scripts/bench-api"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


class Postgres:
    """A throwaway cluster: initdb as the postgres user when running as root."""

    def __init__(self):
        self.bindir = Path(run(["pg_config", "--bindir"]).stdout.strip())
        self.dir = Path(tempfile.mkdtemp(prefix="gpudev-bench-"))
        self.port = free_port()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres")

    def as_pg(self, args):
        return (["runuser", "-u", "postgres", "--"] if self.root else []) + args

    def start(self):
        data = self.dir / "data"
        run(self.as_pg([str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]))
        # Durable settings, as production: the comparison with pgbench is fair because both use them.
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} -c max_connections=200"
        run(self.as_pg([str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w", "-o", opts, "start"]))
        run([str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-qc", "CREATE DATABASE gpudev", "postgres"])
        return f"postgres://postgres@127.0.0.1:{self.port}/gpudev"

    def stop(self):
        subprocess.run(self.as_pg([str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk(url, conns, script=None):
    cmd = ["wrk", "-t", "2", "-c", str(conns), "-d", f"{SECONDS}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", script]
    out = run(cmd).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        lat[pct] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "p50": lat["50"], "p90": lat["90"], "p99": lat["99"], "errors": errors}


def median_of(runs):
    return {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p90", "p99")} | {
        "errors": sum(r["errors"] for r in runs)
    }


PGBENCH_SUBMIT = """
\\set n random(1, 1000000000)
BEGIN;
SELECT k.key_id, k.expires_at, u.user_id, u.role, u.is_active FROM api_keys k JOIN users u USING (user_id) WHERE k.key_hash = '{keyhash}';
INSERT INTO reservations (reservation_id, user_id, gpu_type, gpu_count, node_count, duration_hours, image, env_names, detailed_status)
  VALUES (gen_random_uuid(), {uid}, 't4', 1, 1, 1.0, 'pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel', '{}', 'waiting in queue');
INSERT INTO reservation_events (reservation_id, kind, to_status, reason, actor)
  SELECT reservation_id, 'transition', 'queued', 'submitted', 'bench' FROM reservations WHERE user_id = {uid} ORDER BY created_at DESC LIMIT 1;
SELECT pgmq.send('gpu_reservations', jsonb_build_object('action', 'create', 'n', :n));
END;
"""


def pgbench(pg, url, conns, keyhash, uid):
    script = Path(pg.dir) / "submit.sql"
    script.write_text(PGBENCH_SUBMIT.replace("{keyhash}", keyhash).replace("{uid}", str(uid)))
    cmd = [str(pg.bindir / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
           "-c", str(conns), "-j", "2", "-T", str(SECONDS), "-f", str(script),
           "gpudev"]
    out = run(cmd).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def main():
    pg = Postgres()
    api = None
    try:
        url = pg.start()
        env = dict(os.environ, DATABASE_URL=url)
        run([str(TARGET / "gpudev-admin"), "migrate"], env=env)
        # Load comes from many users, as in production: submits of one user are serialised by
        # the per-user quota lock, so a single-user load would measure that lock, not the API.
        keys = []
        for i in range(USERS):
            run([str(TARGET / "gpudev-admin"), "users", "create", f"bench{i}"], env=env)
            keys.append(run([str(TARGET / "gpudev-admin"), "keys", "create", "--user", f"bench{i}"], env=env).stdout.strip())
        port, mport = free_port(), free_port()
        api_env = dict(env, BIND_ADDR=f"127.0.0.1:{port}", METRICS_ADDR=f"127.0.0.1:{mport}",
                       RATE_LIMIT_PER_MINUTE="1000000", MAX_ACTIVE_RESERVATIONS_PER_USER="10000000",
                       MAX_GPUS_PER_USER="100000000", DB_POOL_SIZE="32", RUST_LOG="warn", LOG_FORMAT="json")
        api = subprocess.Popen([str(TARGET / "gpudev-api")], env=api_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        scripts = Path(pg.dir)
        lua_keys = "local keys = {" + ",".join(f'"{k}"' for k in keys) + "}\n"
        (scripts / "get.lua").write_text(
            lua_keys
            + "local i = 0\n"
            + "request = function()\n  i = i + 1\n"
            + '  wrk.headers["Authorization"] = "Bearer " .. keys[(i % #keys) + 1]\n'
            + "  return wrk.format(nil)\nend\n"
        )
        (scripts / "submit.lua").write_text(
            lua_keys
            + 'wrk.method = "POST"\n'
            + 'wrk.headers["Content-Type"] = "application/json"\n'
            + 'wrk.body = \'{"gpu_type": "t4", "gpu_count": 1, "duration_hours": 1}\'\n'
            + "local i = 0\n"
            + "request = function()\n  i = i + 1\n"
            + '  wrk.headers["Authorization"] = "Bearer " .. keys[(i % #keys) + 1]\n'
            + "  return wrk.format(nil)\nend\n"
        )
        cases = [
            ("GET /health", f"{base}/health", None),
            ("GET /v1/jobs?limit=10", f"{base}/v1/jobs?limit=10", str(scripts / "get.lua")),
            ("POST /v1/jobs/submit", f"{base}/v1/jobs/submit", str(scripts / "submit.lua")),
        ]
        results = {}
        for name, target, script in cases:
            for conns in CONNECTIONS:
                runs = [wrk(target, conns, script) for _ in range(REPEATS)]
                results[(name, conns)] = median_of(runs)
                print(name, conns, results[(name, conns)], file=sys.stderr)
        client = f"postgres://postgres@127.0.0.1:{pg.port}/gpudev"
        ids = run([str(pg.bindir / "psql"), client, "-Atc",
                   "SELECT u.user_id, k.key_hash FROM users u JOIN api_keys k USING (user_id) WHERE u.username = 'bench0'"]).stdout.strip().split("|")
        baseline = {c: statistics.median(pgbench(pg, url, c, ids[1], ids[0]) for _ in range(REPEATS)) for c in CONNECTIONS}
        write_report(results, baseline)
    finally:
        if api:
            api.send_signal(signal.SIGTERM)
            api.wait(timeout=30)
        pg.stop()


def machine():
    cpus = os.cpu_count()
    mem = ""
    try:
        kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    pg = run(["pg_config", "--version"]).stdout.strip()
    return f"{platform.machine()}, {cpus} cores{mem}, {platform.system()} {platform.release()}, {pg}"


def write_report(results, baseline):
    lines = [
        "<!-- api-bench:start -->",
        "## API throughput and latency",
        "",
        f"Command: `{COMMAND}` (release build; wrk, {SECONDS} s per run, median of {REPEATS} runs; "
        "PostgreSQL with default durable settings, started by the script).",
        f"Machine: {machine()}. Measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| Request | Connections | Requests/s | p50 ms | p90 ms | p99 ms | non-2xx / errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, conns), r in results.items():
        lines.append(f"| `{name}` | {conns} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | {r['errors']} |")
    lines += [
        "",
        "Baseline: pgbench running the same SQL work as one submit (key lookup, reservation insert, "
        "event insert, `pgmq.send`, one transaction) in the same run:",
        "",
        "| Connections | pgbench transactions/s | API submits/s | API / baseline |",
        "|---:|---:|---:|---:|",
    ]
    for c in CONNECTIONS:
        api = results[("POST /v1/jobs/submit", c)]["rps"]
        lines.append(f"| {c} | {baseline[c]:.0f} | {api:.0f} | {api / baseline[c]:.0%} |")
    lines.append("<!-- api-bench:end -->")
    section = "\n".join(lines) + "\n"
    doc = ROOT / "docs" / "BENCHMARKS.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\nEvery figure here comes from a command in this repository, run on the machine named with it.\n\n"
    if "<!-- api-bench:start -->" in text:
        text = re.sub(r"<!-- api-bench:start -->.*<!-- api-bench:end -->\n", section, text, flags=re.S)
    else:
        text += "\n" + section
    doc.write_text(text)
    print(section)


if __name__ == "__main__":
    main()
