//! Users' registered SSH public keys, installed into their dev boxes' `authorized_keys`.

use chrono::{DateTime, Utc};
use gpudev_domain::SshPublicKey;
use serde::Serialize;
use tokio_postgres::Client;

use crate::{Db, StoreError};

/// Most keys one user may register.
pub const MAX_KEYS_PER_USER: usize = 32;

/// A stored key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredKey {
    /// Key type (`ssh-ed25519`, …).
    pub key_type: String,
    /// `SHA256:…` fingerprint.
    pub fingerprint: String,
    /// The key's comment.
    pub comment: Option<String>,
    /// The full `authorized_keys` line.
    pub public_key: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// Replaces a user's keys with `keys` in one transaction (duplicates by fingerprint collapse).
///
/// The user's row is locked first, so concurrent replacements run one after the other and the
/// last one's set is what remains: without the lock, each would delete only the rows it saw and
/// the sets would merge.
pub async fn replace(
    client: &mut Client,
    user_id: i64,
    keys: &[SshPublicKey],
) -> Result<Vec<StoredKey>, StoreError> {
    if keys.len() > MAX_KEYS_PER_USER {
        return Err(StoreError::Conflict(format!(
            "at most {MAX_KEYS_PER_USER} SSH keys may be registered"
        )));
    }
    let tx = client.transaction().await?;
    // NO KEY UPDATE: serialises replacements without blocking rows that merely refer to the user
    // (a key issued or a reservation submitted meanwhile).
    tx.execute(
        "SELECT 1 FROM users WHERE user_id = $1 FOR NO KEY UPDATE",
        &[&user_id],
    )
    .await?;
    tx.execute("DELETE FROM user_ssh_keys WHERE user_id = $1", &[&user_id])
        .await?;
    for k in keys {
        tx.execute(
            "INSERT INTO user_ssh_keys (user_id, public_key, fingerprint, comment) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, fingerprint) DO NOTHING",
            &[&user_id, &k.to_line(), &k.fingerprint(), &k.comment()],
        )
        .await?;
    }
    let stored = list(&tx, user_id).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Adds one key to a user's keys in one statement; false when it was registered already or the
/// user has [`MAX_KEYS_PER_USER`] keys (see [`list`] to tell which).
pub async fn add(db: &impl Db, user_id: i64, key: &SshPublicKey) -> Result<bool, StoreError> {
    let limit = i64::try_from(MAX_KEYS_PER_USER).unwrap_or(i64::MAX);
    Ok(db
        .execute(
            "INSERT INTO user_ssh_keys (user_id, public_key, fingerprint, comment) \
             SELECT $1, $2, $3, $4 \
             WHERE (SELECT count(*) FROM user_ssh_keys WHERE user_id = $1) < $5 \
             ON CONFLICT (user_id, fingerprint) DO NOTHING",
            &[
                &user_id,
                &key.to_line(),
                &key.fingerprint(),
                &key.comment(),
                &limit,
            ],
        )
        .await?
        == 1)
}

/// Removes the user's key with `fingerprint` in one statement; false when they had none.
pub async fn remove(db: &impl Db, user_id: i64, fingerprint: &str) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM user_ssh_keys WHERE user_id = $1 AND fingerprint = $2",
            &[&user_id, &fingerprint],
        )
        .await?
        == 1)
}

/// A user's keys, oldest first.
pub async fn list(db: &impl Db, user_id: i64) -> Result<Vec<StoredKey>, StoreError> {
    let rows = db
        .query(
            "SELECT split_part(public_key, ' ', 1), fingerprint, comment, public_key, created_at \
             FROM user_ssh_keys WHERE user_id = $1 ORDER BY ssh_key_id",
            &[&user_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StoredKey {
            key_type: r.get(0),
            fingerprint: r.get(1),
            comment: r.get(2),
            public_key: r.get(3),
            created_at: r.get(4),
        })
        .collect())
}
