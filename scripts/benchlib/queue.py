"""The queue's benchmark: gpudev-sim over simulated weeks, and the timing of one scheduling pass
at scale, written into docs/BENCHMARKS.md. Run through scripts/bench-queue."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from local import machine, write_bench_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEEDS = os.environ.get("BENCH_SEEDS", "1,2,3")
SIM = ["target/release/gpudev-sim", "--seeds", SEEDS]
BOOKINGS = SIM + ["--bookings", "0.1"]
# First come, first served: a second of waiting outweighs any fair-share lead.
FIFO = SIM + ["--loads", "1.0,1.2", "--aging", "1e6"]
PASS = ["cargo", "test", "--quiet", "--release", "-p", "gpudev-domain", "--lib", "--",
        "--ignored", "--nocapture", "one_pass_over"]
START, END = "<!-- queue-bench:start -->", "<!-- queue-bench:end -->"


def main():
    table = subprocess.run(SIM, cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    booked = subprocess.run(BOOKINGS, cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    fifo = subprocess.run(FIFO, cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()
    timing = subprocess.run(PASS, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    first = re.search(r"scheduler pass: (.*?); median ([^,]+)", timing)
    second = re.search(r"next pass with (\d+) promises to keep: median ([^,]+)", timing)
    if not first or not second:
        raise RuntimeError(f"the pass timing printed nothing recognisable:\n{timing}")
    lines = [
        START,
        "## Queue: promises, fair share and utilisation over simulated weeks",
        "",
        f"Command: `scripts/bench-queue` (`{' '.join(SIM)}`, release build; and "
        f"`{' '.join(PASS)}`).",
        f"Machine: {machine()}. Measured {time.strftime('%Y-%m-%d')}.",
        "",
        "Workload (`gpudev-sim`, the real `gpudev_domain::schedule` run every 60 simulated seconds "
        "with its tags, promises and clocks fed back as the processor stores them): 50 nodes × 8 "
        "GPUs of two types, 12 users submitting in proportion to 1/(i+1), Poisson arrivals at the "
        "given load (booked GPU-time per unit of capacity), 1–24 h requests (whole hours), 1/2/4/8 "
        "GPUs, 5 % gangs of 2–4 whole nodes, a week, the 48 h queued timeout, default settings "
        "(promise horizon 2 h, aging 100 %). Reservations end at their expiry, or 30 % of them at a "
        "random point before it.",
        "",
        table,
        "",
        "Columns: *utilisation ÷ bound* is the GPU-time held divided by what a fluid relaxation "
        "could have held from the same arrivals (each request splittable over any GPUs of its type "
        "but no faster than its GPU count; an upper bound on any scheduler). *Late vs first "
        "promise*: of the requests that were promised a start, the share that started more than "
        "5 minutes after it (a promised request that timed out would count as late). *Moved "
        "promises*: promises a pass had to move later (only node loss, overruns and extensions "
        "can, and the simulation has none). *Late vs first estimate* and *median error of first "
        "estimate* (|start − first estimate| ÷ wait, over waits of an hour or more) concern the "
        "first figure a request was shown, which before its promise is an estimate that requests "
        "with smaller fair-share keys may still overtake. *Promise lead*: the median share of a "
        "long wait during which the request held its promise. *Worst daily deviation from fair "
        "share*: over every day and GPU type, the largest difference between a user who waited "
        "for that type all day and the mean of such users, in GPU-hours held, in units of the "
        "largest reservation submitted. *Longest 8-GPU/gang wait*: submission to start, for "
        "whole-node and gang requests of the two heaviest users and of anyone; *… once its "
        "owner's oldest* counts the heavy users' such waits from when every request their owner "
        "had submitted before, of the same type, had started or timed out: the part of the wait "
        "not spent behind the owner's own requests.",
        "",
        "### With bookings",
        "",
        f"Command: `{' '.join(BOOKINGS)}`. The same requests, 10 % of them made as bookings (ADR "
        "19) for a start on a whole minute up to 72 h ahead; a booking is checked as the submit "
        "checks it and, when its start cannot be honoured, taken at the earliest start offered. "
        "*Bookings on time*: bookings that started at their accepted start, to the minute (never "
        "before), of those that started (of those accepted, how many at a later start offered; "
        "how many were refused). A booking's wait counts from its booked start, and a user is "
        "not waiting for a type while their only request of it is a booking before its time.",
        "",
        booked,
        "",
        "### Baseline: first come, first served",
        "",
        f"Command: `{' '.join(FIFO)}`. The same requests with aging so strong that a second of "
        "waiting outweighs any fair-share lead: the order is first come, first served and every "
        "request is promised a minute after it is submitted. It shows what fair share costs the "
        "heaviest users' whole-node and gang requests, and what it buys: without fair share at "
        "all, those waits still pass 24 h at load 1.0 on the busiest workloads, while the daily "
        "deviation from the fair share exceeds one largest reservation at both loads.",
        "",
        fifo,
        "",
        f"One pass at scale (`one_pass_over_1000_nodes_and_10000_queued_reservations_is_fast`): "
        f"{first.group(1)}: median {first.group(2)}; the next pass, keeping and trying to move up "
        f"the {second.group(1)} promises the first made: median {second.group(2)}.",
        END,
    ]
    write_bench_section(START, END, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
