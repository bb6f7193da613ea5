//! The trusted OIDC issuers, from `OIDC_ISSUERS_JSON`: a JSON array with one object per issuer.
//!
//! ```json
//! [{"issuer": "https://login.example.com", "client_id": "gpudev-cli",
//!   "audiences": ["gpudev-cli"], "username_claim": "preferred_username",
//!   "groups_claim": "groups", "required_groups": ["gpu-users"],
//!   "required_claims": {"hd": "example.com"}, "admin_groups": ["gpu-admins"],
//!   "algorithms": ["RS256", "ES256"]}]
//! ```

use std::collections::BTreeMap;

use gpudev_store::ConfigError;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// The variable the issuers are read from.
pub const ISSUERS_VAR: &str = "OIDC_ISSUERS_JSON";

/// Signature algorithms a token may use: asymmetric only. `none` and the HMAC family are never
/// accepted, since a verifier holding only public keys must not treat one as a shared secret.
pub const SUPPORTED_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// One issuer as the operator writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    client_id: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    username_claim: Option<String>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    required_groups: Vec<String>,
    #[serde(default)]
    required_claims: BTreeMap<String, String>,
    #[serde(default)]
    admin_groups: Vec<String>,
    #[serde(default)]
    algorithms: Vec<String>,
}

/// A trusted issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerConfig {
    /// The issuer identifier: tokens' `iss` must equal it exactly; discovery is read from
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The OAuth client id the CLI uses with this issuer (published by `GET /v1/auth/oidc`).
    pub client_id: String,
    /// Accepted `aud` values (default: the client id).
    pub audiences: Vec<String>,
    /// The claim the username is taken from (default `preferred_username`).
    pub username_claim: String,
    /// The claim holding the user's groups (default `groups`).
    pub groups_claim: String,
    /// When not empty, the user must be in at least one of these groups.
    pub required_groups: Vec<String>,
    /// Claims that must be present with exactly these string values (an organisation, a domain).
    pub required_claims: BTreeMap<String, String>,
    /// Members of any of these groups log in as admins.
    pub admin_groups: Vec<String>,
    /// Algorithms accepted from this issuer.
    pub algorithms: Vec<Algorithm>,
}

impl IssuerConfig {
    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

fn bad(problem: impl Into<String>) -> ConfigError {
    ConfigError::new(ISSUERS_VAR, problem)
}

/// True for `http://` URLs on a loopback host, which are accepted beside `https://` ones so a
/// local issuer can be used in development and tests.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    let host = host
        .rsplit_once(':')
        .filter(|(h, port)| !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// Checks that `url` is an issuer or endpoint URL we may call: `https://` with a host, or
/// `http://` on loopback; no whitespace, query or fragment.
pub fn check_url(url: &str) -> Result<(), String> {
    let https_host = url
        .strip_prefix("https://")
        .is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    if !(https_host || is_loopback_http(url)) {
        return Err(format!(
            "{url:?} must be an https:// URL (http:// only on localhost)"
        ));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(format!(
            "{url:?} must not contain spaces, a query or a fragment"
        ));
    }
    Ok(())
}

fn non_empty(list: &[String], what: &str, issuer: &str) -> Result<(), ConfigError> {
    if list.iter().any(|s| s.trim().is_empty()) {
        return Err(bad(format!(
            "{issuer}: {what} must not contain empty names"
        )));
    }
    Ok(())
}

/// Parses `OIDC_ISSUERS_JSON`; `None` (unset) means no OIDC login.
pub fn parse_issuers(raw: Option<&str>) -> Result<Vec<IssuerConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let list: Vec<RawIssuer> = serde_json::from_str(raw)
        .map_err(|e| bad(format!("not a JSON array of issuer objects ({e})")))?;
    let mut out: Vec<IssuerConfig> = Vec::with_capacity(list.len());
    for r in list {
        let issuer = r.issuer.trim().to_owned();
        check_url(&issuer).map_err(|e| bad(format!("issuer {e}")))?;
        if out.iter().any(|i| i.issuer == issuer) {
            return Err(bad(format!("issuer {issuer:?} is listed twice")));
        }
        let client_id = r.client_id.trim().to_owned();
        if client_id.is_empty() {
            return Err(bad(format!("{issuer}: client_id must not be empty")));
        }
        let audiences = if r.audiences.is_empty() {
            vec![client_id.clone()]
        } else {
            r.audiences
        };
        non_empty(&audiences, "audiences", &issuer)?;
        non_empty(&r.required_groups, "required_groups", &issuer)?;
        non_empty(&r.admin_groups, "admin_groups", &issuer)?;
        let claim = |c: Option<String>, default: &str| -> Result<String, ConfigError> {
            let c = c.unwrap_or_else(|| default.to_owned());
            if c.trim().is_empty() {
                return Err(bad(format!("{issuer}: claim names must not be empty")));
            }
            Ok(c)
        };
        let algorithms = if r.algorithms.is_empty() {
            vec![Algorithm::RS256, Algorithm::ES256]
        } else {
            r.algorithms
                .iter()
                .map(|name| {
                    SUPPORTED_ALGORITHMS
                        .iter()
                        .copied()
                        .find(|a| format!("{a:?}") == *name)
                        .ok_or_else(|| {
                            bad(format!(
                                "{issuer}: algorithm {name:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        out.push(IssuerConfig {
            username_claim: claim(r.username_claim, "preferred_username")?,
            groups_claim: claim(r.groups_claim, "groups")?,
            issuer,
            client_id,
            audiences,
            required_groups: r.required_groups,
            required_claims: r.required_claims,
            admin_groups: r.admin_groups,
            algorithms,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_audience_claims_and_algorithms() {
        let list = parse_issuers(Some(
            r#"[{"issuer": "https://login.example.com", "client_id": "cli"}]"#,
        ))
        .unwrap();
        let i = &list[0];
        assert_eq!(i.audiences, vec!["cli"]);
        assert_eq!(i.username_claim, "preferred_username");
        assert_eq!(i.groups_claim, "groups");
        assert_eq!(i.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);
        assert_eq!(
            i.discovery_url(),
            "https://login.example.com/.well-known/openid-configuration"
        );
        assert!(parse_issuers(None).unwrap().is_empty());
    }

    #[test]
    fn bad_issuer_lists_are_refused() {
        for raw in [
            "{}",
            r#"[{"issuer": "http://login.example.com", "client_id": "cli"}]"#,
            r#"[{"issuer": "https://login.example.com", "client_id": " "}]"#,
            r#"[{"issuer": "https://a.example", "client_id": "c", "algorithms": ["HS256"]}]"#,
            r#"[{"issuer": "https://a.example", "client_id": "c", "algorithms": ["none"]}]"#,
            r#"[{"issuer": "https://a.example", "client_id": "c", "colour": "red"}]"#,
            r#"[{"issuer": "https://a.example", "client_id": "c"}, {"issuer": "https://a.example", "client_id": "d"}]"#,
            r#"[{"issuer": "https://a.example?x=1", "client_id": "c"}]"#,
        ] {
            let err = parse_issuers(Some(raw)).unwrap_err();
            assert_eq!(err.variable, ISSUERS_VAR, "{raw}: {err}");
        }
    }

    #[test]
    fn plain_http_is_only_accepted_on_loopback() {
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://localhost/realms/x").is_ok());
        assert!(check_url("http://[::1]:9").is_ok());
        assert!(check_url("http://127.0.0.1.example.com").is_err());
        assert!(check_url("http://localhost@evil.example").is_err());
        assert!(check_url("https://").is_err());
    }
}
