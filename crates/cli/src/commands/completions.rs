//! `gpu-dev completions`

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::Cli;
use crate::error::CliResult;
use crate::output;

/// Print a shell completion script.
///
/// Example (bash): gpu-dev completions bash > ~/.local/share/bash-completion/completions/gpu-dev
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

/// Runs `completions`.
pub fn run(args: Args) -> CliResult {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics when it cannot write (`| head` closes the pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "gpu-dev", &mut script);
    output::print(String::from_utf8_lossy(&script).trim_end());
    Ok(())
}
