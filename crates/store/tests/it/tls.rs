//! TLS to a PostgreSQL that accepts only TLS with a client certificate (`hostssl` lines with
//! `clientcert=verify-full`), from a certificate authority the test kit makes: `verify-full`
//! connects; a server whose certificate does not match is refused in one clear line (another
//! authority under either mode; another host name under `verify-full`, while `verify-ca`
//! accepts it); `disable` is refused by the server.

use gpudev_store::{DbConfig, Pool, StoreError};
use gpudev_testkit::TlsCluster;

fn with_certs(tls: &TlsCluster, host: &str, mode: &str, root: &std::path::Path) -> String {
    let f = &tls.files;
    tls.url(
        host,
        &format!(
            "sslmode={mode}&sslrootcert={}&sslcert={}&sslkey={}",
            root.display(),
            f.client_cert.display(),
            f.client_key.display()
        ),
    )
}

async fn pool(url: &str) -> Result<Pool, StoreError> {
    gpudev_store::connect_pool(&DbConfig::from_url(url).unwrap()).await
}

/// The connection's TLS version as the server reports it (`None`: not encrypted).
async fn tls_version(pool: &Pool) -> Option<String> {
    let db = pool.get().await.unwrap();
    db.query_one(
        "SELECT CASE WHEN ssl THEN version END FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Connecting fails; the message is one line and says `what`.
async fn refused(url: &str, what: &[&str]) -> String {
    let msg = pool(url).await.unwrap_err().to_string();
    eprintln!("refused: {msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    for w in what {
        assert!(msg.contains(w), "{msg:?} should say {w:?}");
    }
    msg
}

#[tokio::test]
async fn verify_full_connects_through_the_url_and_through_the_postgres_variables() {
    let tls = gpudev_testkit::tls_cluster().await;
    let url = with_certs(&tls, "localhost", "verify-full", &tls.files.ca);
    let p = pool(&url).await.unwrap();
    assert_eq!(tls_version(&p).await.as_deref(), Some("TLSv1.3"));
    let p = pool(&with_certs(&tls, "127.0.0.1", "verify-full", &tls.files.ca))
        .await
        .unwrap();
    assert!(
        tls_version(&p).await.is_some(),
        "an IP address in the certificate counts"
    );

    let port = tls.cluster.port().to_string();
    let f = &tls.files;
    let vars = [
        ("POSTGRES_HOST", "localhost".to_owned()),
        ("POSTGRES_PORT", port),
        ("POSTGRES_USER", "postgres".to_owned()),
        ("POSTGRES_DB", "postgres".to_owned()),
        ("POSTGRES_SSLMODE", "verify-full".to_owned()),
        ("POSTGRES_SSLROOTCERT", f.ca.display().to_string()),
        ("POSTGRES_SSLCERT", f.client_cert.display().to_string()),
        ("POSTGRES_SSLKEY", f.client_key.display().to_string()),
    ];
    let cfg = DbConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .unwrap();
    let p = gpudev_store::connect_pool(&cfg).await.unwrap();
    assert!(tls_version(&p).await.is_some());
}

#[tokio::test]
async fn a_certificate_from_another_authority_is_refused_under_either_verifying_mode() {
    let tls = gpudev_testkit::tls_cluster().await;
    for mode in ["verify-full", "verify-ca"] {
        let url = with_certs(&tls, "localhost", mode, &tls.files.other_ca);
        refused(
            &url,
            &[
                "cannot connect to PostgreSQL at localhost",
                &format!("sslmode={mode}"),
                "not signed by the sslrootcert authority",
            ],
        )
        .await;
    }
}

#[tokio::test]
async fn another_host_name_is_refused_under_verify_full_and_accepted_under_verify_ca() {
    let tls = gpudev_testkit::tls_cluster().await;
    // Another name for the same loopback server: the certificate names localhost and 127.0.0.1.
    let url =
        |mode| with_certs(&tls, "db.other.example", mode, &tls.files.ca) + "&hostaddr=127.0.0.1";
    refused(
        &url("verify-full"),
        &["sslmode=verify-full", "does not name this host"],
    )
    .await;
    let p = pool(&url("verify-ca")).await.unwrap();
    assert!(tls_version(&p).await.is_some());
}

#[tokio::test]
async fn without_tls_or_without_a_client_certificate_the_server_refuses() {
    let tls = gpudev_testkit::tls_cluster().await;
    let url = with_certs(&tls, "localhost", "disable", &tls.files.ca);
    refused(&url, &["no pg_hba.conf entry", "no encryption"]).await;
    let url = tls.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", tls.files.ca.display()),
    );
    refused(&url, &["certificate"]).await;
    // `require` without a root certificate encrypts without checking (libpq's meaning).
    let url = tls.url(
        "localhost",
        &format!(
            "sslmode=require&sslcert={}&sslkey={}",
            tls.files.client_cert.display(),
            tls.files.client_key.display()
        ),
    );
    let p = pool(&url).await.unwrap();
    assert!(tls_version(&p).await.is_some());
}
