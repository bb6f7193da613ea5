//! The transports: an in-process tower service for `kube::Client::new`, and a loopback HTTP
//! server with a kubeconfig for binaries.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::routes::{self, ResponseBody};
use super::state::Shared;

/// A `kube::Client` whose requests go straight to the fake's handlers.
pub(crate) fn client(shared: Arc<Shared>, namespace: &str) -> ::kube::Client {
    let service = tower::service_fn(move |request: Request<::kube::client::Body>| -> BoxFuture<'static, Result<Response<ResponseBody>, Infallible>> {
        let shared = Arc::clone(&shared);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            Ok(routes::handle(shared, Request::from_parts(parts, bytes)).await)
        })
    });
    ::kube::Client::new(service, namespace)
}

/// The fake cluster served over HTTP on loopback, with a kubeconfig pointing at it.
///
/// The server stops when this is dropped. Binaries started with `KUBECONFIG` set to
/// [`kubeconfig_path`](Self::kubeconfig_path) talk to the fake through their ordinary
/// `kube::Client::try_default()`.
#[derive(Debug)]
pub struct Served {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    accept: JoinHandle<()>,
}

impl Served {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file (in a temporary directory that lives as long as this) naming the server.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Writes the kubeconfig somewhere else too (e.g. a stable path for a local run).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::copy(&self.kubeconfig, path).map(|_| ())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Binds `addr` (port 0 picks a free one), serves, and writes the kubeconfig.
pub(crate) async fn serve(shared: Arc<Shared>, addr: SocketAddr) -> std::io::Result<Served> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let dir = tempfile::Builder::new()
        .prefix("gpudev-fake-kube-")
        .tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        kubeconfig_text(&format!("http://{addr}"), &shared.config.default_namespace),
    )?;
    let accept = tokio::spawn(async move {
        // Connections live in this set, so stopping the accept loop closes them too.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = Arc::clone(&shared);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move {
                    let (parts, body) = request.into_parts();
                    let bytes: Bytes = body
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    Ok::<_, Infallible>(
                        routes::handle(shared, Request::from_parts(parts, bytes)).await,
                    )
                }
            });
            connections.spawn(async move {
                // A connection that breaks mid-request is the client's business.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Served {
        addr,
        kubeconfig,
        _dir: dir,
        accept,
    })
}

/// A kubeconfig (JSON, which is YAML too) with one cluster, user and context, `fake`.
pub(crate) fn kubeconfig_text(server: &str, namespace: &str) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "fake", "cluster": { "server": server } }],
        "users": [{ "name": "fake", "user": { "token": "fake" } }],
        "contexts": [{ "name": "fake", "context": { "cluster": "fake", "user": "fake", "namespace": namespace } }],
        "current-context": "fake",
        "preferences": {},
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}
