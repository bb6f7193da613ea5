//! A private cluster that speaks only TLS: `ssl = on` with a server certificate for `localhost`
//! and 127.0.0.1 from a certificate authority the test kit makes, and a `pg_hba.conf` of
//! `hostssl` lines only, asking for a client certificate (`clientcert=verify-full`, so its
//! common name must be the role).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::{Context, Error, Result};
use crate::postgres::bin::PgBin;
use crate::postgres::private::{PrivateCluster, create_with};
use crate::postgres::server::SUPERUSER;

/// The certificate files a TLS test needs (PEM), in a directory the cluster owns.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The authority that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// Another authority, which signed nothing this server has.
    pub other_ca: PathBuf,
    /// The client certificate (common name `postgres`, the role tests connect as).
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
}

/// A private cluster that accepts only TLS connections with a client certificate.
#[derive(Debug)]
pub struct TlsCluster {
    /// The cluster (stop, start and freeze work as on any private cluster).
    pub cluster: PrivateCluster,
    /// The certificates.
    pub files: TlsFiles,
}

impl TlsCluster {
    /// `postgres://postgres@HOST:PORT/postgres` with `query` appended (the server's own
    /// database: the test databases of other clusters are made over plain connections).
    pub fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@{host}:{}/postgres?{query}",
            self.cluster.port()
        )
    }
}

/// Starts a TLS-only private cluster (see the module's description).
///
/// # Panics
///
/// When the certificates cannot be made or the cluster does not start.
#[expect(
    clippy::panic,
    reason = "test helper: without its server the test cannot run"
)]
pub async fn tls_cluster() -> TlsCluster {
    let mut files = None;
    let cluster = create_with(|bin, dir| {
        files = Some(configure(bin, dir)?);
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("gpudev-testkit: TLS cluster: {e}"));
    let Some(files) = files else {
        panic!("gpudev-testkit: TLS cluster: not configured");
    };
    TlsCluster { cluster, files }
}

fn configure(bin: &PgBin, dir: &Path) -> Result<TlsFiles> {
    let data = dir.join("data");
    let certs = dir.join("certs");
    std::fs::create_dir(&certs).context(format!("creating {}", certs.display()))?;
    let made = make_certificates().map_err(|e| Error::msg(format!("making certificates: {e}")))?;
    let write = |path: &Path, text: &str, server_owned: bool| -> Result<()> {
        std::fs::write(path, text).context(format!("writing {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .context(format!("restricting {}", path.display()))?;
        if server_owned {
            bin.give_to_server(path)?;
        }
        Ok(())
    };
    write(&data.join("server.crt"), &made.server_cert, true)?;
    write(&data.join("server.key"), &made.server_key, true)?;
    write(&data.join("root.crt"), &made.ca, true)?;
    let files = TlsFiles {
        ca: certs.join("ca.crt"),
        other_ca: certs.join("other-ca.crt"),
        client_cert: certs.join("client.crt"),
        client_key: certs.join("client.key"),
    };
    write(&files.ca, &made.ca, false)?;
    write(&files.other_ca, &made.other_ca, false)?;
    write(&files.client_cert, &made.client_cert, false)?;
    write(&files.client_key, &made.client_key, false)?;
    append(
        &data.join("postgresql.conf"),
        "\n# gpudev-testkit: TLS only\nssl = on\nssl_cert_file = 'server.crt'\n\
         ssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n",
    )?;
    let hba = data.join("pg_hba.conf");
    std::fs::write(
        &hba,
        "# gpudev-testkit: TLS with a client certificate, nothing else\n\
         local all all trust\n\
         hostssl all all 127.0.0.1/32 trust clientcert=verify-full\n",
    )
    .context(format!("writing {}", hba.display()))?;
    bin.give_to_server(&hba)?;
    Ok(files)
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .context(format!("appending to {}", path.display()))
}

struct Made {
    ca: String,
    other_ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn authority(name: &str) -> std::result::Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

fn make_certificates() -> std::result::Result<Made, rcgen::Error> {
    let ca = authority("gpudev test CA")?;
    let other = authority("gpudev other test CA")?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &ca)?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, SUPERUSER);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &ca)?;
    Ok(Made {
        ca: ca.pem(),
        other_ca: other.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}
