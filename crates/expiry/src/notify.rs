//! Delivering a warning into a dev box.
//!
//! The production [`ExecNotifier`] runs a short shell script in the Pod's `dev` container
//! through the Kubernetes exec API (a websocket upgrade, hence kube's `ws` feature): it writes
//! the notice to `~dev/GPUDEV_EXPIRES_IN_<N>MIN.txt` (removing older ones, so the file shown is
//! the latest) and sends it to every logged-in terminal with `wall`, or straight to
//! `/dev/pts/*` where the image has no `wall`. Text and file name are passed as arguments,
//! never spliced into the script, so nothing in them is interpreted by the shell.
//!
//! Exec rather than, say, an annotation the entrypoint watches: the issue asks for it, it
//! reaches people who are logged in at once, and it needs nothing from the image but `sh`.
//! The price is the `pods/exec` permission for the job's service account.
//!
//! The delivery is behind [`PodNotifier`] so the rest of the job is tested against the fake
//! API server, which cannot serve exec's websocket.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gpudev_cluster::pod::{CONTAINER_NAME, DEV_UID, HOME_PATH};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

/// What a user is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The reservation that ends.
    pub reservation_id: Uuid,
    /// The warning level (`30m`, `15m`, `5m`).
    pub level: String,
    /// Whole minutes left, rounded up.
    pub minutes_left: i64,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
    /// Whether it ends for being idle (ADR 18) rather than at its end.
    pub idle: bool,
}

impl Notice {
    /// The message shown to the user.
    pub fn text(&self) -> String {
        let short = &self.reservation_id.simple().to_string()[..8];
        let unit = if self.minutes_left == 1 {
            "minute"
        } else {
            "minutes"
        };
        if self.idle {
            return format!(
                "gpudev: reservation {short} has been idle (no SSH or Jupyter session, GPUs \
                 unused) and will be released in {} {unit} (at {} UTC). Use it, or keep it: \
                 gpu-dev keep-alive {short}",
                self.minutes_left,
                self.expires_at.format("%Y-%m-%d %H:%M")
            );
        }
        format!(
            "gpudev: reservation {short} expires in {} {unit} (at {} UTC). \
             Save your work, or extend it: gpu-dev extend {short} --hours 1",
            self.minutes_left,
            self.expires_at.format("%Y-%m-%d %H:%M")
        )
    }

    /// The notice file's name in the home directory.
    pub fn file_name(&self) -> String {
        let what = if self.idle { "IDLE_RELEASE" } else { "EXPIRES" };
        format!("GPUDEV_{what}_IN_{}MIN.txt", self.minutes_left.max(0))
    }
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The exec request failed.
    #[error("exec in pod {pod}: {source}")]
    Exec {
        /// The Pod.
        pod: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The script ran and failed.
    #[error("notice script in pod {pod} failed: {message}")]
    Script {
        /// The Pod.
        pod: String,
        /// What it reported.
        message: String,
    },
    /// No answer in time.
    #[error("notice delivery to pod {pod} timed out after {timeout:?}")]
    Timeout {
        /// The Pod.
        pod: String,
        /// The limit.
        timeout: Duration,
    },
}

/// Delivers a notice into one Pod, and lists its home directory before it ends.
pub trait PodNotifier: Send + Sync {
    /// Writes `notice` into Pod `pod` of `namespace` and shows it to logged-in users.
    fn deliver(
        &self,
        namespace: &str,
        pod: &str,
        notice: &Notice,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;

    /// Lists the files of the home directory of Pod `pod` of `namespace`: one path per line,
    /// relative to the home, sorted, three levels deep, at most [`LISTING_MAX_ENTRIES`] lines
    /// and [`LISTING_MAX_BYTES`] bytes.
    fn list_home(
        &self,
        namespace: &str,
        pod: &str,
    ) -> impl Future<Output = Result<String, NotifyError>> + Send;
}

/// Most entries a home listing keeps.
pub const LISTING_MAX_ENTRIES: usize = 5_000;
/// Most bytes a home listing keeps.
pub const LISTING_MAX_BYTES: usize = 256 * 1024;

/// The listing script: paths under the home, three levels deep, on the disk only, sorted.
const LISTING: &str = r#"cd "$GPUDEV_HOME" 2>/dev/null || exit 0
find . -xdev -mindepth 1 -maxdepth 3 2>/dev/null | sed 's|^\./||' | LC_ALL=C sort | head -n "$GPUDEV_MAX"
"#;

/// Cuts `text` to the listing limits, at a line boundary.
pub fn bounded_listing(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().take(LISTING_MAX_ENTRIES) {
        if out.len() + line.len() + 1 > LISTING_MAX_BYTES {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The script run in the Pod: `$1` the file name, `$2` the text.
const SCRIPT: &str = r#"set -u
home="$GPUDEV_HOME"
rm -f "$home"/GPUDEV_EXPIRES_IN_*MIN.txt "$home"/GPUDEV_IDLE_RELEASE_IN_*MIN.txt 2>/dev/null
printf '%s\n' "$2" > "$home/.$1.tmp" && mv -f "$home/.$1.tmp" "$home/$1" || exit 1
chown "$GPUDEV_UID:$GPUDEV_UID" "$home/$1" 2>/dev/null
if command -v wall >/dev/null 2>&1; then
  printf '%s\n' "$2" | wall 2>/dev/null
else
  for t in /dev/pts/[0-9]*; do
    [ -c "$t" ] && printf '\r\n%s\r\n' "$2" > "$t" 2>/dev/null
  done
fi
exit 0
"#;

/// The production notifier: the Kubernetes exec API.
#[derive(Clone)]
pub struct ExecNotifier {
    client: kube::Client,
    timeout: Duration,
}

impl ExecNotifier {
    /// A notifier using `client`, giving each delivery at most `timeout`.
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// Starts `command` in the dev container of `pod`, with the streams `params` asks for.
    async fn start(
        &self,
        namespace: &str,
        pod: &str,
        command: Vec<String>,
        params: &AttachParams,
    ) -> Result<AttachedProcess, NotifyError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.exec(pod, command, params)
            .await
            .map_err(|source| NotifyError::Exec {
                pod: pod.to_owned(),
                source,
            })
    }

    /// `work` on `pod`, given at most the notifier's timeout.
    async fn bounded<T>(
        &self,
        pod: &str,
        work: impl Future<Output = Result<T, NotifyError>>,
    ) -> Result<T, NotifyError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(NotifyError::Timeout {
                    pod: pod.to_owned(),
                    timeout: self.timeout,
                })
            })
    }

    async fn exec(&self, namespace: &str, pod: &str, notice: &Notice) -> Result<(), NotifyError> {
        let script = format!("GPUDEV_HOME={HOME_PATH}; GPUDEV_UID={DEV_UID}\n{SCRIPT}");
        let command = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            script,
            "gpudev-notice".to_owned(),
            notice.file_name(),
            notice.text(),
        ];
        let params = AttachParams::default()
            .container(CONTAINER_NAME)
            .stdin(false)
            .stdout(false)
            .stderr(true);
        let mut process = self.start(namespace, pod, command, &params).await?;
        let mut stderr = String::new();
        if let Some(mut err) = process.stderr() {
            let mut bytes = Vec::new();
            let _ = err.read_to_end(&mut bytes).await;
            stderr = String::from_utf8_lossy(&bytes).chars().take(500).collect();
        }
        let status = match process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        let _ = process.join().await;
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
            Some(s) => Err(NotifyError::Script {
                pod: pod.to_owned(),
                message: if stderr.is_empty() {
                    s.message
                        .unwrap_or_else(|| "exited with an error".to_owned())
                } else {
                    stderr
                },
            }),
            None => Err(NotifyError::Script {
                pod: pod.to_owned(),
                message: "no exit status".to_owned(),
            }),
        }
    }

    async fn listing(&self, namespace: &str, pod: &str) -> Result<String, NotifyError> {
        let script =
            format!("GPUDEV_HOME={HOME_PATH}; GPUDEV_MAX={LISTING_MAX_ENTRIES}\n{LISTING}");
        let command = vec!["sh".to_owned(), "-c".to_owned(), script];
        let params = AttachParams::default()
            .container(CONTAINER_NAME)
            .stdin(false)
            .stdout(true)
            .stderr(false);
        let mut process = self.start(namespace, pod, command, &params).await?;
        let mut bytes = Vec::new();
        if let Some(out) = process.stdout() {
            // Read a little past the limit; the rest is cut at a line boundary.
            let _ = out
                .take(u64::try_from(LISTING_MAX_BYTES + 4096).unwrap_or(u64::MAX))
                .read_to_end(&mut bytes)
                .await;
        }
        let _ = process.join().await;
        Ok(bounded_listing(&String::from_utf8_lossy(&bytes)))
    }
}

impl PodNotifier for ExecNotifier {
    async fn deliver(
        &self,
        namespace: &str,
        pod: &str,
        notice: &Notice,
    ) -> Result<(), NotifyError> {
        self.bounded(pod, self.exec(namespace, pod, notice)).await
    }

    async fn list_home(&self, namespace: &str, pod: &str) -> Result<String, NotifyError> {
        self.bounded(pod, self.listing(namespace, pod)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_cut_at_its_limits_on_a_line_boundary() {
        let many: String = (0..LISTING_MAX_ENTRIES + 10)
            .map(|i| format!("f{i}\n"))
            .collect();
        assert_eq!(bounded_listing(&many).lines().count(), LISTING_MAX_ENTRIES);
        let long = format!("{}\n", "x".repeat(100_000)).repeat(4);
        let cut = bounded_listing(&long);
        assert_eq!(cut.lines().count(), 2, "two whole lines fit in 256 KiB");
        assert!(cut.ends_with('\n'));
        assert_eq!(bounded_listing("a\nb"), "a\nb\n");
    }

    fn notice(minutes_left: i64) -> Notice {
        Notice {
            reservation_id: Uuid::parse_str("3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b").unwrap(),
            level: "15m".into(),
            minutes_left,
            expires_at: DateTime::parse_from_rfc3339("2026-11-24T12:30:00Z")
                .unwrap()
                .with_timezone(&Utc),
            idle: false,
        }
    }

    #[test]
    fn the_notice_says_when_and_how_to_extend() {
        let text = notice(12).text();
        assert!(text.contains("3f2a9c1e expires in 12 minutes"), "{text}");
        assert!(text.contains("2026-11-24 12:30 UTC"), "{text}");
        assert!(text.contains("gpu-dev extend 3f2a9c1e --hours 1"), "{text}");
        assert!(notice(1).text().contains("in 1 minute "));
        assert_eq!(notice(12).file_name(), "GPUDEV_EXPIRES_IN_12MIN.txt");
    }

    #[test]
    fn an_idle_notice_says_how_to_keep_the_box() {
        let idle = Notice {
            idle: true,
            ..notice(15)
        };
        let text = idle.text();
        assert!(text.contains("3f2a9c1e has been idle"), "{text}");
        assert!(text.contains("released in 15 minutes"), "{text}");
        assert!(text.contains("gpu-dev keep-alive 3f2a9c1e"), "{text}");
        assert_eq!(idle.file_name(), "GPUDEV_IDLE_RELEASE_IN_15MIN.txt");
    }

    #[test]
    fn the_script_takes_text_as_arguments_and_writes_into_the_home() {
        let temp = std::env::temp_dir().join(format!("gpudev-notice-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&temp).unwrap();
        std::fs::write(temp.join("GPUDEV_EXPIRES_IN_30MIN.txt"), "old").unwrap();
        let hostile = "it's $(touch pwned) `date` \"quoted\"";
        let script = format!(
            "GPUDEV_HOME={}; GPUDEV_UID={}\n{SCRIPT}",
            temp.display(),
            DEV_UID
        );
        let status = std::process::Command::new("sh")
            .current_dir(&temp)
            .args([
                "-c",
                &script,
                "gpudev-notice",
                "GPUDEV_EXPIRES_IN_5MIN.txt",
                hostile,
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let written = std::fs::read_to_string(temp.join("GPUDEV_EXPIRES_IN_5MIN.txt")).unwrap();
        assert_eq!(written, format!("{hostile}\n"));
        assert!(
            !temp.join("GPUDEV_EXPIRES_IN_30MIN.txt").exists(),
            "older notice removed"
        );
        assert!(!temp.join("pwned").exists(), "nothing in the text ran");
        std::fs::remove_dir_all(&temp).unwrap();
    }
}
