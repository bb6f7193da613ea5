//! Issue #18's compatibility suite: the original `gpu-dev` client's requests (OSDC 0.3.5, API
//! mode), replayed over real HTTP against a real API, PostgreSQL and PGMQ, with what the client
//! needs from each answer checked. The scenarios are the JSON fixtures in
//! `tests/fixtures/original-client/` (format in the README there); this module only replays
//! them, one test per scenario so a failure names it.
//!
//! Nothing of ours is mocked. What the processor or the availability job would do between two
//! requests (start a reservation, finish a disk operation, report node figures) the runner does
//! with the same store calls the other tests use, and the fixture says so in a `processor` or
//! `meanwhile` step.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_store::gpu_types::{self, Availability};
use gpudev_store::users::Role;
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app_with};
use crate::jobs_common::{activate, move_to};

/// Where the fixtures are, from the crate's own directory (no machine-specific path).
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/original-client"
);

/// The user the client is logged in as; its key is `{{KEY}}`, its name `{{USER}}`.
const USER: &str = "octocat";

/// Time between two polls of a `poll` step (the client waits seconds; the API answers at once).
const POLL_PAUSE: Duration = Duration::from_millis(50);

/// One scenario: a command of the client, as the requests it sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    /// Must equal the file's name without `.json`.
    scenario: String,
    /// The command line(s) the scenario replays.
    client: String,
    /// Anything a reader should know (what the runner does in the processor's place, say).
    #[serde(default)]
    #[expect(dead_code, reason = "read by people, not by the runner")]
    notes: Option<String>,
    /// For a fixture under `gaps/`: what gpudev does not yet give the client.
    #[serde(default)]
    gap: Option<String>,
    /// Headers the client's HTTP session sends with every request.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    steps: Vec<Step>,
}

/// A request and what the client needs from its answer, or something the processor does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    name: String,
    #[serde(default)]
    request: Option<Request>,
    #[serde(default)]
    expect: Option<Expect>,
    /// Repeat the request until `until` holds, as the client's poll loop does.
    #[serde(default)]
    poll: Option<Poll>,
    /// Done in the processor's (or the availability job's) place, instead of a request.
    #[serde(default)]
    processor: Option<Action>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    method: String,
    path: String,
    /// Added to (or replacing) the scenario's session headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

/// What an answer must be. Paths are dotted (`jobs.0.status`, `availability.t4-small.total`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    status: Option<u16>,
    /// Field equals value (numbers compare by value: 2 equals 2.0).
    #[serde(default)]
    equals: BTreeMap<String, Value>,
    /// Field is there and not null.
    #[serde(default)]
    present: Vec<String>,
    /// Field is there and not equal to value.
    #[serde(default)]
    differs: BTreeMap<String, Value>,
    /// Field is a string containing the text.
    #[serde(default)]
    mentions: BTreeMap<String, String>,
    /// The array at the path has, for each object given, an element with those fields.
    #[serde(default)]
    contains: BTreeMap<String, Vec<Value>>,
    /// The array at the path has no element with the fields of any object given.
    #[serde(default)]
    lacks: BTreeMap<String, Vec<Value>>,
    /// Placeholder name to the path whose value later steps use as `{{NAME}}`.
    #[serde(default)]
    save: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Poll {
    until: Expect,
    /// Done once, after the first answer that does not satisfy `until`.
    #[serde(default)]
    meanwhile: Option<Action>,
    #[serde(default = "default_attempts")]
    attempts: u32,
}

fn default_attempts() -> u32 {
    20
}

/// What the processor or the availability job would do, done with the store's own calls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Action {
    /// The processor admits the reservation and its pod becomes Ready (`jobs_common::activate`).
    Activate(String),
    /// The processor moves the reservation through these statuses (`jobs_common::move_to`).
    MoveTo { id: String, statuses: Vec<String> },
    /// The processor finishes a disk operation successfully.
    FinishDiskOperation(String),
    /// The processor's ticks apply deferred extensions until this reservation's is applied
    /// (ADR 15), as its leader does on every tick.
    ApplyDueExtensions(String),
    /// The availability job reports a type's Ready nodes and their GPUs.
    ReportCapacity {
        gpu_type: String,
        total_gpus: i32,
        nodes: i32,
    },
}

/// One replay: the app, the scenario's name and the placeholders known so far.
struct Replay {
    app: TestApp,
    scenario: String,
    vars: HashMap<String, Value>,
}

impl Replay {
    fn fail(&self, step: &str, what: impl std::fmt::Display) -> ! {
        panic!("scenario {}, step {step:?}: {what}", self.scenario)
    }

    /// A placeholder's value: given by the runner, saved by an earlier step, or (for names
    /// starting with `RESERVATION_ID`) a fresh uuid4, as the client makes one per reservation.
    /// `{{NAME:8}}` is the first 8 characters of `NAME`'s text (the short id the client shows).
    fn var(&mut self, step: &str, name: &str) -> Value {
        if let Some((base, len)) = name.split_once(':') {
            let len: usize = len
                .parse()
                .unwrap_or_else(|_| self.fail(step, format!("bad length in {{{{{name}}}}}")));
            let text = match self.var(step, base) {
                Value::String(s) => s,
                v => v.to_string(),
            };
            return Value::String(text.chars().take(len).collect());
        }
        if let Some(v) = self.vars.get(name) {
            return v.clone();
        }
        if name.starts_with("RESERVATION_ID") {
            let v = Value::String(Uuid::new_v4().to_string());
            self.vars.insert(name.to_owned(), v.clone());
            return v;
        }
        self.fail(
            step,
            format!(
                "placeholder {{{{{name}}}}} is neither the runner's nor saved by an earlier step"
            ),
        )
    }

    /// `value` with every `{{NAME}}` filled: a string that is only a placeholder takes the
    /// saved value itself (a number stays a number); inside text, its text.
    fn fill(&mut self, step: &str, value: &Value) -> Value {
        match value {
            Value::String(s) => self.fill_str(step, s),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.fill(step, v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.fill(step, v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn fill_str(&mut self, step: &str, s: &str) -> Value {
        if let Some(name) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
            && !name.contains("{{")
        {
            return self.var(step, name);
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                self.fail(step, format!("unclosed placeholder in {s:?}"));
            };
            out.push_str(&rest[..start]);
            let name = &rest[start + 2..start + len];
            match self.var(step, name) {
                Value::String(v) => out.push_str(&v),
                v => out.push_str(&v.to_string()),
            }
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        Value::String(out)
    }

    fn fill_text(&mut self, step: &str, s: &str) -> String {
        match self.fill_str(step, s) {
            Value::String(v) => v,
            v => v.to_string(),
        }
    }

    /// Sends the request as the client's `requests` session does: its headers, the JSON body,
    /// and for a bodyless POST or DELETE an empty body (`Content-Length: 0`).
    async fn send(
        &mut self,
        step: &str,
        session: &BTreeMap<String, String>,
        req: &Request,
    ) -> (u16, Value) {
        let method = Method::from_bytes(req.method.as_bytes())
            .unwrap_or_else(|_| self.fail(step, format!("bad method {:?}", req.method)));
        let path = self.fill_text(step, &req.path);
        let mut builder = self
            .app
            .http
            .request(method.clone(), format!("{}{path}", self.app.base));
        let mut headers = session.clone();
        headers.extend(req.headers.clone());
        for (name, value) in &headers {
            let value = self.fill_text(step, value);
            builder = builder.header(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        if let Some(body) = &req.body {
            let body = self.fill(step, body);
            builder = builder.body(serde_json::to_vec(&body).unwrap());
        } else if method != Method::GET && method != Method::HEAD {
            builder = builder.body(Vec::new());
        }
        let resp = builder
            .send()
            .await
            .unwrap_or_else(|e| self.fail(step, format!("{method} {path}: {e}")));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| {
                self.fail(
                    step,
                    format!("{method} {path} answered {status} with no JSON: {text}"),
                )
            })
        };
        (status, body)
    }

    /// Every way `body` (answered with `status`) falls short of `expect`, as
    /// "what: expected …, got …" lines.
    fn mismatches(
        &mut self,
        step: &str,
        expect: &Expect,
        status: u16,
        body: &Value,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(want) = expect.status
            && want != status
        {
            out.push(format!("status: expected {want}, got {status}"));
        }
        for (path, want) in &expect.equals {
            let want = self.fill(step, want);
            match at(body, path) {
                Some(got) if same(got, &want) => {}
                got => out.push(format!("{path}: expected {want}, got {}", shown(got))),
            }
        }
        for path in &expect.present {
            match at(body, path) {
                Some(v) if !v.is_null() => {}
                got => out.push(format!("{path}: expected a value, got {}", shown(got))),
            }
        }
        for (path, other) in &expect.differs {
            let other = self.fill(step, other);
            match at(body, path) {
                Some(got) if !same(got, &other) => {}
                got => out.push(format!(
                    "{path}: expected anything but {other}, got {}",
                    shown(got)
                )),
            }
        }
        for (path, text) in &expect.mentions {
            let text = self.fill_text(step, text);
            match at(body, path).and_then(Value::as_str) {
                Some(got) if got.contains(&text) => {}
                _ => out.push(format!(
                    "{path}: expected text mentioning {text:?}, got {}",
                    shown(at(body, path))
                )),
            }
        }
        for (path, items) in &expect.contains {
            for item in items {
                let item = self.fill(step, item);
                if !elements(body, path).iter().any(|e| matches(e, &item)) {
                    out.push(format!(
                        "{path}: expected an element with {item}, got {}",
                        shown(at(body, path))
                    ));
                }
            }
        }
        for (path, items) in &expect.lacks {
            for item in items {
                let item = self.fill(step, item);
                if at(body, path).is_none_or(|v| !v.is_array()) {
                    out.push(format!(
                        "{path}: expected a list, got {}",
                        shown(at(body, path))
                    ));
                } else if let Some(e) = elements(body, path).iter().find(|e| matches(e, &item)) {
                    out.push(format!("{path}: expected no element with {item}, got {e}"));
                }
            }
        }
        out
    }

    /// Checks an answer and saves what later steps use; fails the test listing every mismatch.
    fn check(&mut self, step: &str, expect: &Expect, status: u16, body: &Value) {
        let wrong = self.mismatches(step, expect, status, body);
        if !wrong.is_empty() {
            self.fail(
                step,
                format!("\n  {}\n  answer ({status}): {body}", wrong.join("\n  ")),
            );
        }
        for (name, path) in &expect.save {
            match at(body, path) {
                Some(v) => {
                    self.vars.insert(name.clone(), v.clone());
                }
                None => self.fail(step, format!("cannot save {name}: no {path} in {body}")),
            }
        }
    }

    async fn act(&mut self, step: &str, action: &Action) {
        match action {
            Action::Activate(id) => {
                let id = self.reservation(step, id);
                activate(&self.app, id).await;
            }
            Action::MoveTo { id, statuses } => {
                let id = self.reservation(step, id);
                let path: Vec<ReservationStatus> = statuses
                    .iter()
                    .map(|s| {
                        serde_json::from_value(Value::String(s.clone()))
                            .unwrap_or_else(|_| self.fail(step, format!("unknown status {s:?}")))
                    })
                    .collect();
                move_to(&self.app, id, &path).await;
            }
            Action::ApplyDueExtensions(id) => {
                let id = self.reservation(step, id);
                let client = self.app.db.connect().await;
                let mut applied = false;
                for _ in 0..100 {
                    let moved = gpudev_store::reservations::apply_due_extensions(&client)
                        .await
                        .unwrap();
                    if moved.contains(&id) {
                        applied = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if !applied {
                    self.fail(step, format!("no deferred extension of {id} came due"));
                }
            }
            Action::FinishDiskOperation(op) => {
                let op: Uuid = self.fill_text(step, op).parse().unwrap();
                let client = self.app.db.connect().await;
                let disk_id: Uuid = client
                    .query_one(
                        "SELECT disk_id FROM disk_operations WHERE operation_id = $1",
                        &[&op],
                    )
                    .await
                    .unwrap()
                    .get(0);
                let finished = gpudev_store::disks::finish_operation(&client, disk_id, op, None)
                    .await
                    .unwrap();
                assert!(finished, "operation {op} was not pending");
            }
            Action::ReportCapacity {
                gpu_type,
                total_gpus,
                nodes,
            } => {
                let client = self.app.db.connect().await;
                let figures = Availability {
                    total_gpus: *total_gpus,
                    available_gpus: *total_gpus,
                    in_use_gpus: 0,
                    queued_gpus: 0,
                    full_nodes_available: *nodes,
                    max_reservable: total_gpus / (*nodes).max(1),
                    running_nodes: *nodes,
                };
                let known =
                    gpu_types::write_availability(&client, gpu_type, &figures, "availability")
                        .await
                        .unwrap();
                assert!(known, "unknown GPU type {gpu_type}");
            }
        }
    }

    fn reservation(&mut self, step: &str, raw: &str) -> Uuid {
        let text = self.fill_text(step, raw);
        text.parse()
            .unwrap_or_else(|_| self.fail(step, format!("{text:?} is not a reservation id")))
    }

    async fn step(&mut self, session: &BTreeMap<String, String>, step: &Step) {
        let name = step.name.as_str();
        match (&step.request, &step.processor) {
            (Some(req), None) => {
                let Some(expect) = &step.expect else {
                    self.fail(name, "a request step needs `expect`");
                };
                if expect.status.is_none() {
                    self.fail(name, "`expect` needs the status the client wants");
                }
                let (mut status, mut body) = self.send(name, session, req).await;
                if let Some(poll) = &step.poll {
                    let mut meanwhile = poll.meanwhile.as_ref();
                    let mut attempt = 1;
                    while !self.mismatches(name, &poll.until, status, &body).is_empty() {
                        if status != 200 || attempt >= poll.attempts {
                            let wrong = self.mismatches(name, &poll.until, status, &body);
                            self.fail(
                                name,
                                format!(
                                    "polled {attempt} times and never saw what the client waits for:\n  {}\n  last answer ({status}): {body}",
                                    wrong.join("\n  ")
                                ),
                            );
                        }
                        if let Some(action) = meanwhile.take() {
                            self.act(name, action).await;
                        }
                        tokio::time::sleep(POLL_PAUSE).await;
                        (status, body) = self.send(name, session, req).await;
                        attempt += 1;
                    }
                }
                self.check(name, expect, status, &body);
            }
            (None, Some(action)) if step.expect.is_none() && step.poll.is_none() => {
                self.act(name, action).await;
            }
            _ => self.fail(
                name,
                "a step is either a `request` with `expect` (and maybe `poll`) or a `processor` action",
            ),
        }
    }
}

/// The value at a dotted path; a numeric segment indexes an array.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, seg| match v {
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        Value::Object(map) => map.get(seg),
        _ => None,
    })
}

fn elements<'a>(body: &'a Value, path: &str) -> &'a [Value] {
    at(body, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Whether `element` has every field of `item` (an object of paths to values), or is `item`.
fn matches(element: &Value, item: &Value) -> bool {
    match item {
        Value::Object(fields) => fields
            .iter()
            .all(|(path, want)| at(element, path).is_some_and(|got| same(got, want))),
        other => same(element, other),
    }
}

/// JSON equality where numbers compare by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn shown(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing (no such field)".to_owned(), Value::to_string)
}

fn load(path: &Path) -> Scenario {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let scenario: Scenario = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a scenario: {e}", path.display()));
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    assert_eq!(
        scenario.scenario,
        stem,
        "{}: `scenario` must be the file's name",
        path.display()
    );
    assert!(
        !scenario.client.is_empty(),
        "{stem}: `client` says which command"
    );
    scenario
}

/// Replays one fixture (a path relative to the fixtures' directory, without `.json`).
async fn replay(file: &str) {
    let scenario = load(&PathBuf::from(FIXTURES).join(format!("{file}.json")));
    // The original client's extensions take effect this long after they are asked for (ADR 15).
    let app = spawn_app_with(&[("EXTEND_DEFER_SECONDS", "1")]).await;
    let (_, key) = app.user_with_key(USER, Role::User).await;
    let mut run = Replay {
        app,
        scenario: file.to_owned(),
        vars: HashMap::from([
            ("KEY".to_owned(), Value::String(key)),
            ("USER".to_owned(), Value::String(USER.to_owned())),
        ]),
    };
    for step in &scenario.steps {
        run.step(&scenario.headers, step).await;
    }
}

/// One `#[tokio::test]` per fixture; `gaps` are fixtures of what gpudev does not yet give the
/// client, replayed only with `--ignored`.
macro_rules! scenarios {
    (
        passing { $($test:ident => $file:literal,)* }
        gaps { $($gap:ident => $gap_file:literal,)* }
        not_replayed { $($other:literal,)* }
    ) => {
        $(
            #[tokio::test]
            async fn $test() {
                replay($file).await;
            }
        )*
        $(
            #[tokio::test]
            #[ignore = "a known gap of #18; see tests/fixtures/original-client/README.md"]
            async fn $gap() {
                replay($gap_file).await;
            }
        )*
        /// Every fixture the module knows, replayed or not.
        const KNOWN: &[&str] = &[$($file,)* $($gap_file,)* $($other,)*];
    };
}

scenarios! {
    passing {
        reserve_t4_with_a_name => "reserve-t4-named",
        reserve_a_whole_h100_node => "reserve-h100-node",
        reserve_t4_small => "reserve-t4-small",
        reserve_cpu_x86_and_its_old_aliases => "reserve-cpu-x86",
        reserve_with_jupyter => "reserve-jupyter",
        reserve_with_a_disk => "reserve-disk",
        list_with_the_default_status_filter => "list-default-filter",
        show_and_cancel => "show-and-cancel",
        edit_a_queued_reservation => "edit-queued",
        edit_an_active_reservation => "edit-active",
        disk_create_show_rename_delete => "disk-lifecycle",
        avail => "avail",
        cluster_status => "status",
        key_rotation => "key-rotation",
        refused_options_are_422_naming_the_option => "refused-options",
        disk_list_content => "disk-list-content",
        distributed_reserve_is_one_reservation => "distributed-reserve",
        extend_as_the_client_polls_for_it => "extend-client-poll",
    }
    gaps {}
    not_replayed {}
}

/// Every fixture in the directory is known to the module (and parses), so none is silently
/// skipped.
#[test]
fn every_fixture_is_replayed_or_listed() {
    let mut found = Vec::new();
    for dir in ["", "gaps"] {
        let dir_path = PathBuf::from(FIXTURES).join(dir);
        if !dir_path.exists() {
            continue;
        }
        for entry in std::fs::read_dir(&dir_path).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let scenario = load(&path);
                assert_eq!(
                    scenario.gap.is_some(),
                    dir == "gaps",
                    "{}: a fixture has `gap` exactly when it is under gaps/",
                    path.display()
                );
                let stem = path.file_stem().unwrap().to_str().unwrap();
                found.push(if dir.is_empty() {
                    stem.to_owned()
                } else {
                    format!("{dir}/{stem}")
                });
            }
        }
    }
    found.sort();
    let mut known: Vec<String> = KNOWN.iter().map(|s| (*s).to_owned()).collect();
    known.sort();
    assert_eq!(
        found, known,
        "fixtures on disk vs fixtures the module replays"
    );
}
