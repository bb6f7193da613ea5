"""Load test of gpudev-api with wrk, against pgbench baselines measured in the same run.

Run through scripts/bench-api, which builds the release binaries first.
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from local import (  # noqa: E402
    Postgres, free_port, machine, moto_admin, run, start_sts, stop, wait_http, write_bench_section,
)

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
# Comma-separated substrings: run only the requests whose name contains one (all by default; the
# report is rewritten only by a full run).
ONLY = [c for c in os.environ.get("BENCH_ONLY", "").split(",") if c]
CONNECTIONS = (8, 64)
USERS = 64
POOL_SIZE = 32
BASELINE_DB = "gpudev_baseline"
# Each user's history before the runs: a user of some months' standing, mostly ended reservations.
HISTORY = 250
EVENTS_PER_RESERVATION = 3
COMMAND = "scripts/bench-api"
CHURNING = "`GET /v1/jobs/{id}` while jobs change"
SUBMIT_MANY = "`POST /v1/jobs/submit`, 64 users' keys"
SUBMIT_ONE = "`POST /v1/jobs/submit`, one key"
# The console's pages at 16 browsers' worth of requests: 16 connections (each with one bench
# user's session), each asking for its next page CONSOLE_THINK_MS after the last answer, far
# faster than a person clicks. The target is a p99 under CONSOLE_P99_MS. One more row asks for
# `/ui/` flat out on the same 16 connections, for the page's throughput.
CONSOLE_CONNECTIONS = (16,)
CONSOLE_THINK_MS = 100
CONSOLE_P99_MS = 50
CONSOLE_FLAT_OUT = "console GET /ui/, flat out"


def wrk(url, conns, script=None, seconds=None):
    """One wrk run of `seconds` (SECONDS by default) with 2 threads: its rate, latencies and
    errors (non-2xx answers and socket errors)."""
    cmd = ["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds or SECONDS}s", "--latency", url]
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


def api_settings(port, metrics_port):
    """How the benchmarks run gpudev-api: default settings but for its addresses, quotas and rate
    limits raised out of the way (a benchmark, not a user), and warnings-only JSON logs."""
    return dict(BIND_ADDR=f"127.0.0.1:{port}", METRICS_ADDR=f"127.0.0.1:{metrics_port}",
                RATE_LIMIT_PER_MINUTE="1000000", MAX_QUEUED_RESERVATIONS_PER_USER="0",
                MAX_GPUS_PER_USER="100000000", DB_POOL_SIZE=str(POOL_SIZE), RUST_LOG="warn", LOG_FORMAT="json")


def console_session(base, key):
    """A console session of `key`'s user, signed in as a browser would: a one-time link from
    `POST /v1/console/links`, then its form. Returns the `Cookie` header value."""
    req = urllib.request.Request(f"{base}/v1/console/links", data=b"{}", method="POST",
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        token = json.load(res)["path"].removeprefix("/ui/signin/")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    form = urllib.parse.urlencode({"token": token}).encode()
    try:
        opener.open(urllib.request.Request(f"{base}/ui/signin", data=form, method="POST"), timeout=10)
        raise RuntimeError("signing in to the console did not redirect")
    except urllib.error.HTTPError as e:
        if e.code != 303:
            raise
        return e.headers["Set-Cookie"].split(";")[0]


def median_of(runs):
    return {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p90", "p99")} | {
        "errors": sum(r["errors"] for r in runs)
    }


# What every bench user has done before the runs start: HISTORY reservations, newest first one
# live (queued) and the rest ended, each with its submit, admit and end events, then the VACUUM
# ANALYZE that autovacuum would have done by then. The lists and gets page through these.
SEED_HISTORY = f"""
INSERT INTO reservations (reservation_id, user_id, status, gpu_type, gpu_count, duration_hours, image,
    created_at, admitted_at, launched_at, expires_at, ended_at, instance_type, node_names)
SELECT gen_random_uuid(), u.user_id, CASE WHEN i = 1 THEN 'queued' WHEN i % 7 = 0 THEN 'cancelled' ELSE 'expired' END,
    't4', 1 + i % 4, 2, 'pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel',
    now() - make_interval(hours => i * 5), CASE WHEN i > 1 THEN now() - make_interval(hours => i * 5 - 1) END,
    CASE WHEN i > 1 THEN now() - make_interval(hours => i * 5 - 1) END,
    CASE WHEN i > 1 THEN now() - make_interval(hours => i * 5 - 3) END,
    CASE WHEN i > 1 THEN now() - make_interval(hours => i * 5 - 3) END,
    CASE WHEN i > 1 THEN 'g4dn.xlarge' END, CASE WHEN i > 1 THEN ARRAY['node-' || i % 16] ELSE '{{}}' END
FROM users u, generate_series(1, {HISTORY}) i WHERE u.username LIKE 'bench%'
ORDER BY i, u.user_id;
INSERT INTO reservation_events (reservation_id, kind, from_status, to_status, reason, actor, created_at)
SELECT r.reservation_id, 'transition', e.from_status, e.to_status, e.reason, 'gpudev-processor', r.created_at + e.n * interval '1 hour'
FROM reservations r, (VALUES (0, NULL, 'queued', 'submitted'), (1, 'queued', 'preparing', 'admitted'),
    (2, 'preparing', 'active', 'pod ready')) AS e(n, from_status, to_status, reason)
WHERE r.status <> 'queued' OR e.n = 0
ORDER BY r.created_at, e.n;
"""


# The baseline for submits: the leanest durable transaction a submit needs, one statement in its
# own transaction (one round trip, one WAL flush): the reservation row, its creation event and its
# PGMQ message. No key check, no quota, no secrets, no audit record. It is the physical limit of
# writing submits one transaction each; the API may pass it by writing several in one.
PGBENCH_LEAN_SUBMIT = """
\\set uid {first_uid} + random(0, {users} - 1)
WITH ins AS (INSERT INTO reservations (reservation_id, user_id, gpu_type, gpu_count, duration_hours, image, detailed_status) VALUES (gen_random_uuid(), :uid, 't4', 1, 1.0, 'pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel', 'waiting in queue') RETURNING reservation_id), ev AS (INSERT INTO reservation_events (reservation_id, kind, to_status, reason, actor) SELECT reservation_id, 'transition', 'queued', 'submitted', 'bench' FROM ins) SELECT pgmq.send('gpu_reservations', jsonb_build_object('action', 'create', 'reservation_id', reservation_id)) FROM ins;
"""


# The columns of a reservation as the API reads them (crates/store/src/reservations/model.rs
# `COLUMNS`); keep in step.
RESERVATION_COLUMNS = (
    "r.reservation_id, r.user_id, u.username, r.status, r.detailed_status, r.failure_reason, r.name, "
    "r.gpu_type, r.gpu_count, r.node_count, r.duration_hours, r.extended_hours, r.image, r.env_names, "
    "r.disk_name, r.jupyter_enabled, r.github_user, r.secondary_users, r.priority, r.idempotency_key, "
    "r.cli_version, r.queue_position, r.estimated_start_at, r.promised_start_at, "
    "r.first_estimated_start_at, r.estimated_ready_at, r.instance_type, r.namespace, r.pod_name, "
    "r.node_names, r.node_ip, r.node_port, r.ssh_command, r.jupyter_url, r.warnings_sent, r.created_at, "
    "r.updated_at, r.admitted_at, r.launched_at, r.expires_at, r.ended_at, r.request_hash, "
    "r.jupyter_token, r.command, r.disk_size_gb"
)


# The SQL one `GET /v1/jobs?limit=10` runs (crates/store/src/reservations.rs: `list_rows` for one
# user, no status filter, with events), with generic plans as the API's connections use them. The
# key check is served from the API's key cache, so the baseline has no key lookup.
PGBENCH_LIST = """
\\set uid {first_uid} + random(0, {users} - 1)
\\set lim 10
\\set off 0
SELECT t.total, p.* FROM (SELECT count(*) AS total FROM reservations r WHERE r.user_id = :uid AND cardinality('{{}}'::text[]) = 0) t LEFT JOIN LATERAL (SELECT {columns}, (SELECT json_agg(json_build_array(e.event_id, e.kind, e.from_status, e.to_status, e.reason, e.actor, e.details, e.created_at) ORDER BY e.event_id) FROM reservation_events e WHERE e.reservation_id = r.reservation_id) AS events FROM reservations r JOIN users u USING (user_id) WHERE r.user_id = :uid AND cardinality('{{}}'::text[]) = 0 ORDER BY r.created_at DESC, r.reservation_id LIMIT :lim OFFSET :off) p ON true;
"""


def pgbench_list(pg, conns, first_uid):
    """Statements per second of the list SQL over the bench users (prepared, generic plans)."""
    script = Path(pg.dir) / f"list-{conns}.sql"
    script.write_text(PGBENCH_LIST.format(first_uid=first_uid, users=USERS, columns=RESERVATION_COLUMNS))
    cmd = [str(pg.bindir / "pgbench"), "-n", "-M", "prepared", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
           "-c", str(conns), "-j", "2", "-T", str(SECONDS), "-f", str(script), BASELINE_DB]
    out = run(cmd, env=dict(os.environ, PGOPTIONS="-c plan_cache_mode=force_generic_plan")).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def pgbench(pg, conns, first_uid):
    """Transactions per second of the lean submit over the bench users; prepared statements, as
    the API's cached ones."""
    script = Path(pg.dir) / f"submit-{conns}.sql"
    script.write_text(PGBENCH_LEAN_SUBMIT.format(first_uid=first_uid, users=USERS))
    cmd = [str(pg.bindir / "pgbench"), "-n", "-M", "prepared", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
           "-c", str(conns), "-j", "2", "-T", str(SECONDS), "-f", str(script), BASELINE_DB]
    out = run(cmd).stdout
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if failed and int(failed.group(1)):
        raise RuntimeError(f"pgbench: failed transactions\n{out}")
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


# Changes to the bench users' live jobs while `GET /v1/jobs/{id}` runs, at a fixed rate, as the
# processor's writes would make them: each change makes the API replica drop that user's cached
# answers, so the next read of theirs goes to the database.
CHURN_PER_SECOND = USERS
PGBENCH_CHURN = """
\\set uid {first_uid} + random(0, {users} - 1)
UPDATE reservations SET detailed_status = 'waiting in queue (' || :client_id || ')' WHERE user_id = :uid AND status = 'queued';
"""


def churn(pg, first_uid):
    """Starts pgbench changing one random bench user's live job CHURN_PER_SECOND times a second
    for a little longer than a wrk run, in the API's database."""
    script = Path(pg.dir) / "churn.sql"
    script.write_text(PGBENCH_CHURN.format(first_uid=first_uid, users=USERS))
    cmd = [str(pg.bindir / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
           "-c", "2", "-j", "1", "-R", str(CHURN_PER_SECOND), "-T", str(SECONDS + 1), "-f", str(script), "gpudev"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def metric_values(metrics_base, *names):
    """The current values of Prometheus series named exactly `names` (0 for absent ones)."""
    with urllib.request.urlopen(f"{metrics_base}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values = []
    for name in names:
        m = re.search(rf"^{re.escape(name)} ([\d.e+]+)$", text, re.M)
        values.append(float(m.group(1)) if m else 0.0)
    return values


def cache_reads(metrics_base):
    """(hits, misses) of the API's job cache so far."""
    return metric_values(metrics_base, 'gpudev_api_job_cache_reads_total{outcome="hit"}',
                         'gpudev_api_job_cache_reads_total{outcome="miss"}')


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid, children=True):
    """CPU seconds used by `pid` (with its waited-for children's when `children`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = sum(int(f) for f in fields[11:15 if children else 13])
    return used / TICK


def server_cpu(pg):
    """CPU seconds used so far by the PostgreSQL server: the postmaster, its live backends and
    the ones that have ended."""
    postmaster = int((pg.dir / "data" / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += cpu_seconds(int(entry.name), children=False)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def submit_batches(metrics_base):
    """(submits, transactions) the API's submit writer has written so far."""
    return metric_values(metrics_base, "gpudev_api_submit_batch_size_sum", "gpudev_api_submit_batch_size_count")


LOGIN_ROLE = "SSOCloudDevGpuReservation"


def status_mib(pid, field):
    """A memory figure of a running process from /proc (VmRSS: now, VmHWM: its peak), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def main():
    workdir = Path(tempfile.mkdtemp(prefix="gpudev-bench-"))
    # Durable settings, as production: the comparison with pgbench is fair because both use them.
    pg = Postgres(workdir, "-c max_connections=200")
    api = None
    sts = None
    try:
        sts, sts_endpoint, admin = start_sts()
        # A session in the allowed role, for the aws-login runs.
        sts_creds = moto_admin("mint", sts_endpoint, admin["access_key_id"], admin["secret_access_key"],
                               admin["arn"], LOGIN_ROLE, "sts-user")
        url = pg.start()
        env = dict(os.environ, DATABASE_URL=url)
        run([str(TARGET / "gpudev-admin"), "migrate"], env=env)
        # Load comes from many users, as in production: submits of one user are serialised by
        # the per-user quota lock, so a single-user load would measure that lock, not the API.
        keys = []
        for i in range(USERS):
            run([str(TARGET / "gpudev-admin"), "users", "create", f"bench{i}"], env=env)
            keys.append(run([str(TARGET / "gpudev-admin"), "keys", "create", "--user", f"bench{i}"], env=env).stdout.strip())
        psql = [str(pg.bindir / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-q"]
        run(psql + ["-v", "ON_ERROR_STOP=1", "-c", SEED_HISTORY, "-c", "VACUUM ANALYZE", "gpudev"])
        job_ids = run(psql + ["-At", "-c", "SELECT DISTINCT ON (user_id) reservation_id FROM reservations "
                              "WHERE status = 'queued' ORDER BY user_id", "gpudev"]).stdout.split()
        assert len(job_ids) == USERS, f"expected one live reservation per bench user, got {len(job_ids)}"
        # The baseline gets its own copy of this starting point (schema, queue, users, keys,
        # histories), so pgbench starts from the same tables as the API's requests did.
        run([str(pg.bindir / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-qc",
             f"CREATE DATABASE {BASELINE_DB} TEMPLATE gpudev", "postgres"])
        port, mport = free_port(), free_port()
        api_env = dict(env, DATABASE_URL=url + os.environ.get("BENCH_URL_SUFFIX", ""), **api_settings(port, mport),
                       LOGIN_RATE_LIMIT_PER_MINUTE="100000", LOGIN_ADDRESS_RATE_LIMIT_PER_MINUTE="100000", AWS_ENDPOINT_URL_STS=sts_endpoint,
                       STS_ALLOWED_HOSTS=sts_endpoint.removeprefix("http://"))
        api = subprocess.Popen([str(TARGET / "gpudev-api")], env=api_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", "gpudev-api", api)
        scripts = Path(pg.dir)
        lua_keys = "local keys = {" + ",".join(f'"{k}"' for k in keys) + "}\n"
        (scripts / "get.lua").write_text(
            lua_keys
            + "local i = 0\n"
            + "request = function()\n  i = i + 1\n"
            + '  wrk.headers["Authorization"] = "Bearer " .. keys[(i % #keys) + 1]\n'
            + "  return wrk.format(nil)\nend\n"
        )
        # Key i belongs to user i, whose live reservation is job_ids[i] (both in user order).
        (scripts / "get_one.lua").write_text(
            lua_keys
            + "local ids = {" + ",".join(f'"{j}"' for j in job_ids) + "}\n"
            + "local i = 0\n"
            + "request = function()\n  i = i + 1\n"
            + "  local n = (i % #keys) + 1\n"
            + '  wrk.headers["Authorization"] = "Bearer " .. keys[n]\n'
            + '  return wrk.format(nil, "/v1/jobs/" .. ids[n])\nend\n'
        )
        (scripts / "login.lua").write_text(
            'wrk.method = "POST"\n'
            + 'wrk.headers["Content-Type"] = "application/json"\n'
            + "wrk.body = '" + json.dumps({"aws_access_key_id": sts_creds["access_key_id"],
                                          "aws_secret_access_key": sts_creds["secret_access_key"],
                                          "aws_session_token": sts_creds["session_token"]}) + "'\n"
        )
        # The original client's own body (its GPU type, count and GitHub user inside env_vars;
        # a submit naming no GitHub user by a user without SSH keys is refused, ADR 17).
        submit_body = json.dumps({"image": "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel",
                                  "instance_type": "g4dn.xlarge", "duration_hours": 4,
                                  "env_vars": {"GPU_TYPE": "t4", "GPU_COUNT": "1",
                                               "GITHUB_USER": "octocat"}})
        (scripts / "submit_one.lua").write_text(
            'wrk.method = "POST"\n'
            + 'wrk.headers["Content-Type"] = "application/json"\n'
            + f'wrk.headers["Authorization"] = "Bearer {keys[0]}"\n'
            + f"wrk.body = '{submit_body}'\n"
        )
        (scripts / "submit.lua").write_text(
            lua_keys
            + 'wrk.method = "POST"\n'
            + 'wrk.headers["Content-Type"] = "application/json"\n'
            + f"wrk.body = '{submit_body}'\n"
            + "local i = 0\n"
            + "request = function()\n  i = i + 1\n"
            + '  wrk.headers["Authorization"] = "Bearer " .. keys[(i % #keys) + 1]\n'
            + "  return wrk.format(nil)\nend\n"
        )
        # Each user's console session; a browser asks for its pages and the user's reservation.
        cookies = [console_session(base, k) for k in keys]
        lua_cookies = "local cookies = {" + ",".join(f'"{c}"' for c in cookies) + "}\n"
        for page, path in (("ui_jobs", '"/ui/"'), ("ui_capacity", '"/ui/capacity"'),
                           ("ui_job", '"/ui/jobs/" .. ids[n]')):
            script = (
                lua_cookies
                + "local ids = {" + ",".join(f'"{j}"' for j in job_ids) + "}\n"
                + "local i = 0\n"
                + "request = function()\n  i = i + 1\n"
                + "  local n = (i % #cookies) + 1\n"
                + '  wrk.headers["Cookie"] = cookies[n]\n'
                + f"  return wrk.format(nil, {path})\nend\n"
            )
            (scripts / f"{page}_flat.lua").write_text(script)
            # wrk waits this long before each connection's next request.
            (scripts / f"{page}.lua").write_text(script + f"delay = function()\n  return {CONSOLE_THINK_MS}\nend\n")
        cases = [
            ("GET /health", f"{base}/health", None),
            ("POST /v1/auth/aws-login", f"{base}/v1/auth/aws-login", str(scripts / "login.lua")),
            ("GET /v1/jobs?limit=10", f"{base}/v1/jobs?limit=10", str(scripts / "get.lua")),
            ("GET /v1/jobs/{id}", f"{base}/", str(scripts / "get_one.lua")),
            (CHURNING, f"{base}/", str(scripts / "get_one.lua")),
            (SUBMIT_MANY, f"{base}/v1/jobs/submit", str(scripts / "submit.lua")),
            (SUBMIT_ONE, f"{base}/v1/jobs/submit", str(scripts / "submit_one.lua")),
            ("console GET /ui/", f"{base}/", str(scripts / "ui_jobs.lua")),
            ("console GET /ui/jobs/{id}", f"{base}/", str(scripts / "ui_job.lua")),
            ("console GET /ui/capacity", f"{base}/", str(scripts / "ui_capacity.lua")),
            (CONSOLE_FLAT_OUT, f"{base}/", str(scripts / "ui_jobs_flat.lua")),
        ]
        results = {}
        if ONLY:
            cases = [c for c in cases if any(o in c[0] for o in ONLY)]
        first_uid = int(run(psql + ["-At", "-c", "SELECT min(user_id) FROM users WHERE username LIKE 'bench%'",
                                    "gpudev"]).stdout)
        metrics_base = f"http://127.0.0.1:{mport}"
        for name, target, script in cases:
            for conns in CONSOLE_CONNECTIONS if name.startswith("console") else CONNECTIONS:
                hits, misses = cache_reads(metrics_base)
                submits, batches = submit_batches(metrics_base)
                api_cpu, pg_cpu = cpu_seconds(api.pid), server_cpu(pg)
                runs = []
                for _ in range(REPEATS):
                    writer = churn(pg, first_uid) if name == CHURNING else None
                    runs.append(wrk(target, conns, script))
                    if writer:
                        out, _ = writer.communicate(timeout=60)
                        if writer.returncode != 0:
                            raise RuntimeError(f"pgbench (changes during the run) failed:\n{out}")
                results[(name, conns)] = median_of(runs)
                hits, misses = [after - before for after, before in zip(cache_reads(metrics_base), (hits, misses))]
                results[(name, conns)]["cached"] = hits / (hits + misses) if hits + misses else None
                submits, batches = [after - before for after, before in zip(submit_batches(metrics_base), (submits, batches))]
                results[(name, conns)]["batch"] = submits / batches if batches else None
                answered = sum(r["rps"] for r in runs) * SECONDS
                results[(name, conns)]["api_cpu_ms"] = (cpu_seconds(api.pid) - api_cpu) * 1000 / answered
                results[(name, conns)]["pg_cpu_ms"] = (server_cpu(pg) - pg_cpu) * 1000 / answered
                memory = (f"rss {status_mib(api.pid, 'VmRSS'):.1f} MiB, "
                          f"peak {status_mib(api.pid, 'VmHWM'):.1f} MiB")
                print(name, conns, results[(name, conns)], memory, file=sys.stderr)
        api_peak = status_mib(api.pid, "VmHWM")
        if ONLY:
            print(f"peak resident memory of gpudev-api: {api_peak:.0f} MiB", file=sys.stderr)
            return
        client = f"postgres://postgres@127.0.0.1:{pg.port}/gpudev"
        ids = [int(x) for x in run([str(pg.bindir / "psql"), client, "-Atc",
               "SELECT user_id FROM users WHERE username LIKE 'bench%' ORDER BY user_id"]).stdout.split()]
        assert ids == list(range(ids[0], ids[0] + USERS)), f"bench users are not numbered in a row: {ids}"
        baseline = {c: statistics.median(pgbench(pg, c, ids[0]) for _ in range(REPEATS)) for c in CONNECTIONS}
        list_baseline = {c: statistics.median(pgbench_list(pg, c, ids[0]) for _ in range(REPEATS)) for c in CONNECTIONS}
        write_report(results, baseline, list_baseline, api_peak)
    finally:
        if api:
            api.send_signal(signal.SIGTERM)
            api.wait(timeout=30)
        stop(sts)
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def ratio_rows(results, request, baseline):
    """Table rows: connections, the baseline's rate, the API's rate of `request`, their ratio."""
    rows = []
    for c in CONNECTIONS:
        api = results[(request, c)]["rps"]
        rows.append(f"| {c} | {baseline[c]:.0f} | {api:.0f} | {api / baseline[c]:.0%} |")
    return rows


def write_report(results, baseline, list_baseline, api_peak):
    lines = [
        "<!-- api-bench:start -->",
        "## API throughput and latency",
        "",
        f"Command: `{COMMAND}` (release build; wrk, {SECONDS} s per run, median of {REPEATS} runs; "
        "PostgreSQL with default durable settings, started by the script).",
        f"Machine: {machine()}. Measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| Request | Connections | Requests/s | p50 ms | p90 ms | p99 ms | non-2xx / errors | answered from the job cache | per transaction | API CPU ms | PostgreSQL CPU ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, conns), r in results.items():
        cached = "—" if r["cached"] is None else f"{r['cached']:.1%}"
        batch = "—" if r["batch"] is None else f"{r['batch']:.1f}"
        shown = name if name.startswith("`") else (
            f"console `{name.removeprefix('console ')}`" if name.startswith("console ") else f"`{name}`")
        lines.append(f"| {shown} | {conns} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | {r['errors']} | {cached} | {batch} | {r['api_cpu_ms']:.3f} | {r['pg_cpu_ms']:.3f} |")
    lines += [
        "",
        f"Peak resident memory of `gpudev-api` (VmHWM) through all the runs above: {api_peak:.0f} MiB.",
        "",
        "`POST /v1/auth/aws-login` asks the local STS emulator (moto, a Python server, in strict "
        "mode) to verify the same session's credentials on every call, so its figures are mostly "
        "moto's; the key it issues is written with its audit record in one transaction. "
        "(`/v1/auth/aws-iam` cannot be load-tested this way: each signed request logs in once.)",
        "",
        f"Before the runs each of the {USERS} users has a history of {HISTORY} reservations (one "
        f"queued, the rest ended with {EVENTS_PER_RESERVATION} events each; vacuumed and analysed, as "
        "autovacuum leaves a table in steady state): `GET /v1/jobs?limit=10` returns the newest 10 "
        "with their histories and the total, `GET /v1/jobs/{id}` the user's queued one. The job "
        "reads are answered from the replica's job cache (docs/adr/0010-job-answer-cache.md) "
        "until the user's jobs change; the last column gives the share of reads it answered. "
        f"In the row \"{CHURNING}\", pgbench changes a random user's queued job {CHURN_PER_SECOND} "
        f"times a second during the run (each of the {USERS} users' jobs about once a second, far "
        "more often than a queue moves), and every change sends that user's next read to the "
        "database. No "
        "processor runs, so the submits only lengthen one GPU type's queue (to tens of thousands) "
        "and, with no published scheduler state, their answers carry no estimate.",
        "",
        f"The console rows are {CONSOLE_CONNECTIONS[0]} browsers' worth of page loads: "
        f"{CONSOLE_CONNECTIONS[0]} connections, each with the session cookie of one of the users "
        "(signed in through a one-time link before the runs), each asking for its next page "
        f"{CONSOLE_THINK_MS} ms after its last answer (far faster than a person clicks). `/ui/` "
        "renders the user's newest 50 reservations, `/ui/jobs/{id}` the queued one with its "
        f"history, `/ui/capacity` the per-type capacity. Their target is a p99 under "
        f"{CONSOLE_P99_MS} ms. The row \"{CONSOLE_FLAT_OUT.removeprefix('console ')}\" asks for "
        "`/ui/` on the same connections without pausing, for the page's throughput; its "
        "latencies are those of a saturated server.",
        "",
        "Submits use the original client's own body (`instance_type` and the GPU type and count in "
        "`env_vars`), from 64 users' keys in turn or all from one key (a CI account submitting in "
        "parallel). Concurrent submits share a transaction (docs/adr/0011-submits-share-transactions.md); "
        "\"per transaction\" is how many on average, and the last two columns give the CPU time "
        "the API and PostgreSQL spent per answered request over the runs.",
        "",
        f"Baseline: the leanest durable transaction a submit needs, run by pgbench in the same run on "
        f"the same server, in a copy of the database taken before the API's first request: one "
        f"statement in its own transaction (one round trip, one WAL flush) inserting the reservation "
        f"row and its creation event and sending its PGMQ message; no key check, quota, secrets or "
        f"audit record, which the API's submits also do. Prepared, over the same {USERS} users, on "
        f"the same {os.cpu_count()} cores (shared by pgbench and PostgreSQL here, by wrk, the API and PostgreSQL in the API's runs). "
        f"It is the physical limit of one transaction per submit; sharing transactions, the API "
        f"can pass it.",
        "",
        "| Connections | pgbench transactions/s | API submits/s | API / baseline |",
        "|---:|---:|---:|---:|",
    ]
    lines += ratio_rows(results, SUBMIT_MANY, baseline)
    lines += [
        "",
        "The same baseline against the one-key submits:",
        "",
        "| Connections | pgbench transactions/s | API submits/s | API / baseline |",
        "|---:|---:|---:|---:|",
    ]
    lines += ratio_rows(results, SUBMIT_ONE, baseline)
    lines += [
        "",
        "The list has a baseline too: pgbench running the one statement a `GET /v1/jobs?limit=10` "
        "runs (the page, each job's history and the total), prepared and with generic plans as the "
        "API's connections run it, over the same users' histories, in the same run. The API answers "
        "almost every list from its job cache without running the statement, hence ratios far above "
        "100%; a read after a change (a cache miss) costs what the statement costs.",
        "",
        "| Connections | pgbench statements/s | API lists/s | API / baseline |",
        "|---:|---:|---:|---:|",
    ]
    lines += ratio_rows(results, "GET /v1/jobs?limit=10", list_baseline)
    lines.append("<!-- api-bench:end -->")
    write_bench_section("<!-- api-bench:start -->", "<!-- api-bench:end -->", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
