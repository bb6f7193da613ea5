//! The trusted OIDC issuers, from `OIDC_ISSUERS_JSON`: a JSON array with one object per issuer.
//!
//! ```json
//! [{"issuer": "https://login.example.com", "client_id": "gpudev-cli",
//!   "audiences": ["gpudev-cli"], "username_claim": "preferred_username",
//!   "groups_claim": "groups", "required_groups": ["gpu-users"],
//!   "required_claims": {"hd": "example.com"}, "admin_groups": ["gpu-admins"],
//!   "algorithms": ["RS256", "ES256"],
//!   "console_client_id": "gpudev-web", "display_name": "Example SSO"}]
//! ```
//!
//! An issuer with a `console_client_id` also signs people in to the web console (the
//! authorization code grant with PKCE); a confidential client's secret comes from
//! `OIDC_CONSOLE_CLIENT_SECRETS_JSON` (issuer → secret), kept out of the issuer list so the list
//! can live in a ConfigMap.

use std::collections::BTreeMap;

use gpudev_store::ConfigError;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// The variable the issuers are read from.
pub const ISSUERS_VAR: &str = "OIDC_ISSUERS_JSON";
/// The variable the console clients' secrets are read from.
pub const CONSOLE_SECRETS_VAR: &str = "OIDC_CONSOLE_CLIENT_SECRETS_JSON";

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
    #[serde(default)]
    console_client_id: Option<String>,
    #[serde(default)]
    console_scopes: Vec<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// A client secret; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// The secret, for the one request that sends it to the issuer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(…)")
    }
}

/// How the web console signs people in with an issuer (the authorization code grant with PKCE).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleClient {
    /// The OAuth client id registered for the console (its redirect URI is
    /// `<console URL>/ui/signin/oidc/callback`).
    pub client_id: String,
    /// The secret of a confidential client, sent with HTTP Basic authentication; public clients
    /// rely on PKCE alone.
    pub client_secret: Option<ClientSecret>,
    /// Scopes asked for (default `openid profile email`; always with `openid`).
    pub scopes: Vec<String>,
    /// The provider's name on the sign-in button (default: the issuer's host).
    pub display_name: String,
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
    /// The web console's sign-in with this issuer, when configured.
    pub console: Option<ConsoleClient>,
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
        let console_client_id = r.console_client_id.map(|c| c.trim().to_owned());
        let audiences = if r.audiences.is_empty() {
            let mut default = vec![client_id.clone()];
            default.extend(console_client_id.clone().filter(|c| *c != client_id));
            default
        } else {
            r.audiences
        };
        non_empty(&audiences, "audiences", &issuer)?;
        let console_extras = !r.console_scopes.is_empty() || r.display_name.is_some();
        let console = match console_client_id {
            None => None,
            Some(id) if id.is_empty() => {
                return Err(bad(format!(
                    "{issuer}: console_client_id must not be empty"
                )));
            }
            Some(id) => {
                // The console's ID tokens are verified as every other one, so they must be
                // meant for an accepted audience.
                if !audiences.contains(&id) {
                    return Err(bad(format!(
                        "{issuer}: audiences must include console_client_id {id:?}"
                    )));
                }
                non_empty(&r.console_scopes, "console_scopes", &issuer)?;
                let scopes = if r.console_scopes.is_empty() {
                    vec!["openid".into(), "profile".into(), "email".into()]
                } else if r.console_scopes.iter().any(|s| s == "openid") {
                    r.console_scopes
                } else {
                    return Err(bad(format!("{issuer}: console_scopes must include openid")));
                };
                if scopes.iter().any(|s| s.contains(char::is_whitespace)) {
                    return Err(bad(format!("{issuer}: a scope must not contain spaces")));
                }
                let display_name = match r.display_name.map(|n| n.trim().to_owned()) {
                    Some(n) if n.is_empty() || n.chars().count() > 64 => {
                        return Err(bad(format!(
                            "{issuer}: display_name must be 1 to 64 characters"
                        )));
                    }
                    Some(n) => n,
                    None => host_of(&issuer).to_owned(),
                };
                Some(ConsoleClient {
                    client_id: id,
                    client_secret: None,
                    scopes,
                    display_name,
                })
            }
        };
        if console.is_none() && console_extras {
            return Err(bad(format!(
                "{issuer}: console_scopes and display_name need console_client_id"
            )));
        }
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
            console,
        });
    }
    Ok(out)
}

/// The host (and port) of an issuer URL.
fn host_of(url: &str) -> &str {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// Reads `OIDC_CONSOLE_CLIENT_SECRETS_JSON` (a JSON object: issuer → client secret) into the
/// issuers' console clients. Every issuer named must be configured with a `console_client_id`.
pub fn apply_console_secrets(
    issuers: &mut [IssuerConfig],
    raw: Option<&str>,
) -> Result<(), ConfigError> {
    let Some(raw) = raw else {
        return Ok(());
    };
    let secrets: BTreeMap<String, String> = serde_json::from_str(raw).map_err(|_| {
        // The error text could quote the secret; say only what is wrong.
        ConfigError::new(
            CONSOLE_SECRETS_VAR,
            "not a JSON object of issuer URLs to client secrets",
        )
    })?;
    for (issuer, secret) in secrets {
        let console = issuers
            .iter_mut()
            .find(|i| i.issuer == issuer)
            .and_then(|i| i.console.as_mut())
            .ok_or_else(|| {
                ConfigError::new(
                    CONSOLE_SECRETS_VAR,
                    format!(
                        "{issuer:?} is not an issuer of {ISSUERS_VAR} with a console_client_id"
                    ),
                )
            })?;
        if secret.is_empty() {
            return Err(ConfigError::new(
                CONSOLE_SECRETS_VAR,
                format!("the secret of {issuer} is empty"),
            ));
        }
        console.client_secret = Some(ClientSecret(secret));
    }
    Ok(())
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
    fn a_console_client_joins_the_audiences_and_takes_its_secret_from_its_own_variable() {
        let mut list = parse_issuers(Some(
            r#"[{"issuer": "https://login.example.com/realms/x", "client_id": "cli", "console_client_id": "web"}]"#,
        ))
        .unwrap();
        assert_eq!(list[0].audiences, vec!["cli", "web"]);
        let console = list[0].console.clone().unwrap();
        assert_eq!(console.display_name, "login.example.com");
        assert_eq!(console.scopes, vec!["openid", "profile", "email"]);
        assert_eq!(console.client_secret, None);
        apply_console_secrets(
            &mut list,
            Some(r#"{"https://login.example.com/realms/x": "hunter2"}"#),
        )
        .unwrap();
        let secret = list[0]
            .console
            .as_ref()
            .unwrap()
            .client_secret
            .clone()
            .unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert!(!format!("{list:?}").contains("hunter2"));
        for raw in [
            r#"{"https://other.example": "s"}"#,
            r#"{"https://login.example.com/realms/x": ""}"#,
            "[\"hunter3\"]",
        ] {
            let err = apply_console_secrets(&mut list, Some(raw)).unwrap_err();
            assert_eq!(err.variable, CONSOLE_SECRETS_VAR);
            assert!(!err.to_string().contains("hunter3"), "{err}");
        }
    }

    #[test]
    fn console_settings_that_cannot_work_are_refused() {
        for raw in [
            r#"[{"issuer": "https://a.example", "client_id": "c", "audiences": ["c"], "console_client_id": "web"}]"#,
            r#"[{"issuer": "https://a.example", "client_id": "c", "console_client_id": " "}]"#,
            r#"[{"issuer": "https://a.example", "client_id": "c", "console_client_id": "w", "console_scopes": ["email"]}]"#,
            r#"[{"issuer": "https://a.example", "client_id": "c", "console_client_id": "w", "console_scopes": ["openid x"]}]"#,
            r#"[{"issuer": "https://a.example", "client_id": "c", "display_name": "A"}]"#,
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
