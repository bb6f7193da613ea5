"""Pieces the scripts share to run gpudev's dependencies on loopback: free ports, commands that
must succeed, a throwaway PostgreSQL cluster and the local STS (moto in strict mode).

Standard library only: the benchmark runs it with the system Python, the schemathesis run with
the project's virtualenv.
"""

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".tools" / "venv" / "bin"
MOTO_ADMIN = ROOT / "crates" / "testkit" / "py" / "moto_admin.py"


def write_bench_section(start, end, section):
    """Replaces the part of docs/BENCHMARKS.md between the `start` and `end` markers (both kept,
    as `section` carries them) with `section`, or appends it; prints it."""
    doc = ROOT / "docs" / "BENCHMARKS.md"
    text = doc.read_text() if doc.exists() else (
        "# Benchmarks\n\nEvery figure here comes from a command in this repository, run on the "
        "machine named with it.\n\n")
    if start in text:
        text = re.sub(re.escape(start) + ".*" + re.escape(end) + "\n", lambda _: section, text, flags=re.S)
    else:
        text += "\n" + section
    doc.write_text(text)
    print(section)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    done = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def wait_http(url, what, proc=None):
    for _ in range(300):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before answering")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on {url}")


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Postgres:
    """A throwaway cluster in `parent`/pg on loopback, with database `gpudev`; initdb runs as the
    postgres user when running as root. `settings` are extra `-c name=value` server options."""

    def __init__(self, parent, settings=""):
        self.bindir = Path(run(["pg_config", "--bindir"]).stdout.strip())
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(parent, "postgres")
        self.dir = Path(parent) / "pg"
        self.dir.mkdir()
        if self.root:
            shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self.settings = settings

    def as_pg(self, args):
        return (["runuser", "-u", "postgres", "--"] if self.root else []) + args

    def start(self):
        data = self.dir / "data"
        run(self.as_pg([str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync"]))
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} {self.settings}"
        run(self.as_pg([str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w",
                        "-o", opts, "start"]))
        run([str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-qc",
             "CREATE DATABASE gpudev", "postgres"])
        return f"postgres://postgres@127.0.0.1:{self.port}/gpudev"

    def stop(self):
        subprocess.run(self.as_pg([str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
                                   "stop"]), capture_output=True)


def moto_admin(*args):
    """Runs the testkit's moto helper (`setup`, `mint`, …) and returns its JSON answer."""
    return json.loads(run([str(VENV_BIN / "python"), str(MOTO_ADMIN), *args]).stdout)


def start_sts():
    """moto on a free loopback port, switched to strict authentication with an admin that can
    mint role sessions. Returns (process, endpoint, the admin's credentials)."""
    port = free_port()
    proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{endpoint}/moto-api/", "moto", proc)
        return proc, endpoint, moto_admin("setup", endpoint)
    except Exception:
        stop(proc)
        raise


def machine():
    """One line describing this machine and its PostgreSQL, for benchmark reports."""
    cpus = os.cpu_count()
    mem = ""
    try:
        kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    pg = run(["pg_config", "--version"]).stdout.strip()
    return f"{platform.machine()}, {cpus} cores{mem}, {platform.system()} {platform.release()}, {pg}"
