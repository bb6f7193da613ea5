//! `gpu-dev`: parse the command line, run the command, print an error as one line, exit with
//! 0 (success), 1 (API error), 2 (usage error) or 3 (authentication error).

use std::process::ExitCode;

use clap::Parser as _;
use gpudev_cli::{Cli, run};

fn main() -> ExitCode {
    gpudev_runtime::install_crypto_provider();
    // A bug must not greet the user with a stack trace: one line, and the usual exit code 101.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error in gpu-dev: {info}");
    }));
    // clap prints usage errors itself and exits with status 2 (0 for --help and --version).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !matches!(e, gpudev_cli::error::CliError::Interrupted) {
                eprintln!("error: {}", e.message());
            }
            e.exit_code()
        }
    }
}
