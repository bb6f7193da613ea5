//! `gpudev-agent`: runs in each dev box, without privileges (ADR 18).
//!
//! ```text
//! gpudev-agent                 report every minute until stopped
//! gpudev-agent --once          report once; exit status 1 if it was not accepted
//! gpudev-agent install DEST    copy this binary to DEST (the dev box's init container does)
//! ```
//!
//! Settings come from the environment (see [`gpudev_agent::Settings`]).

use std::process::ExitCode;

use gpudev_agent::{Settings, collect, http_client, send};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["install", dest] => install(dest),
        [] => run(false),
        ["--once"] => run(true),
        _ => {
            eprintln!("usage: gpudev-agent [--once] | gpudev-agent install DEST");
            ExitCode::from(2)
        }
    }
}

/// Copies the running binary to `dest` (made executable by everyone), through a temporary
/// file so a half-written copy is never run.
fn install(dest: &str) -> ExitCode {
    let copy = || -> std::io::Result<()> {
        let me = std::env::current_exe()?;
        let tmp = format!("{dest}.tmp");
        std::fs::copy(&me, &tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::rename(&tmp, dest)
    };
    match copy() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpudev-agent: cannot install to {dest}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(once: bool) -> ExitCode {
    let settings = match Settings::from_env(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gpudev-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gpudev-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let http = http_client();
        let mut tick = tokio::time::interval(settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let report = collect(&http, &settings).await;
            match send(&http, &settings, &report).await {
                Ok(answer) => {
                    if once {
                        println!("{}", serde_json::to_string(&answer).unwrap_or_default());
                        return ExitCode::SUCCESS;
                    }
                }
                Err(e) => {
                    eprintln!("gpudev-agent: {e}");
                    if once {
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    })
}
