//! TLS to PostgreSQL with rustls, with libpq's `sslmode` meanings:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (the default, as in libpq) | when the server offers it | no |
//! | `require` | yes | no, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | yes | chain to `sslrootcert`; any host name |
//! | `verify-full` | yes | chain to `sslrootcert` and the host name |
//!
//! `sslcert` and `sslkey` (PEM) present a client certificate. The files are read when the
//! settings are, so a bad path or file stops the program at start-up naming its variable; a
//! renewed certificate takes effect when the program restarts. Connections over a Unix socket
//! are never encrypted (as with libpq).
//!
//! The crypto provider is named here (ring, ADR 8) rather than taken from the process, so every
//! program gets the same whether or not it installed one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How a connection uses TLS (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it, without checking its certificate.
    #[default]
    Prefer,
    /// Always; the certificate is checked only when a root certificate is given.
    Require,
    /// Always, with the certificate chained to the root certificate.
    VerifyCa,
    /// Always, with the certificate chained to the root certificate and naming the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling. `allow` is refused: it would fall back to plain text silently.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!(
                "{other:?} is not an sslmode (disable, prefer, require, verify-ca, verify-full)"
            )),
        }
    }

    /// True when a server that refuses TLS must be refused too.
    pub fn requires_tls(self) -> bool {
        self >= Self::Require
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        })
    }
}

/// The TLS settings of a connection, as given (paths, not contents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: PEM file of the certificate authorities to trust.
    pub root_cert: Option<PathBuf>,
    /// `sslcert`: PEM file of the client certificate (chain).
    pub cert: Option<PathBuf>,
    /// `sslkey`: PEM file of the client certificate's private key.
    pub key: Option<PathBuf>,
}

/// A TLS problem with the settings: which setting, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettingError {
    /// `sslmode`, `sslrootcert`, `sslcert` or `sslkey`.
    pub setting: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl TlsSettings {
    /// Reads the files and builds the rustls configuration; `None` for `disable`.
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, TlsSettingError> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.root_cert {
            Some(path) => Some(Arc::new(read_roots(path)?)),
            None if self.mode >= SslMode::VerifyCa => {
                return Err(TlsSettingError {
                    setting: "sslrootcert",
                    problem: format!(
                        "sslmode={} checks the server's certificate against a root certificate: \
                         give its PEM file",
                        self.mode
                    ),
                });
            }
            None => None,
        };
        let algorithms = provider.signature_verification_algorithms;
        let chain = match roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                    .build()
                    .map_err(|e| TlsSettingError {
                        setting: "sslrootcert",
                        problem: e.to_string(),
                    })?,
            ),
            None => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match chain {
            Some(full) if self.mode == SslMode::VerifyFull => full,
            chain => Arc::new(LibpqCheck { chain, algorithms }),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSettingError {
                setting: "sslmode",
                problem: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(read_certs(cert, "sslcert")?, read_key(key)?)
                .map_err(|e| TlsSettingError {
                    setting: "sslkey",
                    problem: format!("does not go with the certificate in sslcert: {e}"),
                })?,
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => return Err(missing_pair("sslkey", "sslcert")),
            (None, Some(_)) => return Err(missing_pair("sslcert", "sslkey")),
        };
        Ok(Some(Arc::new(config)))
    }
}

fn missing_pair(missing: &'static str, given: &str) -> TlsSettingError {
    TlsSettingError {
        setting: missing,
        problem: format!("{given} is given without {missing}: a client certificate needs both"),
    }
}

fn read_certs(
    path: &Path,
    setting: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsSettingError> {
    let fail = |problem: String| TlsSettingError { setting, problem };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(fail(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsSettingError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, "sslrootcert")? {
        roots.add(cert).map_err(|e| TlsSettingError {
            setting: "sslrootcert",
            problem: format!("{}: {e}", path.display()),
        })?;
    }
    Ok(roots)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSettingError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsSettingError {
        setting: "sslkey",
        problem: format!("cannot read a PEM private key from {}: {e}", path.display()),
    })
}

/// The server-certificate check of every mode but `verify-full` (which is webpki's own): with
/// `chain` (`verify-ca`, and `require` with a root certificate) the chain must lead to a trusted
/// root, whatever host name the certificate carries; without it (`prefer`, `require`) the
/// certificate is not checked, as in libpq. The handshake's signatures are verified either way.
#[derive(Debug)]
struct LibpqCheck {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LibpqCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name, so a name error means the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Splits libpq's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) out of a
/// connection string, which tokio-postgres would refuse or ignore; returns the rest and the
/// parameters. Both the URL form (`postgres://…?sslmode=verify-full&…`) and the key/value form
/// (`host=… sslmode=verify-full`, values without quotes) are read.
pub fn split_ssl_params(conn: &str) -> Result<(String, SslParams), String> {
    let mut found = Vec::new();
    let mut take = |key: &str, value: String| -> bool {
        match SSL_PARAMS.iter().find(|p| **p == key) {
            Some(p) => {
                found.push((*p, value));
                true
            }
            None => false,
        }
    };
    if conn.contains("://") {
        let Some((base, query)) = conn.split_once('?') else {
            return Ok((conn.to_owned(), found));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k, percent_decode(v)?) {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, found));
    }
    let mut kept = Vec::new();
    for token in conn.split_whitespace() {
        match token.split_once('=') {
            Some((k, v)) if SSL_PARAMS.contains(&k) => {
                if v.starts_with('\'') {
                    return Err(format!(
                        "quote {k} in the URL form (postgres://…?{k}=…) instead"
                    ));
                }
                take(k, v.to_owned());
            }
            _ => kept.push(token),
        }
    }
    Ok((kept.join(" "), found))
}

/// libpq TLS parameters found in a connection string: (name, value), in order.
pub type SslParams = Vec<(&'static str, String)>;

const SSL_PARAMS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_taken_out_of_both_forms_and_the_rest_is_kept() {
        let (rest, found) = split_ssl_params(
            "postgres://u:p@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.crt",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5/db?application_name=x");
        assert_eq!(
            found,
            vec![
                ("sslmode", "verify-full".to_owned()),
                ("sslrootcert", "/etc/ca.crt".to_owned())
            ]
        );
        let (rest, found) = split_ssl_params("postgres://h/db?sslmode=require").unwrap();
        assert_eq!((rest.as_str(), found.len()), ("postgres://h/db", 1));
        let (rest, found) = split_ssl_params("host=h sslmode=verify-ca dbname=d").unwrap();
        assert_eq!(rest, "host=h dbname=d");
        assert_eq!(found, vec![("sslmode", "verify-ca".to_owned())]);
        assert!(split_ssl_params("host=h sslrootcert='/a b'").is_err());
    }

    #[test]
    fn modes_parse_as_libpq_spells_them_and_verification_needs_a_root() {
        assert_eq!(SslMode::parse("verify-full"), Ok(SslMode::VerifyFull));
        assert!(SslMode::parse("allow").is_err());
        assert!(SslMode::VerifyCa.requires_tls() && !SslMode::Prefer.requires_tls());
        let e = TlsSettings {
            mode: SslMode::VerifyFull,
            ..TlsSettings::default()
        }
        .client_config()
        .unwrap_err();
        assert_eq!(e.setting, "sslrootcert");
        let e = TlsSettings {
            mode: SslMode::Require,
            cert: Some("/nonexistent/client.crt".into()),
            ..TlsSettings::default()
        }
        .client_config()
        .unwrap_err();
        assert_eq!(e.setting, "sslkey");
        assert!(
            TlsSettings {
                mode: SslMode::Require,
                ..TlsSettings::default()
            }
            .client_config()
            .unwrap()
            .is_some()
        );
    }
}
