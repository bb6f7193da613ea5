//! One PostgreSQL server in a directory of its own: create, configure, start, stop.
//!
//! Layout of a server directory: `data/` (the cluster), `s/` (its Unix socket), `log`.

use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
use crate::port::free_port;
use crate::postgres::bin::{PgBin, run};
use crate::watchdog::sh_quote;

/// The superuser `initdb` creates; tests connect as this role.
pub(crate) const SUPERUSER: &str = "postgres";

/// How many fresh ports to try when another process grabs ours before the server binds it.
const START_ATTEMPTS: usize = 5;

/// How `pg_ctl stop` ends the server.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StopMode {
    /// Disconnects clients and shuts down cleanly.
    Fast,
    /// Kills the server as a crash would; the next start runs crash recovery.
    Immediate,
}

impl StopMode {
    fn as_arg(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// A server directory with a configured port.
#[derive(Debug)]
pub(crate) struct Server {
    bin: PgBin,
    dir: PathBuf,
    port: u16,
}

impl Server {
    /// Creates `dir` (which must not exist yet) for the server's OS user, with an empty `s/`.
    pub(crate) fn prepare_dir(bin: &PgBin, dir: &Path) -> Result<()> {
        std::fs::create_dir(dir).context(format!("creating {}", dir.display()))?;
        bin.give_to_server(dir)?;
        let socket_dir = dir.join("s");
        std::fs::create_dir(&socket_dir).context(format!("creating {}", socket_dir.display()))?;
        bin.give_to_server(&socket_dir)
    }

    /// Runs `initdb` into `dir/data`: trust authentication, UTF-8, no fsync.
    pub(crate) async fn initdb(bin: &PgBin, dir: &Path) -> Result<()> {
        let mut cmd = bin.command("initdb");
        cmd.arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .arg("--no-instructions");
        run(cmd, "initdb").await.map(drop)
    }

    /// Copies the data directory of a stopped cluster to `to` (which must not exist), keeping
    /// ownership and permissions: starting a copy is much faster than `initdb` and migrating.
    pub(crate) async fn copy_data(from: &Path, to: &Path) -> Result<()> {
        let mut cmd = tokio::process::Command::new("cp");
        cmd.arg("-a").arg(from).arg(to);
        run(cmd, "copying a cluster's data directory (cp -a)")
            .await
            .map(drop)
    }

    /// Configures the cluster in `dir` for tests on a free port and starts it.
    pub(crate) async fn start_new(bin: &PgBin, dir: &Path) -> Result<Self> {
        let mut last_error = Error::msg("no start attempted");
        for _ in 0..START_ATTEMPTS {
            let server = Self {
                bin: bin.clone(),
                dir: dir.to_path_buf(),
                port: free_port()?,
            };
            server.configure()?;
            match server.start().await {
                Ok(()) => return Ok(server),
                // Most likely another process took the port; try another one.
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// The port the server listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts the configured server and waits until it accepts connections.
    pub(crate) async fn start(&self) -> Result<()> {
        let mut cmd = self.bin.command("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-s"]);
        match run(cmd, "pg_ctl start").await {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::msg(format!(
                "{e}\n--- server log ({}) ---\n{}",
                self.dir.join("log").display(),
                log_tail(&self.dir.join("log"))
            ))),
        }
    }

    /// Stops the server and waits until it is gone.
    pub(crate) async fn stop(&self, mode: StopMode) -> Result<()> {
        let mut cmd = self.bin.command("pg_ctl");
        cmd.arg("stop").arg("-D").arg(self.data_dir()).args([
            "-m",
            mode.as_arg(),
            "-w",
            "-t",
            "60",
            "-s",
        ]);
        run(cmd, "pg_ctl stop").await.map(drop)
    }

    /// Best-effort immediate stop of whatever server runs in `dir`, without awaiting (for `Drop`).
    pub(crate) fn kill_blocking(bin: &PgBin, dir: &Path) {
        // Errors are expected (nothing running, directory gone) and there is nobody to tell.
        let _ = bin
            .std_command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "immediate", "-w", "-s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// A shell snippet that stops whatever server runs in `dir`, for watchdogs. It first resumes
    /// the server's processes, which a test may have left stopped (SIGSTOP) if it died.
    pub(crate) fn kill_script(bin: &PgBin, dir: &Path) -> String {
        let data = sh_quote(&dir.join("data").to_string_lossy());
        format!(
            "pm=$(head -n 1 {data}/postmaster.pid 2>/dev/null) && [ -n \"$pm\" ] && \
             {{ pkill -CONT -P \"$pm\"; kill -CONT \"$pm\"; }} >/dev/null 2>&1; \
             {} stop -D {data} -m immediate -w -s >/dev/null 2>&1",
            bin.shell_prefix("pg_ctl"),
        )
    }

    /// Appends the test settings to `postgresql.conf`; later lines win, so re-running this on a
    /// copied cluster moves it to this directory's port and socket.
    fn configure(&self) -> Result<()> {
        use std::io::Write as _;
        let conf = self.data_dir().join("postgresql.conf");
        let socket_dir = self.dir.join("s");
        let settings = format!(
            "\n# gpudev-testkit: a throwaway cluster, tuned for speed over durability\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{socket}'\n\
             max_connections = 300\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n",
            port = self.port,
            socket = socket_dir.to_string_lossy().replace('\'', "''"),
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .context(format!("appending settings to {}", conf.display()))
    }
}

/// The last lines of a server log, for error messages.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        }
        Err(e) => format!("(unreadable: {e})"),
    }
}
