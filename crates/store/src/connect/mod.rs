//! Opening a connection to PostgreSQL: every program's connections (the pool's, the processor's
//! leader session, the API's change listener, migrations) are opened here, so each gets the same
//! bounds.
//!
//! - The socket is opened here rather than by tokio-postgres, with TCP keepalives
//!   ([`KEEPALIVE_IDLE`], [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_RETRIES`]) and, on Linux,
//!   `TCP_USER_TIMEOUT` set to the answer bound, so a peer that vanished is noticed even on an
//!   idle pooled connection.
//! - The server is told its own bounds at start-up (`statement_timeout`,
//!   `idle_in_transaction_session_timeout`, see [`DbConfig`]).
//! - The stream is [`Watched`]: when the server owes an answer and stays silent for the
//!   statement timeout plus [`ANSWER_GRACE`], the connection fails instead of waiting, since a
//!   hung server cannot enforce its own statement timeout.
//!
//! - TLS is negotiated here too (PostgreSQL's `SSLRequest`, then a rustls handshake, as
//!   [`crate::tls`] says for each `sslmode`), so the watch sits above TLS and reads the
//!   protocol's own messages.
//!
//! tokio-postgres then runs the protocol over that stream (`Config::connect_raw`). It is not
//! offered SCRAM channel binding (the stream it gets is not its own TLS stream); the server's
//! identity rests on its certificate (`verify-full`).

mod watch;

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, NoTls};

pub use watch::Watched;

use crate::DbConfig;

/// Idle time before the first TCP keepalive probe.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Time between TCP keepalive probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes after which the kernel drops the connection (so a dead idle peer is
/// noticed within 30 + 3 × 10 = 60 s).
pub const KEEPALIVE_RETRIES: u32 = 3;
/// How much longer than the statement timeout a program waits for an answer before it gives
/// up on the connection: time for the server's own cancellation to arrive.
pub const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// The byte stream under a connection.
pub type PgStream = Watched<Transport>;

/// A connection's driver: poll it (or [`spawn`] it) for the client to work.
pub type Connection = tokio_postgres::Connection<PgStream, NoTlsStream>;

/// Opens one connection as `cfg` says. Errors are tokio-postgres errors, as from its own
/// `connect`, so callers and the pool treat them alike.
pub async fn connect(cfg: &DbConfig) -> Result<(Client, Connection), tokio_postgres::Error> {
    let transport = match open(cfg).await {
        Ok(t) => t,
        Err(e) => return Err(as_pg_error(e).await),
    };
    let stream = Watched::new(transport, cfg.answer_timeout());
    // The socket is ours; tokio-postgres only runs the protocol over it.
    let mut pg = cfg.session_config();
    pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    pg.connect_raw(stream, NoTls).await
}

/// Runs a connection's driver on its own task, logging how it ended if it failed.
pub fn spawn(connection: Connection) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %crate::pool::describe(&e), "database connection ended");
        }
    })
}

/// Opens the pool's connections through [`connect`].
pub(crate) struct PoolConnect(pub(crate) DbConfig);

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        _: &tokio_postgres::Config,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
                + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            let (client, connection) = connect(&self.0).await?;
            Ok((client, spawn(connection)))
        })
    }
}

/// Tries each host in turn, as libpq does; the last failure is the one reported.
async fn open(cfg: &DbConfig) -> io::Result<Transport> {
    let pg = cfg.pg();
    let ports = pg.get_ports();
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no host to connect to");
    for (i, host) in pg.get_hosts().iter().enumerate() {
        let port = match ports {
            [one] => *one,
            many => many.get(i).copied().unwrap_or(5432),
        };
        let attempt = match host {
            Host::Tcp(name) => {
                let addr = pg.get_hostaddrs().get(i).copied();
                let opened = async {
                    let tcp = tcp(name, addr, port, cfg).await?;
                    negotiate_tls(tcp, name, port, cfg).await
                };
                tokio::time::timeout(cfg.connect_timeout, opened)
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "no connection to {name}:{port} within {} s",
                                cfg.connect_timeout.as_secs()
                            ),
                        ))
                    })
            }
            Host::Unix(dir) => UnixStream::connect(dir.join(format!(".s.PGSQL.{port}")))
                .await
                .map(Transport::Unix),
        };
        match attempt {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// PostgreSQL's `SSLRequest`: length 8, then the code 1234.5679.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Asks the server for TLS unless `sslmode=disable`, and shakes hands as the mode says.
async fn negotiate_tls(
    mut tcp: TcpStream,
    host: &str,
    port: u16,
    cfg: &DbConfig,
) -> io::Result<Transport> {
    let mode = cfg.tls().mode;
    let Some(tls) = cfg.tls_config() else {
        return Ok(Transport::Tcp(tcp));
    };
    tcp.write_all(&SSL_REQUEST).await?;
    let mut answer = [0_u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {}
        b'N' if !mode.requires_tls() => return Ok(Transport::Tcp(tcp)),
        b'N' => {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("{host}:{port} does not accept TLS, which sslmode={mode} requires"),
            ));
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{host}:{port} answered the TLS request with {other:#04x}: not PostgreSQL?"
                ),
            ));
        }
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} as a TLS name: {e}"),
        )
    })?;
    match tokio_rustls::TlsConnector::from(std::sync::Arc::clone(tls))
        .connect(name, tcp)
        .await
    {
        Ok(stream) => Ok(Transport::Tls(Box::new(stream))),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "TLS with {host}:{port} failed under sslmode={mode}: {}",
                tls_cause(&e, host)
            ),
        )),
    }
}

/// The rustls error inside a handshake failure, said plainly where it is a certificate.
fn tls_cause(e: &io::Error, host: &str) -> String {
    let Some(rustls::Error::InvalidCertificate(cert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    match cert {
        rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => {
            "the server's certificate is not signed by the sslrootcert authority".to_owned()
        }
        rustls::CertificateError::NotValidForName
        | rustls::CertificateError::NotValidForNameContext { .. } => {
            format!("the server's certificate does not name this host, {host}")
        }
        other => format!("the server's certificate was refused: {other:?}"),
    }
}

async fn tcp(name: &str, addr: Option<IpAddr>, port: u16, cfg: &DbConfig) -> io::Result<TcpStream> {
    let stream = match addr {
        Some(ip) => TcpStream::connect((ip, port)).await?,
        None => TcpStream::connect((name, port)).await?,
    };
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(&stream);
    if cfg.pg().get_keepalives() {
        sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL)
                .with_retries(KEEPALIVE_RETRIES),
        )?;
    }
    #[cfg(target_os = "linux")]
    if let Some(bound) = cfg.answer_timeout() {
        // Data the peer has not acknowledged for this long ends the connection.
        sock.set_tcp_user_timeout(Some(bound))?;
    }
    Ok(stream)
}

/// Turns a failure to open the socket into a tokio-postgres error (whose constructors are
/// private) by letting tokio-postgres meet it: its start-up fails on a stream that fails.
async fn as_pg_error(e: io::Error) -> tokio_postgres::Error {
    let mut pg = tokio_postgres::Config::new();
    pg.user("gpudev")
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    match pg.connect_raw(Failed(Some(e)), NoTls).await {
        Err(e) => e,
        Ok(_) => unreachable!("a stream that fails every call cannot complete a start-up"),
    }
}

/// A stream whose first write fails with the error it holds.
struct Failed(Option<io::Error>);

impl Failed {
    fn error(&mut self) -> io::Error {
        self.0
            .take()
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }
}

impl AsyncRead for Failed {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.get_mut().error()))
    }
}

impl AsyncWrite for Failed {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(self.get_mut().error()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.get_mut().error()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The socket under a connection.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A Unix socket (never encrypted, as with libpq).
    Unix(UnixStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Transport::Tcp($s) => $e,
            Transport::Unix($s) => $e,
            Transport::Tls($s) => $e,
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
