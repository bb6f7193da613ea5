//! Test-only helpers for gpudev: real components, started cheaply.
//!
//! - **PostgreSQL + PGMQ.** One throwaway cluster per test run, shared by every test process
//!   (cargo-nextest runs each test in its own process). Each test gets its own database copied
//!   from a template that already holds the migrations and the `gpu_reservations` queue:
//!   [`test_db`]. [`empty_db`] gives an empty one for migration tests, and [`private_cluster`]
//!   a cluster a test may stop, start and freeze (SIGSTOP). [`tcp_proxy`] puts a proxy that can
//!   turn into a black hole in front of a server, as a network partition would. [`tls_cluster`]
//!   is a private cluster that accepts only TLS with a client certificate, from a certificate
//!   authority the test kit makes. The cluster stops and its directory is deleted when
//!   the test run ends (a watchdog follows the runner process).
//! - **AWS STS.** [`sts`] starts a moto server in strict authentication mode and mints real
//!   temporary credentials for it.
//! - **OpenID Connect.** [`oidc_issuer`] starts a test issuer on loopback with real RSA and EC
//!   keys, discovery, JWKS, signed ID tokens, key rotation and the device authorization grant.
//! - **Kubernetes.** [`FakeCluster`] is an in-process fake API server with a pretend
//!   scheduler and kubelet; see [`kube`]. [`control_plane()`] is a real one (etcd,
//!   kube-apiserver, controller manager, scheduler and kwok nodes) shared by the run, built by
//!   `scripts/install-kube`. [`TestCluster`] gives a test either, as `GPUDEV_TEST_KUBE` says.
//!
//! Prerequisites (once per machine, as root): `scripts/install-pgmq` puts PGMQ into the
//! PostgreSQL 15 installation; `scripts/install-python-tools` installs moto into
//! `.tools/venv`. The helpers panic with a message naming the script when something is missing.
//!
//! Every helper panics on failure rather than returning an error: a test cannot do anything
//! useful without its environment, and the message says what broke.
//!
//! ```no_run
//! # async fn example() {
//! let db = gpudev_testkit::test_db().await;
//! let client = db.connect().await;
//! client.execute("SELECT pgmq.send('gpu_reservations', '{}')", &[]).await.unwrap();
//! # }
//! ```

pub mod control_plane;
mod error;
pub mod kube;
pub mod oidc;
mod port;
mod postgres;
mod proxy;
mod sts;
mod watchdog;

pub use self::kube::{FakeCluster, FakeConfig, NodeSpec};
pub use control_plane::test_cluster::{Backend, TestCluster, backend, skip_on_fake, skip_on_real};
pub use control_plane::{ControlPlane, control_plane};
pub use oidc::{OidcIssuer, oidc_issuer};
pub use postgres::cluster::Cluster;
pub use postgres::freeze::Frozen;
pub use postgres::private::{PrivateCluster, private_cluster};
pub use postgres::shared::cluster;
pub use postgres::test_db::TestDb;
pub use postgres::tls::{TlsCluster, TlsFiles, tls_cluster};
pub use postgres::{empty_db, test_db};
pub use proxy::{TcpProxy, tcp_proxy};
pub use sts::credentials::{AccessKey, Credentials, StsRejection};
pub use sts::moto::{ACCOUNT_ID, Moto, REGION, sts};
