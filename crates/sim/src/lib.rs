//! A discrete-time simulation of gpudev's queue: a cluster, users with skewed demand submitting
//! reservations at random, and the real scheduling policy ([`gpudev_domain::schedule`]) run
//! every pass interval with the state it keeps between passes (fair-share tags, promises and
//! virtual clocks) fed back exactly as the processor stores it.
//!
//! What it models and what it leaves out:
//! * A reservation holds its nodes from the pass that admits it until it ends: at its expiry,
//!   or earlier when its user cancels it. The time a dev box takes to start and the expiry job's
//!   delay are not part of the policy's timeline (the processor adds them to what users see).
//! * Requests that wait longer than the queued timeout are cancelled, as the expiry job does.
//! * No node failures, no work outside gpudev, no extensions, no admin priorities: nothing a
//!   user is told can move a promise happens, so every moved promise is a broken one.

mod metrics;
mod model;
mod trace;

pub use metrics::Report;
pub use model::{Scenario, run};

#[cfg(test)]
mod tests {
    use super::*;

    fn short(load: f64) -> Scenario {
        let mut s = Scenario::standard(load);
        s.days = 3;
        s.nodes_per_type = 8;
        s
    }

    #[test]
    fn promises_hold_when_reservations_end_at_their_expiry() {
        for seed in 1..=3 {
            let mut s = short(1.1);
            s.seed = seed;
            let r = run(&s);
            assert!(r.promised > 20, "seed {seed}: few promises to check: {r:?}");
            assert_eq!(r.moved_promises, 0, "seed {seed}: {r:?}");
            assert_eq!(r.late_vs_first_promise, 0.0, "seed {seed}: {r:?}");
        }
    }

    #[test]
    fn early_ends_only_bring_promised_starts_forward() {
        let mut s = short(1.1);
        s.early_end_fraction = 0.5;
        let r = run(&s);
        assert!(r.promised > 20, "{r:?}");
        assert_eq!(r.moved_promises, 0, "{r:?}");
        assert_eq!(r.late_vs_first_promise, 0.0, "{r:?}");
    }

    #[test]
    fn bookings_start_on_time_to_the_minute_when_reservations_end_at_their_expiry() {
        for (seed, load) in [(1, 1.0), (2, 1.2)] {
            let mut s = short(load);
            s.seed = seed;
            s.booking_fraction = 0.3;
            s.booking_lead_hours = 24;
            let r = run(&s);
            assert!(r.bookings_started > 20, "seed {seed}: few bookings: {r:?}");
            assert_eq!(r.bookings_on_time, r.bookings_started, "seed {seed}: {r:?}");
            assert_eq!(r.moved_promises, 0, "seed {seed}: {r:?}");
            assert_eq!(r.late_vs_first_promise, 0.0, "seed {seed}: {r:?}");
        }
    }

    #[test]
    fn without_contention_nobody_waits_and_utilisation_meets_the_bound() {
        let r = run(&short(0.3));
        assert!(r.utilisation_vs_bound > 0.99, "{r:?}");
        assert_eq!(r.timed_out, 0, "{r:?}");
        assert_eq!(r.worst_daily_fairness_gap, 0.0, "{r:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_report() {
        // Everything but the pass time, which is measured.
        let measured = |mut r: Report| {
            r.slowest_pass_ms = 0.0;
            format!("{r:?}")
        };
        let a = measured(run(&short(1.0)));
        assert_eq!(a, measured(run(&short(1.0))));
        let mut other = short(1.0);
        other.seed = 99;
        assert_ne!(a, measured(run(&other)), "the seed matters");
    }

    #[test]
    fn tracing_long_waits_leaves_the_report_unchanged() {
        let measured = |mut r: Report| {
            r.slowest_pass_ms = 0.0;
            format!("{r:?}")
        };
        let mut traced = short(1.1);
        traced.trace_waits = Some(3600);
        assert_eq!(measured(run(&short(1.1))), measured(run(&traced)));
    }

    #[test]
    fn every_row_has_the_headers_columns_and_the_bookings_cell_only_when_asked() {
        let cells = |line: &str| line.matches('|').count();
        let r = run(&short(0.3));
        for bookings in [false, true] {
            let header = Report::header(bookings);
            let mut lines = header.lines();
            let (names, rule) = (lines.next().unwrap(), lines.next().unwrap());
            assert_eq!(cells(names), cells(rule), "{header}");
            assert_eq!(cells(&r.row(bookings)), cells(names), "{header}");
            assert_eq!(names.contains("bookings on time"), bookings);
        }
        assert_eq!(
            cells(&r.row(true)),
            cells(&r.row(false)) + 1,
            "one more column with bookings"
        );
    }
}
