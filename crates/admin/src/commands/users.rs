//! `gpudev-admin users …`

use std::io::Write;

use gpudev_domain::Username;
use gpudev_store::DbConfig;
use gpudev_store::users::{self, Role, User};

use super::{Ctx, connect};
use crate::{Format, UsersCommand, output};

pub(crate) async fn run(
    cfg: &DbConfig,
    ctx: &Ctx,
    cmd: UsersCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let pool = connect(cfg).await?;
    let db = pool.get().await?;
    let (user, verb) = match cmd {
        UsersCommand::List => {
            let all = users::list(&**db).await?;
            return match ctx.format {
                Format::Json => output::json(out, &all),
                Format::Table => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|u| {
                            vec![
                                u.user_id.to_string(),
                                u.username.to_string(),
                                u.role.as_str().into(),
                                if u.is_active { "active" } else { "disabled" }.into(),
                                u.aws_arn
                                    .clone()
                                    .or_else(|| u.oidc_issuer.clone())
                                    .unwrap_or_default(),
                                output::time(u.last_login_at),
                            ]
                        })
                        .collect();
                    Ok(output::table(
                        out,
                        &["ID", "USERNAME", "ROLE", "STATE", "IDENTITY", "LAST LOGIN"],
                        &rows,
                    )?)
                }
            };
        }
        UsersCommand::Create { username, admin } => {
            let name = Username::parse(&username)?;
            let role = if admin { Role::Admin } else { Role::User };
            (users::create(&**db, &name, role).await?, "created")
        }
        UsersCommand::Disable { username } => (
            users::set_active(&**db, &username, false).await?,
            "disabled (keys revoked)",
        ),
        UsersCommand::Enable { username } => {
            (users::set_active(&**db, &username, true).await?, "enabled")
        }
        UsersCommand::GrantAdmin { username } => (
            users::set_role(&**db, &username, Role::Admin).await?,
            "is now an admin",
        ),
        UsersCommand::RevokeAdmin { username } => (
            users::set_role(&**db, &username, Role::User).await?,
            "is now a normal user",
        ),
        UsersCommand::LinkOidc {
            username,
            issuer,
            subject,
        } => {
            if issuer.trim().is_empty() || subject.trim().is_empty() {
                anyhow::bail!("--issuer and --subject must not be empty");
            }
            (
                users::link_oidc(&**db, &username, &issuer, &subject).await?,
                "is linked to that OIDC identity",
            )
        }
        UsersCommand::UnlinkOidc { username } => (
            users::unlink_oidc(&**db, &username).await?,
            "has no OIDC identity now",
        ),
    };
    print_user(out, ctx.format, &user, verb)
}

fn print_user(out: &mut impl Write, format: Format, user: &User, verb: &str) -> anyhow::Result<()> {
    match format {
        Format::Json => output::json(out, user),
        Format::Table => Ok(writeln!(out, "user {} {verb}", user.username)?),
    }
}
