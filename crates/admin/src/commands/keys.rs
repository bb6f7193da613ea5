//! `gpudev-admin keys create|list|revoke`

use std::io::Write;

use gpudev_domain::ApiKey;
use gpudev_store::api_keys::{self, NewKey};
use gpudev_store::{DbConfig, users};

use super::{Ctx, connect};
use crate::{Format, KeysCommand, output};

pub(crate) async fn run(
    cfg: &DbConfig,
    ctx: &Ctx,
    cmd: KeysCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let pool = connect(cfg).await?;
    let db = pool.get().await?;
    match cmd {
        KeysCommand::Create {
            user,
            ttl_hours,
            description,
            rate_limit,
        } => {
            let owner = users::get_by_name(&**db, &user).await?;
            if !owner.is_active {
                anyhow::bail!("user {user:?} is disabled; enable them first");
            }
            let key = ApiKey::generate()?;
            let description = description.unwrap_or_else(|| "created by gpudev-admin".into());
            let record = api_keys::insert(
                &**db,
                owner.user_id,
                &key,
                &NewKey {
                    ttl: chrono::Duration::hours(i64::from(ttl_hours)),
                    description: Some(&description),
                    auth_method: "admin",
                    auth_issuer: None,
                    rate_limit_per_minute: rate_limit.map(|r| r as i32),
                },
            )
            .await?;
            match ctx.format {
                Format::Json => output::json(
                    out,
                    &serde_json::json!({
                        "api_key": key.expose_secret(),
                        "key_id": record.key_id,
                        "key_prefix": record.key_prefix,
                        "username": record.username,
                        "expires_at": record.expires_at,
                    }),
                )?,
                Format::Table => {
                    writeln!(out, "{}", key.expose_secret())?;
                    eprintln!(
                        "Key {} for {} (prefix {}), expires {}. It is shown only once: store it now.",
                        record.key_id,
                        record.username,
                        record.key_prefix,
                        output::time(Some(record.expires_at))
                    );
                }
            }
        }
        KeysCommand::List { user } => {
            let owner = match user {
                Some(u) => Some(users::get_by_name(&**db, &u).await?),
                None => None,
            };
            let keys = api_keys::list(&**db, owner.as_ref()).await?;
            match ctx.format {
                Format::Json => output::json(out, &keys)?,
                Format::Table => {
                    let now = chrono::Utc::now();
                    let rows: Vec<Vec<String>> = keys
                        .iter()
                        .map(|k| {
                            let state = if k.revoked_at.is_some() {
                                "revoked"
                            } else if k.expires_at <= now {
                                "expired"
                            } else {
                                "active"
                            };
                            vec![
                                k.key_id.to_string(),
                                k.username.clone(),
                                k.key_prefix.clone(),
                                state.into(),
                                output::time(Some(k.created_at)),
                                output::time(Some(k.expires_at)),
                                output::time(k.last_used_at),
                                k.description.clone().unwrap_or_default(),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &[
                            "ID",
                            "USER",
                            "PREFIX",
                            "STATE",
                            "CREATED",
                            "EXPIRES",
                            "LAST USED",
                            "DESCRIPTION",
                        ],
                        &rows,
                    )?;
                }
            }
        }
        KeysCommand::Revoke { id } => {
            let k = api_keys::revoke(&**db, id, None).await?;
            match ctx.format {
                Format::Json => output::json(out, &k)?,
                Format::Table => writeln!(
                    out,
                    "revoked key {} ({}, prefix {})",
                    k.key_id, k.username, k.key_prefix
                )?,
            }
        }
    }
    Ok(())
}
