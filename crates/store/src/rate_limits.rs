//! Token buckets shared by every API replica (`rate_limit_buckets`, ADR 13).
//!
//! A bucket holds up to `capacity` tokens and gains `rate` a second, by the database's clock, so
//! replicas with skewed clocks agree. A replica [`take`]s tokens for requests it is about to
//! admit, several at a time when a client is busy, and [`give_back`] what it did not use. Every
//! token is handed out by one guarded statement on the bucket's row, so all replicas together
//! admit at most what one bucket allows.
//!
//! A bucket that has filled up again is the same as no bucket; [`forget_full`] deletes those.

use std::collections::HashMap;

use crate::{Db, StoreError};

/// One bucket's request for tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Take<'a> {
    /// What is limited (`api_key`, `login_identity`, ...).
    pub scope: &'a str,
    /// Which one of them (an API key's id, an address, ...).
    pub key: &'a str,
    /// Tokens added per second (the limit per minute / 60).
    pub rate: f64,
    /// The most tokens the bucket holds (the limit per minute plus its burst); at least 1.
    pub capacity: f64,
    /// How many tokens the caller would like; it gets fewer when the bucket has fewer.
    pub want: u32,
}

/// What one bucket handed out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken {
    /// Tokens granted, `0..=want`.
    pub granted: u32,
    /// Tokens left in the bucket after the grant (under 1 when it granted fewer than asked).
    pub tokens_left: f64,
}

impl Taken {
    /// Seconds until the bucket holds a whole token again, at `rate` tokens a second (zero when it
    /// holds one now).
    pub fn seconds_to_next_token(&self, rate: f64) -> f64 {
        if self.tokens_left >= 1.0 || rate <= 0.0 {
            0.0
        } else {
            (1.0 - self.tokens_left) / rate
        }
    }
}

/// Takes tokens from each bucket in `takes` (a bucket not seen before starts full), in one
/// statement. The answers are in the order of `takes`. Each (scope, key) may appear only once.
pub async fn take(db: &impl Db, takes: &[Take<'_>]) -> Result<Vec<Taken>, StoreError> {
    if takes.is_empty() {
        return Ok(Vec::new());
    }
    let scopes: Vec<&str> = takes.iter().map(|t| t.scope).collect();
    let keys: Vec<&str> = takes.iter().map(|t| t.key).collect();
    let rates: Vec<f64> = takes.iter().map(|t| t.rate).collect();
    let capacities: Vec<f64> = takes.iter().map(|t| t.capacity.max(1.0)).collect();
    let wants: Vec<i32> = takes
        .iter()
        .map(|t| i32::try_from(t.want).unwrap_or(i32::MAX))
        .collect();
    // A new row is a full bucket less the grant. On an existing row `granted` first holds the
    // request (EXCLUDED.granted: the want, capped at the capacity), then what was handed out;
    // both SET expressions read the row as it was.
    let rows = db
        .query(
            "INSERT INTO rate_limit_buckets AS b \
               (scope, key, rate, capacity, tokens, granted, updated_at) \
             SELECT scope, key, rate, capacity, capacity - least(want, floor(capacity)), \
                    least(want, floor(capacity))::int, clock_timestamp() \
             FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::int4[]) \
                  AS r(scope, key, rate, capacity, want) \
             ON CONFLICT (scope, key) DO UPDATE SET \
               rate = EXCLUDED.rate, \
               capacity = EXCLUDED.capacity, \
               granted = least(EXCLUDED.granted, floor(gpudev_rate_limit_refill(b.tokens, \
                   EXCLUDED.rate, EXCLUDED.capacity, \
                   extract(epoch FROM EXCLUDED.updated_at - b.updated_at)::float8)))::int, \
               tokens = gpudev_rate_limit_refill(b.tokens, EXCLUDED.rate, EXCLUDED.capacity, \
                   extract(epoch FROM EXCLUDED.updated_at - b.updated_at)::float8) \
                 - least(EXCLUDED.granted, floor(gpudev_rate_limit_refill(b.tokens, \
                   EXCLUDED.rate, EXCLUDED.capacity, \
                   extract(epoch FROM EXCLUDED.updated_at - b.updated_at)::float8))), \
               updated_at = EXCLUDED.updated_at \
             RETURNING scope, key, granted, tokens",
            &[&scopes, &keys, &rates, &capacities, &wants],
        )
        .await?;
    let mut by_bucket: HashMap<(String, String), Taken> = rows
        .iter()
        .map(|row| {
            let granted: i32 = row.get(2);
            (
                (row.get(0), row.get(1)),
                Taken {
                    granted: u32::try_from(granted).unwrap_or(0),
                    tokens_left: row.get(3),
                },
            )
        })
        .collect();
    takes
        .iter()
        .map(|t| {
            by_bucket
                .remove(&(t.scope.to_owned(), t.key.to_owned()))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "rate limit bucket {}/{} missing from its own take (listed twice?)",
                        t.scope, t.key
                    ))
                })
        })
        .collect()
}

/// Returns unused tokens to their buckets (never above a bucket's capacity); buckets that were
/// forgotten meanwhile are full already and are left alone.
pub async fn give_back(db: &impl Db, tokens: &[(&str, &str, u32)]) -> Result<(), StoreError> {
    if tokens.is_empty() {
        return Ok(());
    }
    let scopes: Vec<&str> = tokens.iter().map(|t| t.0).collect();
    let keys: Vec<&str> = tokens.iter().map(|t| t.1).collect();
    let counts: Vec<f64> = tokens.iter().map(|t| f64::from(t.2)).collect();
    db.execute(
        "UPDATE rate_limit_buckets AS b SET tokens = least(b.capacity, b.tokens + r.n) \
         FROM (SELECT scope, key, sum(n) AS n \
               FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(scope, key, n) \
               GROUP BY scope, key) AS r \
         WHERE b.scope = r.scope AND b.key = r.key",
        &[&scopes, &keys, &counts],
    )
    .await?;
    Ok(())
}

/// Deletes the buckets that have filled up again (a full bucket and no bucket admit the same);
/// returns how many. Keeps the table as small as the set of recently limited things.
pub async fn forget_full(db: &impl Db) -> Result<u64, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM rate_limit_buckets \
             WHERE gpudev_rate_limit_refill(tokens, rate, capacity, \
                   extract(epoch FROM clock_timestamp() - updated_at)::float8) >= capacity",
            &[],
        )
        .await?)
}
