"""The processor's benchmarks (crates/processor/tests/it/bench.rs), repeated, reduced to medians
and written into docs/BENCHMARKS.md.

Run through scripts/bench-processor, which builds the release test binary and the CronJob
binaries first. Each repeat runs both benchmarks with GPUDEV_BENCH_OUT naming a file they
append their figures to (one JSON object per benchmark).
"""

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from local import machine, write_bench_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
COMMAND = "scripts/bench-processor"
NEXTEST = ["cargo", "nextest", "run", "--release", "-p", "gpudev-processor", "--run-ignored", "only",
           "-E", "test(bench)", "--test-threads", "1", "--no-capture"]
START, END = "<!-- processor-bench:start -->", "<!-- processor-bench:end -->"


def run_once(out):
    """One run of both benchmarks; returns their figures by benchmark name."""
    out.unlink(missing_ok=True)
    subprocess.run(NEXTEST, cwd=ROOT, env=dict(os.environ, GPUDEV_BENCH_OUT=str(out)), check=True)
    figures = {}
    for line in out.read_text().splitlines():
        record = json.loads(line)
        figures[record.pop("bench")] = record
    missing = {"passes", "binary"} - set(figures)
    if missing:
        raise RuntimeError(f"the benchmarks reported nothing for {sorted(missing)}")
    return figures


def median(runs):
    """The median of every number across runs of the same shape; lists are pooled."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median([r[k] for r in runs if k in r]) for k in first}
    if isinstance(first, list):
        return [x for r in runs for x in r]
    return statistics.median(runs)


def n(x):
    return f"{x:,.0f}"


def write_report(fig):
    p, b = fig["passes"], fig["binary"]
    first, watch, listing = p["first"], p["watch"], p["listing"]
    admitted, waiting = first["admitted"], first["waiting"]
    gpus = p["nodes"] * p["gpus_per_node"]
    reconciles = b["reconcile_ms"]
    cronjobs = b.get("cronjobs", {})

    def row(name, r, bold=False):
        total = f"**{n(r['total_ms'])} ms**" if bold else f"{n(r['total_ms'])} ms"
        drive = f"{n(r['drive_ms'])} ms" if r["admitted"] else "—"
        return f"| {name} | {n(r['fetch_ms'])} ms | {n(r['decide_ms'])} ms | {n(r['write_ms'])} ms | {drive} | {total} |"

    lines = [
        START,
        "## Processor: scheduling pass at scale",
        "",
        f"Command: `{COMMAND}` (release build; median of {REPEATS} runs of "
        f"`{shlex.join(NEXTEST)}`; PostgreSQL is the tests' "
        "throwaway cluster, with fsync, synchronous_commit and full_page_writes off).",
        f"Machine: {machine()}. Measured {time.strftime('%Y-%m-%d')}.",
        "",
        f"Set-up: the fake Kubernetes API server seeded with {n(p['nodes'])} nodes × {p['gpus_per_node']} H100 "
        f"GPUs; {n(p['queued'])} queued reservations from 100 users (1, 2, 4 or 8 GPUs; 1–8 hours), "
        f"per-user quotas off. The first pass admits what fits ({n(admitted)} reservations fill all "
        f"{n(gpus)} GPUs) and creates every admitted dev box's Secret, Pod and Service (plus the "
        "Secret's owner patch) through the fake API server, 8 at a time; the later passes are the "
        f"steady-state periodic pass ({n(waiting)} reservations get positions and start estimates).",
        "",
        "| Pass | Fetch | Decide | Write (one transaction) | Drive | Total |",
        "|---|---:|---:|---:|---:|---:|",
        row(f"First: admits {n(admitted)}, drives them", first),
        row("Steady state, nodes and pods from the watch cache", watch, bold=True),
        row("Steady state, listing every node and pod instead", listing),
        "",
        "| Figure | Target | Measured |",
        "|---|---|---:|",
        f"| One scheduling pass (steady state, {n(p['nodes'])} nodes, {n(p['queued'])} queued) | < 1 s | "
        f"{n(watch['total_ms'])} ms |",
        "| Admissions written through the real database (guarded `queued → preparing` with placement "
        f"and events, one statement) | ≥ 500/s | {n(p['admissions_written_per_s'])}/s |",
        "| Admissions including creating their Kubernetes objects (in-process fake API server) | — | "
        f"{n(p['admissions_driven_per_s'])}/s |",
        "| The `gpudev-processor` binary against the fake served over HTTP: time until all "
        f"{n(b['admitted'])} are admitted and driven | — | {b['all_driven_s']:.1f} s |",
        f"| The binary's peak resident memory (VmHWM) through that run and 7 s of periodic work after it "
        f"({b['passes']:.0f} passes in all) | < 256 MiB | {n(b['peak_rss_mib'])} MiB |",
        f"| The binary's reconciliation at {n(b['admitted'])} preparing dev boxes (metadata-only lists of "
        "Services and Secrets; Pods from the watch cache) | — | "
        f"{min(reconciles) / 1000:.2f}–{max(reconciles) / 1000:.2f} s |",
        "| The binary's stop after SIGTERM (finishes its step, releases the leader lock) | — | "
        f"{b['stop_s']:.1f} s |",
    ]
    for name, what in (("gpudev-availability", "writes every GPU type's capacity"),
                       ("gpudev-expiry", "checks every live reservation and the namespace's objects")):
        if name in cronjobs:
            c = cronjobs[name]
            lines.append(f"| `{name}` (CronJob): peak resident memory of one run over that state ({what}) | — | "
                         f"{n(c['peak_rss_mib'])} MiB in {c['run_s']:.1f} s |")
    lines += [
        "",
        "The in-process benchmark's process also holds the fake cluster and its watch history "
        f"({n(p['test_process_peak_rss_mib'])} MiB peak together), which is why memory is measured on "
        "the binaries. Listing the cluster instead of watching it costs "
        f"~{(listing['total_ms'] - watch['total_ms']) / 1000:.2f} s per pass at this size; the processor "
        "lists only until its watches have synced after it becomes leader. The CronJobs run once each "
        "against the database and the fake cluster the binary left (about "
        f"{n(b['admitted'])} preparing dev boxes with their objects, the rest queued); their peak is the "
        "kernel's account of the finished process (getrusage). Every figure is the median of the runs; "
        "the reconciliation range spans every reconciliation after the admissions in every run (the "
        "binary reconciles, then runs a pass, every 2 s, or as soon as the previous tick's work ends).",
        END,
    ]
    write_bench_section(START, END, "\n".join(lines) + "\n")


def main():
    with tempfile.TemporaryDirectory(prefix="gpudev-bench-processor-") as tmp:
        runs = []
        for i in range(REPEATS):
            print(f"bench-processor: run {i + 1} of {REPEATS}", file=sys.stderr)
            runs.append(run_once(Path(tmp) / "figures.jsonl"))
    write_report(median(runs))


if __name__ == "__main__":
    main()
