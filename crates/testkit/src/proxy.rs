//! A TCP proxy on loopback that can turn into a black hole: it keeps accepting connections and
//! keeps every connection open, but forwards nothing in either direction. To the client this is
//! a peer that vanished behind a network partition, without the reset a stopped server's kernel
//! would send.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy to one address. Dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    forwarding: Arc<watch::Sender<bool>>,
    accept: JoinHandle<()>,
}

/// Starts a proxy on `127.0.0.1` (a free port) that forwards to `target`.
///
/// # Panics
///
/// When no loopback port can be bound.
#[expect(
    clippy::panic,
    reason = "test helper: without its proxy the test cannot run"
)]
pub async fn tcp_proxy(target: SocketAddr) -> TcpProxy {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap_or_else(|e| panic!("gpudev-testkit: binding the proxy: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("gpudev-testkit: the proxy's address: {e}"));
    let forwarding = Arc::new(watch::Sender::new(true));
    let accept = tokio::spawn(accept_loop(listener, target, Arc::clone(&forwarding)));
    TcpProxy {
        addr,
        forwarding,
        accept,
    }
}

impl TcpProxy {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops forwarding: bytes already in flight are held, new ones are not read, and new
    /// connections are accepted but never connected through.
    pub fn black_hole(&self) {
        self.forwarding.send_replace(false);
    }

    /// Forwards again, held bytes first.
    pub fn resume(&self) {
        self.forwarding.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Each connection's task ends when it sees the sender gone.
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    forwarding: Arc<watch::Sender<bool>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let open = forwarding.subscribe();
        tokio::spawn(async move {
            let mut open_now = open.clone();
            // A black hole connects through only once it opens again.
            if open_now.wait_for(|on| *on).await.is_err() {
                return;
            }
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::select! {
                () = pump(cr, sw, open.clone()) => {}
                () = pump(sr, cw, open) => {}
            }
        });
    }
}

/// Copies `from` to `to` while the proxy forwards; stops when either side closes or the proxy is
/// dropped.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut open: watch::Receiver<bool>,
) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        if open.wait_for(|on| *on).await.is_err() {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // Stop reading the moment the proxy turns into a black hole.
            changed = open.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        if open.wait_for(|on| *on).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
