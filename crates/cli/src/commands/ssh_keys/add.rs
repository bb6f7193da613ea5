//! `gpu-dev ssh-keys add`

use std::path::{Path, PathBuf};

use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::output;
use crate::session::Session;

/// Register SSH public keys for your dev boxes.
///
/// Adds the keys in FILE (OpenSSH public key lines; several files may be given) to those already
/// registered; without FILE, every ~/.ssh/*.pub. The keys go into the authorized_keys of dev boxes
/// reserved from now on.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Public key files (default: ~/.ssh/*.pub).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `type base64`: what makes two key lines the same key.
fn identity(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The key lines of a file (blank lines and `#` comments skipped).
fn key_lines(path: &Path) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

fn default_files(home: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(home.join(".ssh"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "pub") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs `ssh-keys add`.
pub async fn run(ctx: &Ctx, args: Args) -> CliResult {
    let files = if args.files.is_empty() {
        default_files(&ctx.paths.home)
    } else {
        args.files.clone()
    };
    let mut new_lines = Vec::new();
    for f in &files {
        new_lines.extend(key_lines(f)?);
    }
    if new_lines.is_empty() {
        return Err(CliError::Usage(if args.files.is_empty() {
            format!(
                "no public keys in {}/*.pub; give a key file (ssh-keygen -t ed25519 makes one)",
                ctx.paths.home.join(".ssh").display()
            )
        } else {
            "the files hold no public keys".into()
        }));
    }
    let mut session = Session::new(ctx)?;
    let current = session.call(async |c| c.ssh_keys().await).await?;
    let mut keys: Vec<String> = current.keys.iter().map(|k| k.public_key.clone()).collect();
    let mut known: Vec<String> = keys.iter().map(|k| identity(k)).collect();
    let mut added = 0;
    for line in new_lines {
        let id = identity(&line);
        if !known.contains(&id) {
            known.push(id);
            keys.push(line);
            added += 1;
        }
    }
    let list = if added > 0 {
        session.call(async |c| c.set_ssh_keys(&keys).await).await?
    } else {
        current
    };
    if ctx.json() {
        return output::json(&list);
    }
    output::print(&format!("{added} key(s) added; {} registered:", list.total));
    for k in &list.keys {
        let line = format!(
            "  {} {} {}",
            k.key_type,
            k.fingerprint,
            k.comment.as_deref().unwrap_or("")
        );
        output::print(line.trim_end());
    }
    Ok(())
}
