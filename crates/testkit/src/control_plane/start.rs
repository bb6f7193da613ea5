//! Starting the run's control plane once and finding it from every other test process.
//!
//! Its files live beside the shared PostgreSQL's, in `<run dir>/kube/`:
//!
//! ```text
//! kube.lock          exclusive while a process creates or checks the control plane
//! kube/info.json     where it listens, written once everything is ready
//! kube/pids          every component's pid (the watchdog stops them)
//! kube/*.log         each component's output
//! kube/etcd/         etcd's data
//! kube/pki/          the API server's generated serving certificate
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use base64::Engine as _;
use kube::api::{Api, PostParams};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::bin::{self, tools_dir};
use super::process::Component;
use super::{ControlPlane, wait_for};
use crate::error::{Context, Error, Result};
use crate::port::free_port;
use crate::postgres::shared;
use crate::watchdog::{self, sh_quote};

/// What the API server records: every request a ServiceAccount makes (who, verb, resource,
/// answer), so tests can see which rights the chart's accounts use and whether any was refused.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: [\"system:serviceaccounts\"]
  - level: None
";

/// The cluster IP range of Services.
const SERVICE_CIDR: &str = "10.96.0.0/16";
/// The range kwok takes Pod IPs from.
const POD_CIDR: &str = "10.244.0.0/16";
/// How long each component may take to become ready (the API server's first start on a busy
/// 2-core machine takes ~15 s).
const READY_WITHIN: Duration = Duration::from_secs(120);

pub(super) async fn open_or_create() -> Result<ControlPlane> {
    shared::ensure_base_dir()?;
    let run = shared::run_dir();
    std::fs::create_dir_all(&run).context(format!("creating {}", run.display()))?;
    let _lock = shared::lock(&run.join("kube.lock")).await?;
    let dir = run.join("kube");
    if let Some(plane) = read_info(&dir) {
        if answers(&plane).await {
            return Ok(plane);
        }
        eprintln!(
            "gpudev-testkit: the control plane in {} does not answer; restarting it",
            dir.display()
        );
    }
    create(&dir, std::os::unix::process::parent_id()).await
}

/// Starts every component in `dir`; a watchdog stops them and deletes `dir` once process
/// `watch` is gone. A failed start stops what it started.
async fn create(dir: &Path, watch: u32) -> Result<ControlPlane> {
    stop_listed(dir);
    if dir.exists() {
        std::fs::remove_dir_all(dir).context(format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("pki")).context(format!("creating {}", dir.display()))?;
    // It holds the admin token and the signing key: this user's alone.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .context(format!("restricting {}", dir.display()))?;
    match start_all(dir).await {
        Ok(plane) => {
            // The pids go into the watchdog's script itself: the run's other watchdog may
            // delete the directory, and the pid file with it, first.
            let pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
            watchdog::spawn(watch, &cleanup(dir, &pids))?;
            Ok(plane)
        }
        Err(e) => {
            stop_listed(dir);
            Err(e)
        }
    }
}

async fn start_all(dir: &Path) -> Result<ControlPlane> {
    let started = Instant::now();
    let bin = bin::bin_dir()?;

    let etcd_url = start_etcd(&bin, dir).await?;
    let mut plane = start_apiserver(&bin, dir, &etcd_url).await?;
    let admin = dir.join("admin.kubeconfig");
    std::fs::write(&admin, plane.kubeconfig_text("default", &plane.token))
        .context("writing the admin kubeconfig")?;
    install_crds(&plane).await?;

    let kubeconfig = admin.to_string_lossy().into_owned();
    let mut managers = Component::spawn(
        "controller-manager",
        &bin,
        "kube-controller-manager",
        &controller_manager_args(&kubeconfig, dir),
        dir,
    )?;
    let mut scheduler = Component::spawn(
        "scheduler",
        &bin,
        "kube-scheduler",
        &[
            format!("--kubeconfig={kubeconfig}"),
            "--leader-elect=false".into(),
            "--secure-port=0".into(),
        ],
        dir,
    )?;
    let stages = tools_dir().join("kwok-stages.yaml");
    let mut kwok = Component::spawn(
        "kwok",
        &bin,
        "kwok",
        &[
            format!("--kubeconfig={kubeconfig}"),
            format!("--config={}", stages.display()),
            "--manage-all-nodes=false".into(),
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
            "--node-lease-duration-seconds=40".into(),
            format!("--cidr={POD_CIDR}"),
            "--server-address=".into(),
        ],
        dir,
    )?;
    // The controller manager is working once it has given `default` its ServiceAccount.
    plane.create_namespace("default").await.map_err(|e| {
        Error::msg(format!(
            "{e} (controller manager log: {})",
            super::process::log_tail(&managers.log)
        ))
    })?;
    for component in [&mut managers, &mut scheduler, &mut kwok] {
        component.check_alive()?;
    }
    plane.dir = dir.to_path_buf();
    write_info(dir, &plane)?;
    if std::env::var_os("GPUDEV_TESTKIT_VERBOSE").is_some() {
        eprintln!(
            "gpudev-testkit: Kubernetes control plane at {} ready in {:?}",
            plane.url,
            started.elapsed()
        );
    }
    Ok(plane)
}

async fn start_etcd(bin: &Path, dir: &Path) -> Result<String> {
    let client = free_port()?;
    let peer = free_port()?;
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut etcd = Component::spawn(
        "etcd",
        bin,
        "etcd",
        &[
            "--name=gpudev".into(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=gpudev={peer_url}"),
            // Test data: durability across a machine crash is not wanted, speed is.
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ],
        dir,
    )?;
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        etcd.check_alive()?;
        if http_get_loopback(client, "/health")
            .await
            .is_ok_and(|body| body.contains("\"health\":\"true\""))
        {
            return Ok(client_url);
        }
        if Instant::now() >= deadline {
            return Err(Error::msg("etcd did not become healthy"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_apiserver(bin: &Path, dir: &Path, etcd_url: &str) -> Result<ControlPlane> {
    let port = free_port()?;
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(
        dir.join("tokens.csv"),
        format!("{token},gpudev-admin,gpudev-admin,\"system:masters\"\n"),
    )
    .context("writing the token file")?;
    std::fs::write(dir.join("sa.key"), rsa_key_pem()?).context("writing the signing key")?;
    std::fs::write(dir.join("audit-policy.yaml"), AUDIT_POLICY)
        .context("writing the audit policy")?;
    let key = dir.join("sa.key").to_string_lossy().into_owned();
    let args = vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", dir.join("pki").display()),
        format!("--token-auth-file={}", dir.join("tokens.csv").display()),
        "--authorization-mode=RBAC".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={key}"),
        format!("--service-account-signing-key-file={key}"),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--allow-privileged=true".into(),
        "--profiling=false".into(),
        "--enable-priority-and-fairness=false".into(),
        "--endpoint-reconciler-type=none".into(),
        format!(
            "--audit-policy-file={}",
            dir.join("audit-policy.yaml").display()
        ),
        format!("--audit-log-path={}", dir.join("audit.log").display()),
        "--audit-log-format=json".into(),
        "--audit-log-mode=blocking".into(),
    ];
    std::fs::write(
        dir.join("apiserver.args"),
        serde_json::to_string(&args).context("encoding the API server's arguments")?,
    )
    .context("writing apiserver.args")?;
    let mut apiserver = Component::spawn("apiserver", bin, "kube-apiserver", &args, dir)?;
    std::fs::write(dir.join("apiserver.pid"), apiserver.child.id().to_string())
        .context("writing apiserver.pid")?;
    let deadline = Instant::now() + READY_WITHIN;
    let cert = dir.join("pki").join("apiserver.crt");
    let ca_pem = loop {
        apiserver.check_alive()?;
        if let Some(ca) = std::fs::read_to_string(&cert)
            .ok()
            .and_then(|t| issuer_pem(&t))
        {
            break ca;
        }
        if Instant::now() >= deadline {
            return Err(Error::msg("kube-apiserver wrote no serving certificate"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The controller manager publishes it to every namespace (kube-root-ca.crt).
    std::fs::write(dir.join("pki").join("ca.crt"), &ca_pem).context("writing ca.crt")?;
    let plane = ControlPlane {
        url: format!("https://127.0.0.1:{port}"),
        token,
        ca_pem,
        etcd_url: etcd_url.to_owned(),
        dir: dir.to_path_buf(),
    };
    wait_ready(&plane, &mut apiserver, deadline).await?;
    Ok(plane)
}

/// Waits until the API server answers `/readyz` with `ok`.
async fn wait_ready(
    plane: &ControlPlane,
    apiserver: &mut Component,
    deadline: Instant,
) -> Result<()> {
    let client = plane
        .client_with_token("default", &plane.token)
        .await
        .context("building the admin client")?;
    loop {
        apiserver.check_alive()?;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .context("building the readiness request")?;
        if client
            .request_text(request)
            .await
            .is_ok_and(|body| body.trim() == "ok")
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::msg(format!(
                "kube-apiserver did not become ready; its log ends with:\n{}",
                super::process::log_tail(&apiserver.log)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn controller_manager_args(kubeconfig: &str, dir: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={kubeconfig}"),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        format!(
            "--service-account-private-key-file={}",
            dir.join("sa.key").display()
        ),
        format!(
            "--root-ca-file={}",
            dir.join("pki").join("ca.crt").display()
        ),
        "--use-service-account-credentials=false".into(),
        // Garbage collection and namespace deletion react in seconds at these settings.
        "--concurrent-gc-syncs=10".into(),
        "--concurrent-namespace-syncs=4".into(),
    ]
}

/// Creates the CustomResourceDefinitions in `tools/kube/crds/` and waits until they serve.
async fn install_crds(plane: &ControlPlane) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(plane.client().await);
    let dir = tools_dir().join("crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).context(format!("reading {}", dir.display()))? {
        let path = entry.context("listing the CRDs")?.path();
        let text = std::fs::read_to_string(&path).context(format!("reading {}", path.display()))?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| Error::msg(format!("parsing {}: {e}", path.display())))?;
        for doc in docs.into_iter().filter(|d| d.is_object()) {
            let crd: CustomResourceDefinition =
                serde_json::from_value(doc).context(format!("reading {}", path.display()))?;
            names.push(crd.metadata.name.clone().unwrap_or_default());
            crds.create(&PostParams::default(), &crd)
                .await
                .context(format!("creating {:?}", crd.metadata.name))?;
        }
    }
    for name in names {
        wait_for(Duration::from_secs(30), &format!("CRD {name}"), || async {
            let crd = crds.get(&name).await.context("reading a CRD")?;
            Ok(crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"))
        })
        .await?;
    }
    Ok(())
}

/// A fresh RSA-2048 key in PKCS#8 PEM, for signing ServiceAccount tokens.
fn rsa_key_pem() -> Result<String> {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048)
        .map_err(|e| Error::msg(format!("generating an RSA key: {e}")))?;
    let der = pair
        .as_der()
        .map_err(|e| Error::msg(format!("encoding the RSA key: {e}")))?;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// The API server writes its serving certificate followed by the CA that signed it; the CA is
/// what clients trust. A lone certificate is its own issuer.
fn issuer_pem(text: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let blocks: Vec<&str> = text
        .split_inclusive(END)
        .map(str::trim)
        .filter(|b| b.ends_with(END))
        .collect();
    blocks.last().map(|b| format!("{b}\n"))
}

/// Whether a control plane recorded by another process still answers.
async fn answers(plane: &ControlPlane) -> bool {
    let Ok(client) = plane.client_with_token("default", &plane.token).await else {
        return false;
    };
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    client
        .request_text(request)
        .await
        .is_ok_and(|b| b.trim() == "ok")
}

/// A plain HTTP/1.0 GET on loopback (etcd's health endpoint); the whole response.
async fn http_get_loopback(port: u16, path: &str) -> Result<String> {
    http_loopback(port, "GET", path, "").await
}

/// A plain HTTP/1.0 request to etcd's JSON gateway on loopback; the whole response.
async fn http_loopback(port: u16, method: &str, path: &str, body: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .context("connecting")?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("writing")?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut body))
        .await
        .map_err(|_| Error::msg("timed out"))?
        .context("reading")?;
    Ok(body)
}

fn read_info(dir: &Path) -> Option<ControlPlane> {
    let text = std::fs::read_to_string(dir.join("info.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_info(dir: &Path, plane: &ControlPlane) -> Result<()> {
    let tmp = dir.join("info.json.tmp");
    let text = serde_json::to_string(plane).context("encoding info.json")?;
    std::fs::write(&tmp, text).context(format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("info.json")).context("renaming info.json into place")
}

impl ControlPlane {
    /// Stops the API server and starts it again with the same settings (clients see it go away
    /// and come back, as in an upgrade or a crash); returns once it is ready. Only for a
    /// [`private_control_plane`]: the run's shared one serves other tests.
    ///
    /// # Panics
    /// When it cannot be stopped or does not come back.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn restart_apiserver(&self) {
        self.try_restart_apiserver()
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: restarting kube-apiserver: {e}"));
    }

    async fn try_restart_apiserver(&self) -> Result<()> {
        let dir = &self.dir;
        let pid = std::fs::read_to_string(dir.join("apiserver.pid")).context("apiserver.pid")?;
        let args: Vec<String> = serde_json::from_str(
            &std::fs::read_to_string(dir.join("apiserver.args")).context("apiserver.args")?,
        )
        .context("apiserver.args")?;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", pid.trim()])
            .status();
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::msg("no port in the API server's URL"))?;
        let deadline = Instant::now() + READY_WITHIN;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            if Instant::now() >= deadline {
                return Err(Error::msg("the old API server still listens"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let bin = bin::bin_dir()?;
        let mut apiserver = Component::spawn("apiserver", &bin, "kube-apiserver", &args, dir)?;
        std::fs::write(dir.join("apiserver.pid"), apiserver.child.id().to_string())
            .context("writing apiserver.pid")?;
        wait_ready(self, &mut apiserver, deadline).await
    }

    /// Compacts etcd's history up to its current revision, so that watches resuming from an
    /// older resource version are answered 410 Gone; returns the revision.
    ///
    /// # Panics
    /// When etcd does not answer.
    #[expect(clippy::panic, reason = "test helper")]
    pub async fn compact_etcd(&self) -> u64 {
        self.try_compact_etcd()
            .await
            .unwrap_or_else(|e| panic!("gpudev-testkit: compacting etcd: {e}"))
    }

    async fn try_compact_etcd(&self) -> Result<u64> {
        let port: u16 = self
            .etcd_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::msg("no port in etcd's URL"))?;
        // Any range request answers with the store's revision in its header.
        let answer = http_loopback(port, "POST", "/v3/kv/range", "{\"key\":\"AA==\"}").await?;
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let parsed: Value = serde_json::from_str(body).context("reading etcd's answer")?;
        let revision: u64 = parsed["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| Error::msg(format!("no revision in {body}")))?;
        let compact = format!("{{\"revision\":\"{revision}\",\"physical\":true}}");
        let answer = http_loopback(port, "POST", "/v3/kv/compaction", &compact).await?;
        if !answer.starts_with("HTTP/1.0 200") && !answer.starts_with("HTTP/1.1 200") {
            return Err(Error::msg(format!("compaction refused: {answer}")));
        }
        Ok(revision)
    }
}

/// A control plane of one test's own, stopped and deleted when dropped.
#[derive(Debug)]
pub struct PrivateControlPlane {
    plane: ControlPlane,
}

impl std::ops::Deref for PrivateControlPlane {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        &self.plane
    }
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        stop_listed(&self.plane.dir);
        let _ = std::fs::remove_dir_all(&self.plane.dir);
    }
}

/// A control plane for one test alone (about 5 s to start), for tests that restart or break
/// its parts.
///
/// # Panics
/// As [`super::control_plane`].
#[expect(clippy::panic, reason = "test helper")]
pub async fn private_control_plane() -> PrivateControlPlane {
    let started = async {
        shared::ensure_base_dir()?;
        let dir = shared::run_dir().join(format!(
            "kube-p-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        create(&dir, std::os::unix::process::parent_id()).await
    };
    let plane = started
        .await
        .unwrap_or_else(|e| panic!("gpudev-testkit: private Kubernetes control plane: {e}"));
    PrivateControlPlane { plane }
}

/// A control plane in `dir` that lives as long as the returned value or this process (for the
/// local run's `gpudev-kube-cluster`).
///
/// # Errors
/// When the binaries are not built or a component does not start; the message says which.
pub async fn standalone_control_plane(
    dir: &Path,
) -> std::result::Result<PrivateControlPlane, String> {
    create(dir, std::process::id())
        .await
        .map(|plane| PrivateControlPlane { plane })
        .map_err(|e| e.to_string())
}

/// Stops the control plane of a run whose processes are all gone (its watchdog died with it).
pub(crate) fn stop_dead_run(run: &Path) {
    stop_listed(&run.join("kube"));
}

/// Kills whatever an earlier attempt in `dir` left running.
fn stop_listed(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("pids")) else {
        return;
    };
    for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
}

/// The watchdog's shell snippet: stop every component (`pids`, and any listed in the directory
/// since), then delete the directory.
fn cleanup(dir: &Path, pids: &str) -> String {
    let dir_q = sh_quote(&dir.to_string_lossy());
    let known: Vec<&str> = pids
        .split_whitespace()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let known = known.join(" ");
    format!(
        "pids=\"{known} $(cat {dir_q}/pids 2>/dev/null)\"; kill $pids 2>/dev/null; sleep 2; kill -9 $pids 2>/dev/null; rm -rf {dir_q}"
    )
}

#[cfg(test)]
mod tests {
    use super::issuer_pem;

    #[test]
    fn the_ca_is_the_last_certificate_of_the_serving_chain() {
        let chain = "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            issuer_pem(chain).as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n")
        );
        assert_eq!(issuer_pem("no certificate"), None);
    }
}
