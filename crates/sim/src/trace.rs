//! Why long waits were long: with `--trace-waits`, each request that waited at least a given
//! time is printed (to stderr) with its fair-share lead when first seen, when it was first
//! promised and for when, and when it started; and each GPU type's offered load per day, with
//! the heaviest user's part of it. The table is unchanged.

use std::collections::BTreeMap;

use crate::model::{Request, Scenario};

const HOUR: f64 = 3600.0;
const DAY: i64 = 86_400;

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Its tag minus the type's virtual time at its first pass, in slot-seconds.
    lead: f64,
    /// (when, for when) of its first promise.
    promised: Option<(i64, i64)>,
    started: Option<i64>,
}

/// What `--trace-waits` collects during one run.
pub(crate) struct WaitTrace {
    min_wait: i64,
    seen: BTreeMap<u32, Seen>,
}

impl WaitTrace {
    pub(crate) fn new(min_wait: i64) -> Self {
        Self {
            min_wait,
            seen: BTreeMap::new(),
        }
    }

    /// A pass kept `r` waiting with `tag` (the type's virtual time being `v`) and, if
    /// `promise` is set, promised it that start.
    pub(crate) fn waiting(
        &mut self,
        r: &Request,
        tag: f64,
        v: f64,
        now: i64,
        promise: Option<i64>,
    ) {
        let seen = self.seen.entry(r.id).or_insert(Seen {
            lead: tag - v,
            ..Seen::default()
        });
        if seen.promised.is_none()
            && let Some(start) = promise
        {
            seen.promised = Some((now, start));
        }
    }

    pub(crate) fn started(&mut self, r: &Request, now: i64) {
        self.seen.entry(r.id).or_default().started = Some(now);
    }

    /// Prints the long waits and the offered load per day.
    pub(crate) fn print(&self, s: &Scenario, arrivals: &[Request]) {
        let end = s.days * DAY;
        let pool = f64::from(s.gpus_per_node) * s.nodes_per_type as f64;
        eprintln!("# {}", s.name);
        let mut offered: BTreeMap<(usize, i64), (f64, f64)> = BTreeMap::new();
        for r in arrivals {
            let booked = r.gpu_seconds(r.booked) / (pool * DAY as f64);
            let day = offered
                .entry((r.gpu_type, r.submitted_at / DAY))
                .or_default();
            day.0 += booked;
            if r.user == 0 {
                day.1 += booked;
            }
        }
        for t in 0..s.gpu_types.len() {
            let days: Vec<String> = (0..s.days)
                .map(|d| {
                    let (all, heaviest) = offered.get(&(t, d)).copied().unwrap_or_default();
                    format!("{all:.2} ({heaviest:.2})")
                })
                .collect();
            eprintln!(
                "offered load per day, {} (heaviest user's part): {}",
                s.gpu_types[t],
                days.join(" ")
            );
        }
        let hours = |from: i64, to: i64| (to - from) as f64 / HOUR;
        for r in arrivals {
            let Some(seen) = self.seen.get(&r.id) else {
                continue;
            };
            let wait = seen.started.unwrap_or(end) - r.submitted_at;
            if wait < self.min_wait {
                continue;
            }
            let promised = seen
                .promised
                .map_or("never promised".to_owned(), |(at, start)| {
                    format!(
                        "promised after {:.1} h for {:.1} h",
                        hours(r.submitted_at, at),
                        hours(r.submitted_at, start)
                    )
                });
            let started = seen.started.map_or("still waiting".to_owned(), |at| {
                format!("started after {:.1} h", hours(r.submitted_at, at))
            });
            eprintln!(
                "wait {:5.1} h: #{} user{} {} {} GPUs on {} node(s) for {} h, submitted at {:.1} h, \
                 fair-share lead {:.1} pool-hours; {promised}; {started}",
                hours(r.submitted_at, r.submitted_at + wait),
                r.id,
                r.user,
                s.gpu_types[r.gpu_type],
                r.gpus,
                r.nodes,
                r.booked / 3600,
                r.submitted_at as f64 / HOUR,
                seen.lead / (pool * HOUR),
            );
        }
    }
}
