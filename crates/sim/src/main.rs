//! `gpudev-sim`: runs the scheduling policy through simulated weeks and prints a Markdown table.

use clap::Parser;
use gpudev_sim::{Report, Scenario, run};

/// Simulates gpudev's queue under several loads and prints how its promises, fair share and
/// utilisation hold.
#[derive(Debug, Parser)]
#[command(name = "gpudev-sim")]
struct Args {
    /// Offered loads to simulate (1.0 = the cluster's capacity).
    #[arg(long, value_delimiter = ',', default_values_t = [0.85, 1.0, 1.2])]
    loads: Vec<f64>,
    /// Share of reservations cancelled early, for the second run of each load (0 skips it).
    #[arg(long, default_value_t = 0.3)]
    early_ends: f64,
    /// Simulated days.
    #[arg(long, default_value_t = 7)]
    days: i64,
    /// The promise horizon in minutes.
    #[arg(long, default_value_t = 120)]
    horizon_minutes: i64,
    /// Aging, in seconds of the whole pool's capacity per second of waiting.
    #[arg(long, default_value_t = 1.0)]
    aging: f64,
    /// Random seeds: every scenario runs once per seed.
    #[arg(long, value_delimiter = ',', default_values_t = [1])]
    seeds: Vec<u64>,
    /// Print to stderr every request that waited at least this many hours, with its fair-share
    /// lead, when it was promised and when it started, and each type's offered load per day.
    #[arg(long)]
    trace_waits: Option<f64>,
    /// Share of requests that are bookings for a start up to --booking-lead-hours ahead; the
    /// last column says how many started on time.
    #[arg(long, default_value_t = 0.0)]
    bookings: f64,
    /// How far ahead bookings are made, at most, in hours.
    #[arg(long, default_value_t = 72)]
    booking_lead_hours: i64,
}

fn main() {
    let args = Args::parse();
    let bookings = args.bookings > 0.0;
    println!("{}", Report::header(bookings));
    for &load in &args.loads {
        let mut variants = vec![(0.0, "exact ends")];
        if args.early_ends > 0.0 {
            variants.push((args.early_ends, "early ends"));
        }
        for (early, label) in variants {
            for &seed in &args.seeds {
                let mut s = Scenario::standard(load);
                s.days = args.days;
                s.seed = seed;
                s.promise_horizon = args.horizon_minutes * 60;
                s.aging = args.aging;
                s.early_end_fraction = early;
                s.trace_waits = args.trace_waits.map(|h| (h * 3600.0) as i64);
                s.booking_fraction = args.bookings;
                s.booking_lead_hours = args.booking_lead_hours;
                let ends = if early > 0.0 {
                    format!("{:.0} % {label}", early * 100.0)
                } else {
                    label.to_owned()
                };
                s.name = format!("load {load:.2}, {ends}, seed {seed}");
                println!("{}", run(&s).row(bookings));
            }
        }
    }
}
