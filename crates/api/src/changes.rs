//! The connection that keeps the replica's caches honest. Verified keys ([`KeyCache`]) and job
//! answers ([`JobCache`]) are trusted only while it is up. On it the replica
//!
//! - `LISTEN`s for `gpudev_auth_changed` (a key revoked, a user disabled, renamed or given
//!   another role; rare writes, so a trigger's `NOTIFY` costs nothing that matters), and
//! - every `JOB_CACHE_POLL_MS` reads whose jobs changed from `job_changes` (see
//!   [`gpudev_store::job_changes`]): reservations are written far too often for `NOTIFY`, whose
//!   commit lock would serialise every writer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use gpudev_store::job_changes::{self, Mark};
use gpudev_store::{DbConfig, StoreError};
use tokio_postgres::AsyncMessage;

use crate::auth::KeyCache;
use crate::job_cache::JobCache;

/// Authentication facts changed (payload: the user id): a key revoked or shortened, a user
/// disabled, renamed or given another role.
pub const AUTH_CHANNEL: &str = "gpudev_auth_changed";
/// The connection's `application_name` (as `pg_stat_activity` shows it).
pub const CONNECTION_NAME: &str = "gpudev-api-changes";

/// How long `job_changes` rows are kept after every replica could have read them. A replica
/// that has not looked for half this long drops all its job answers instead of asking.
const RETENTION: Duration = Duration::from_secs(300);
/// How often a replica deletes rows older than [`RETENTION`].
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The caches the listener keeps.
#[derive(Debug, Clone)]
pub struct Caches {
    /// Verified keys.
    pub keys: Arc<KeyCache>,
    /// Job pages and details.
    pub jobs: Arc<JobCache>,
}

impl Caches {
    fn set_live(&self, live: bool) {
        if live {
            self.keys.clear();
        }
        self.keys.set_live(live);
        self.jobs.set_live(live);
    }

    fn auth_changed(&self, payload: &str) {
        match payload.parse::<i64>() {
            Ok(user_id) => {
                self.keys.invalidate_user(user_id);
                // A renamed user's jobs show the new name.
                self.jobs.invalidate_users([user_id]);
            }
            Err(_) => {
                self.keys.clear();
                self.jobs.clear();
            }
        }
    }
}

/// Keeps the connection open and applies every change. While it is down the caches are not
/// trusted, so no change is ever missed.
pub fn spawn_change_listener(
    cfg: DbConfig,
    caches: Caches,
    poll_every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match follow(&cfg, &caches, poll_every).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, "change listener disconnected; caches off");
                }
            }
            caches.set_live(false);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    })
}

async fn follow(cfg: &DbConfig, caches: &Caches, poll_every: Duration) -> Result<(), StoreError> {
    let cfg = cfg.clone().with_application_name(CONNECTION_NAME);
    let (client, mut conn) = gpudev_store::connect::connect(&cfg).await?;
    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Some(n.payload().to_owned())).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "change listener connection error");
                    break;
                }
            }
        }
        let _ = tx.send(None);
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {AUTH_CHANNEL}"))
            .await?;
        let mut jobs = JobChanges::start(&client).await?;
        // Anything cached before now may be stale: `set_live` starts from empty.
        caches.set_live(true);
        let mut poll = tokio::time::interval(poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge = tokio::time::interval(PURGE_EVERY);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                note = rx.recv() => match note {
                    Some(Some(payload)) => caches.auth_changed(&payload),
                    _ => return Ok(()),
                },
                _ = poll.tick() => jobs.poll(&client, &caches.jobs).await?,
                _ = purge.tick() => jobs.purge(&client).await?,
            }
        }
    }
    .await;
    driver.abort();
    result
}

/// A replica's place in `job_changes`.
struct JobChanges {
    mark: Mark,
    marked_at: Instant,
    /// Marks taken once per purge interval, oldest first, for purging.
    history: VecDeque<(Instant, Mark)>,
}

impl JobChanges {
    async fn start(client: &tokio_postgres::Client) -> Result<Self, StoreError> {
        Ok(Self {
            mark: job_changes::mark(client).await?,
            marked_at: Instant::now(),
            history: VecDeque::new(),
        })
    }

    async fn poll(
        &mut self,
        client: &tokio_postgres::Client,
        jobs: &JobCache,
    ) -> Result<(), StoreError> {
        let (users, mark) = job_changes::since(client, &self.mark).await?;
        if self.marked_at.elapsed() > RETENTION / 2 {
            // Rows this replica never read may have been purged meanwhile.
            jobs.clear();
        } else if !users.is_empty() {
            jobs.invalidate_users(users);
        }
        self.mark = mark;
        self.marked_at = Instant::now();
        Ok(())
    }

    /// Deletes the rows of transactions that had finished a [`RETENTION`] ago.
    async fn purge(&mut self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        self.history.push_back((self.marked_at, self.mark.clone()));
        while self
            .history
            .get(1)
            .is_some_and(|(at, _)| at.elapsed() >= RETENTION)
        {
            self.history.pop_front();
        }
        if let Some((at, old)) = self.history.front()
            && at.elapsed() >= RETENTION
        {
            let purged = job_changes::purge_before(client, old).await?;
            tracing::debug!(purged, "purged job changes");
        }
        Ok(())
    }
}
