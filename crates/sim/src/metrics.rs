//! What a simulation measures, and the report it prints.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::model::{Held, Request, Scenario, Waiting};

const HOUR: f64 = 3600.0;
const DAY: i64 = 86_400;
/// How late a start may be and still count as on time.
const SLACK: i64 = 300;
/// The heaviest users (users submit in proportion to 1/(i+1), so users 0 and 1).
const HEAVY_USERS: usize = 2;

/// The results of one scenario.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Requests submitted.
    pub submitted: usize,
    /// GPU-seconds held ÷ what a fluid queue per GPU type could have served from the same
    /// arrivals (an upper bound on any scheduler).
    pub utilisation_vs_bound: f64,
    /// Requests that waited at least one pass (and so were given an estimate or none).
    pub waited: usize,
    /// Of those that started and were promised a start: the share that started more than five
    /// minutes after their first promise.
    pub late_vs_first_promise: f64,
    /// Promises given.
    pub promised: usize,
    /// Promises a pass had to move later.
    pub moved_promises: usize,
    /// Of the requests that waited and started: the share that started more than five minutes
    /// after their first estimate.
    pub late_vs_first_estimate: f64,
    /// Median of |start − first estimate| ÷ wait, over requests that waited an hour or more.
    pub median_error_of_first_estimate: f64,
    /// Median share of the wait, for requests that waited an hour or more and were promised a
    /// start, during which they held a promise: how early a long wait learns a firm start.
    pub median_promise_lead: f64,
    /// Largest daily deviation of a user's GPU-hours from the fair share, over users who were
    /// waiting for the same GPU type through the whole day (the fair share is their mean: users
    /// who were not always waiting wanted less), in units of the largest reservation submitted.
    pub worst_daily_fairness_gap: f64,
    /// Longest wait of an 8-GPU (whole node) or gang request from the two heaviest users, in
    /// hours (requests still waiting at the end count with their wait so far).
    pub longest_big_wait_heavy_h: f64,
    /// The same, counted from when the request became the oldest of its owner's waiting
    /// requests of its type: the part of the wait not spent behind the owner's own requests.
    pub longest_big_wait_heavy_as_oldest_h: f64,
    /// Longest wait of any whole-node or gang request, in hours.
    pub longest_big_wait_h: f64,
    /// Requests cancelled by the queued timeout.
    pub timed_out: usize,
    /// Slowest pass, in milliseconds.
    pub slowest_pass_ms: f64,
    /// Bookings accepted (as asked, or at the start offered).
    pub bookings: usize,
    /// Of those, the ones accepted at a later start the policy offered.
    pub bookings_at_offer: usize,
    /// Bookings dropped: no start could be offered.
    pub bookings_refused: usize,
    /// Bookings that started.
    pub bookings_started: usize,
    /// Of those, the ones that started at their accepted start, to the minute (never before).
    pub bookings_on_time: usize,
}

#[derive(Debug, Default)]
struct Track {
    first_estimate: Option<i64>,
    first_promise: Option<(i64, i64)>,
}

pub(crate) struct Recorder {
    name: String,
    arrivals: Vec<Request>,
    capacity_per_type: f64,
    types: usize,
    gpus_per_node: u32,
    pass_every: i64,
    end: i64,
    tracks: BTreeMap<u32, Track>,
    waited: usize,
    started_promised: usize,
    late_promise: usize,
    started_estimated: usize,
    late_estimate: usize,
    errors: Vec<f64>,
    leads: Vec<f64>,
    promised: usize,
    moved: usize,
    timed_out: usize,
    big_wait_heavy: i64,
    big_wait: i64,
    slowest: Duration,
    used: f64,
    /// (day, type, user) → GPU-seconds held.
    service: BTreeMap<(i64, usize, usize), f64>,
    /// (day, type, user) → passes during which the user had a request of the type waiting.
    backlogged: BTreeMap<(i64, usize, usize), u32>,
    passes_per_day: BTreeMap<i64, u32>,
    bookings: usize,
    bookings_at_offer: usize,
    bookings_refused: usize,
    bookings_started: usize,
    bookings_on_time: usize,
    /// When each request left the queue (started or timed out).
    left: BTreeMap<u32, i64>,
}

impl Recorder {
    pub(crate) fn new(s: &Scenario, arrivals: &[Request]) -> Self {
        Self {
            name: s.name.clone(),
            arrivals: arrivals.to_vec(),
            capacity_per_type: s.nodes_per_type as f64 * f64::from(s.gpus_per_node),
            types: s.gpu_types.len(),
            gpus_per_node: s.gpus_per_node,
            pass_every: s.pass_every,
            end: s.days * DAY,
            tracks: BTreeMap::new(),
            waited: 0,
            started_promised: 0,
            late_promise: 0,
            started_estimated: 0,
            late_estimate: 0,
            errors: Vec::new(),
            leads: Vec::new(),
            promised: 0,
            moved: 0,
            timed_out: 0,
            big_wait_heavy: 0,
            big_wait: 0,
            slowest: Duration::ZERO,
            used: 0.0,
            service: BTreeMap::new(),
            backlogged: BTreeMap::new(),
            passes_per_day: BTreeMap::new(),
            bookings: 0,
            bookings_at_offer: 0,
            bookings_refused: 0,
            bookings_started: 0,
            bookings_on_time: 0,
            left: BTreeMap::new(),
        }
    }

    /// A booking asked for `r.start_at`, and the start it could have (`None`: none).
    pub(crate) fn booking_asked(&mut self, r: &Request, offered: Option<i64>) {
        match offered {
            None => self.bookings_refused += 1,
            Some(t) => {
                self.bookings += 1;
                if Some(t) != r.start_at {
                    self.bookings_at_offer += 1;
                }
            }
        }
    }

    pub(crate) fn pass_took(&mut self, took: Duration) {
        self.slowest = self.slowest.max(took);
    }

    pub(crate) fn estimated(
        &mut self,
        r: &Request,
        now: i64,
        estimate: Option<i64>,
        promised: bool,
        moved: bool,
    ) {
        let track = self.tracks.entry(r.id).or_insert_with(|| {
            self.waited += 1;
            Track::default()
        });
        if track.first_estimate.is_none() {
            track.first_estimate = estimate;
        }
        if promised
            && track.first_promise.is_none()
            && let Some(at) = estimate
        {
            track.first_promise = Some((at, now));
            self.promised += 1;
        }
        if moved {
            self.moved += 1;
        }
    }

    fn is_big(&self, r: &Request) -> bool {
        r.nodes > 1 || r.gpus >= self.gpus_per_node
    }

    fn big_wait(&mut self, r: &Request, wait: i64) {
        if self.is_big(r) {
            self.big_wait = self.big_wait.max(wait);
            if r.user < HEAVY_USERS {
                self.big_wait_heavy = self.big_wait_heavy.max(wait);
            }
        }
    }

    pub(crate) fn started(&mut self, r: &Request, now: i64) {
        // A booking waits from its booked start, not from when it was made.
        let wait = now - r.start_at.unwrap_or(r.submitted_at);
        if let Some(start) = r.start_at {
            self.bookings_started += 1;
            if (start..start + 60).contains(&now) {
                self.bookings_on_time += 1;
            }
        }

        self.big_wait(r, wait);
        self.left.insert(r.id, now);
        let Some(track) = self.tracks.get(&r.id) else {
            return;
        };
        if let Some((promise, given)) = track.first_promise {
            self.started_promised += 1;
            if now > promise + SLACK {
                self.late_promise += 1;
            }
            if wait >= 3600 {
                self.leads.push((now - given) as f64 / wait as f64);
            }
        }
        if let Some(estimate) = track.first_estimate {
            self.started_estimated += 1;
            if now > estimate + SLACK {
                self.late_estimate += 1;
            }
            if wait >= 3600 {
                self.errors
                    .push((now - estimate).abs() as f64 / wait as f64);
            }
        }
    }

    /// The queued timeout cancelled `r` at `now`.
    pub(crate) fn timed_out(&mut self, r: &Request, now: i64) {
        self.timed_out += 1;
        self.left.insert(r.id, now);
        self.big_wait(r, now - r.submitted_at);
        if let Some(track) = self.tracks.get(&r.id)
            && track.first_promise.is_some()
        {
            self.started_promised += 1;
            self.late_promise += 1;
        }
    }

    pub(crate) fn sample(&mut self, now: i64, dt: i64, queue: &[Waiting], held: &[Held]) {
        let day = now / DAY;
        *self.passes_per_day.entry(day).or_default() += 1;
        // A booking before its time wants nothing yet.
        let waiting: BTreeSet<(usize, usize)> = queue
            .iter()
            .filter(|w| w.request.start_at.is_none_or(|t| t <= now))
            .map(|w| (w.request.gpu_type, w.request.user))
            .collect();
        for (t, u) in waiting {
            *self.backlogged.entry((day, t, u)).or_default() += 1;
        }
        for h in held {
            let gs = h.request.gpu_seconds(dt);
            self.used += gs;
            *self
                .service
                .entry((day, h.request.gpu_type, h.request.user))
                .or_default() += gs;
        }
    }

    /// An upper bound on the GPU-seconds any scheduler could have held in the run: a fluid
    /// relaxation per GPU type in which a request may be split over any GPUs of its type and
    /// paused at will, but still runs at no more than its GPU count and needs its GPUs × time
    /// held. Each step serves, up to the type's capacity, the requests with the most work left
    /// first (which maximises what is done by the end of the run).
    fn fluid_bound(&self) -> f64 {
        let dt = self.pass_every as f64;
        let mut served = 0.0;
        for t in 0..self.types {
            let mut arrivals = self.arrivals.iter().filter(|r| r.gpu_type == t).peekable();
            // (work left, rate cap)
            let mut active: Vec<(f64, f64)> = Vec::new();
            let mut now = 0;
            while now < self.end {
                while let Some(r) = arrivals.peek()
                    && r.submitted_at <= now
                {
                    active.push((r.gpu_seconds(r.held), f64::from(r.gpus)));
                    arrivals.next();
                }
                active.sort_by(|a, b| b.0.total_cmp(&a.0));
                let mut room = self.capacity_per_type * dt;
                for job in &mut active {
                    if room <= 0.0 {
                        break;
                    }
                    let step = job.0.min(job.1 * dt).min(room);
                    job.0 -= step;
                    room -= step;
                    served += step;
                }
                active.retain(|j| j.0 > 0.0);
                now += self.pass_every;
            }
        }
        served
    }

    /// The longest wait of a heavy user's whole-node or gang request counted from when it
    /// became the oldest of its owner's waiting requests of the type (every request of theirs
    /// submitted before it had started or timed out). Bookings are left out.
    fn big_wait_heavy_as_oldest(&self) -> i64 {
        let mut oldest_gone: BTreeMap<(usize, usize), i64> = BTreeMap::new();
        let mut worst = 0;
        for r in &self.arrivals {
            if r.start_at.is_some() {
                continue;
            }
            let key = (r.user, r.gpu_type);
            let since = r
                .submitted_at
                .max(oldest_gone.get(&key).copied().unwrap_or(i64::MIN));
            let left = self.left.get(&r.id).copied().unwrap_or(self.end);
            if self.is_big(r) && r.user < HEAVY_USERS {
                worst = worst.max(left - since);
            }
            let e = oldest_gone.entry(key).or_insert(i64::MIN);
            *e = (*e).max(left);
        }
        worst
    }

    pub(crate) fn finish(mut self, queue: &[Waiting]) -> Report {
        for w in queue {
            let asked = w.request.start_at.unwrap_or(w.request.submitted_at);
            self.big_wait(&w.request, (self.end - asked).max(0));
        }
        let largest = self
            .arrivals
            .iter()
            .map(|r| r.gpu_seconds(r.booked))
            .fold(1.0, f64::max);
        let mut worst = 0.0f64;
        for (&day, &passes) in &self.passes_per_day {
            for t in 0..self.types {
                let always: Vec<f64> = self
                    .backlogged
                    .iter()
                    .filter(|((d, ty, _), n)| *d == day && *ty == t && **n == passes)
                    .map(|((d, ty, u), _)| self.service.get(&(*d, *ty, *u)).copied().unwrap_or(0.0))
                    .collect();
                // Max-min fairness: users who wanted less than an equal share got what they
                // wanted; those waiting all day should each have had the same, the mean of what
                // they had.
                if always.len() >= 2 {
                    let fair = always.iter().sum::<f64>() / always.len() as f64;
                    for s in &always {
                        worst = worst.max((s - fair).abs() / largest);
                    }
                }
            }
        }
        let share = |part: usize, whole: usize| {
            if whole == 0 {
                0.0
            } else {
                part as f64 / whole as f64
            }
        };
        Report {
            name: self.name.clone(),
            submitted: self.arrivals.len(),
            utilisation_vs_bound: self.used / self.fluid_bound().max(1.0),
            waited: self.waited,
            late_vs_first_promise: share(self.late_promise, self.started_promised),
            promised: self.promised,
            moved_promises: self.moved,
            late_vs_first_estimate: share(self.late_estimate, self.started_estimated),
            median_error_of_first_estimate: median(&mut self.errors),
            median_promise_lead: median(&mut self.leads),
            worst_daily_fairness_gap: worst,
            longest_big_wait_heavy_h: self.big_wait_heavy as f64 / HOUR,
            longest_big_wait_heavy_as_oldest_h: self.big_wait_heavy_as_oldest() as f64 / HOUR,
            longest_big_wait_h: self.big_wait as f64 / HOUR,
            timed_out: self.timed_out,
            slowest_pass_ms: self.slowest.as_secs_f64() * 1000.0,
            bookings: self.bookings,
            bookings_at_offer: self.bookings_at_offer,
            bookings_refused: self.bookings_refused,
            bookings_started: self.bookings_started,
            bookings_on_time: self.bookings_on_time,
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

impl Report {
    /// The header of [`Report::row`].
    pub fn header(bookings: bool) -> String {
        let mut header = String::from(
            "| Scenario | requests | waited | utilisation ÷ bound | late vs first promise | \
             moved promises | late vs first estimate | median error of first estimate | \
             promise lead | worst daily deviation from fair share | longest 8-GPU/gang wait, heavy \
             users | … once its owner's oldest | longest 8-GPU/gang wait | timed out | slowest \
             pass |",
        );
        let mut columns = 15;
        if bookings {
            header.push_str(" bookings on time |");
            columns += 1;
        }
        header.push_str("\n|---|");
        header.push_str(&"---:|".repeat(columns - 1));
        header
    }

    /// One Markdown table row; with `bookings`, its last cell says how the bookings fared.
    pub fn row(&self, bookings: bool) -> String {
        let row = format!(
            "| {} | {} | {} | {:.3} | {:.1} % of {} | {} | {:.1} % | {:.1} % | {:.0} % | {:.2}× | \
             {:.1} h | {:.1} h | {:.1} h | {} | {:.1} ms |",
            self.name,
            self.submitted,
            self.waited,
            self.utilisation_vs_bound,
            self.late_vs_first_promise * 100.0,
            self.promised,
            self.moved_promises,
            self.late_vs_first_estimate * 100.0,
            self.median_error_of_first_estimate * 100.0,
            self.median_promise_lead * 100.0,
            self.worst_daily_fairness_gap,
            self.longest_big_wait_heavy_h,
            self.longest_big_wait_heavy_as_oldest_h,
            self.longest_big_wait_h,
            self.timed_out,
            self.slowest_pass_ms,
        );
        if bookings {
            format!("{row} {} |", self.bookings_cell())
        } else {
            row
        }
    }

    /// `on time / started (accepted at a later offer, refused)`, or `-` without bookings.
    fn bookings_cell(&self) -> String {
        if self.bookings + self.bookings_refused == 0 {
            return "-".to_owned();
        }
        format!(
            "{} of {} ({} of {} at a later offer, {} refused)",
            self.bookings_on_time,
            self.bookings_started,
            self.bookings_at_offer,
            self.bookings,
            self.bookings_refused
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    fn request(id: u32, user: usize, gpus: u32, submitted_at: i64) -> Request {
        Request {
            id,
            user,
            gpu_type: 0,
            gpus,
            nodes: 1,
            booked: 2 * H,
            held: 2 * H,
            submitted_at,
            start_at: None,
        }
    }

    #[test]
    fn a_big_wait_as_its_owners_oldest_counts_from_when_the_owners_earlier_requests_left() {
        let s = Scenario::standard(1.0);
        let arrivals = vec![
            request(1, 0, 2, 0),
            // Another user's earlier request does not hold user 0's back.
            request(2, 1, 2, 0),
            request(3, 0, 8, H),
            request(4, 0, 1, 2 * H),
        ];
        let mut recorder = Recorder::new(&s, &arrivals);
        recorder.started(&arrivals[1], 20 * H);
        recorder.started(&arrivals[0], 10 * H);
        // Started after its own later, smaller request: still counted from 10 h.
        recorder.started(&arrivals[3], 11 * H);
        recorder.started(&arrivals[2], 14 * H);
        let report = recorder.finish(&[]);
        assert_eq!(report.longest_big_wait_heavy_h, 13.0);
        assert_eq!(report.longest_big_wait_heavy_as_oldest_h, 4.0);
    }

    #[test]
    fn a_timed_out_request_stops_holding_its_owners_later_ones_when_it_leaves() {
        let s = Scenario::standard(1.0);
        let arrivals = vec![request(1, 0, 4, 0), request(2, 0, 8, H)];
        let mut recorder = Recorder::new(&s, &arrivals);
        recorder.timed_out(&arrivals[0], 48 * H);
        recorder.started(&arrivals[1], 50 * H);
        let report = recorder.finish(&[]);
        assert_eq!(report.longest_big_wait_heavy_h, 49.0);
        assert_eq!(report.longest_big_wait_heavy_as_oldest_h, 2.0);
    }
}
