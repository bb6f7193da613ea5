//! Parsing request paths (`/api/v1/namespaces/{ns}/pods/{name}/status`) and query strings.

use std::collections::HashMap;

use super::resources::{self, ResourceType};
use super::status::ApiError;

/// What a request path names.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) rt: &'static ResourceType,
    /// The namespace in the path; `None` for cluster-scoped kinds and all-namespace lists.
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    /// `status` for the status subresource.
    pub(crate) subresource: Option<String>,
}

/// Parses the path of a resource request.
pub(crate) fn parse_path(path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let find = |plural: &str| resources::find(group, version, plural);
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if find(plural).is_some_and(|rt| rt.namespaced) => (
            Some((*ns).to_owned()),
            std::iter::once(plural)
                .chain(more)
                .copied()
                .collect::<Vec<_>>(),
        ),
        _ => (None, rest.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route(path)),
    };
    let rt = find(plural).ok_or_else(|| ApiError::no_route(path))?;
    let valid = !matches!(
        (rt.namespaced, &namespace, name),
        (true, None, Some(_)) | (false, Some(_), _)
    );
    if !valid || name.is_some_and(str::is_empty) {
        return Err(ApiError::no_route(path));
    }
    if let Some(sub) = subresource
        && !(sub == "status" && rt.has_status)
    {
        return Err(ApiError::no_route(path));
    }
    Ok(Route {
        rt,
        namespace,
        name: name.map(percent_decode),
        subresource: subresource.map(str::to_owned),
    })
}

/// The decoded query parameters of a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    /// Parses `a=b&c=d` (form encoding: `+` is a space).
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Self(
            query
                .unwrap_or_default()
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (form_decode(k), form_decode(v))
                })
                .collect(),
        )
    }

    /// The value of a parameter.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of a parameter, or `""`.
    pub(crate) fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    /// Whether a boolean parameter is set to true (`true` or `1`).
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

fn form_decode(text: &str) -> String {
    percent_decode(&text.replace('+', " "))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources_namespaces_and_subresources() {
        let r = parse_path("/api/v1/namespaces/gpu-dev/pods/p1/status").unwrap();
        assert_eq!(
            (
                r.rt.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("pods", Some("gpu-dev"), Some("p1"), Some("status"))
        );
        let r = parse_path("/api/v1/pods").unwrap();
        assert_eq!((r.rt.plural, r.namespace, r.name), ("pods", None, None));
        let r = parse_path("/api/v1/nodes/n1").unwrap();
        assert_eq!((r.rt.plural, r.name.as_deref()), ("nodes", Some("n1")));
        let r = parse_path("/api/v1/namespaces/gpu-dev").unwrap();
        assert_eq!(
            (r.rt.plural, r.name.as_deref()),
            ("namespaces", Some("gpu-dev"))
        );
        let r = parse_path("/apis/coordination.k8s.io/v1/namespaces/x/leases/l").unwrap();
        assert_eq!(r.rt.kind, "Lease");
        assert!(parse_path("/api/v1/pods/p1").is_err());
        assert!(parse_path("/apis/example.com/v1/widgets").is_err());
        assert!(parse_path("/api/v1/namespaces/x/secrets/s/status").is_err());
    }

    #[test]
    fn queries_are_form_decoded() {
        let q = Query::parse(Some("labelSelector=a%3D1%2Cb+in+%28x%29&watch=true"));
        assert_eq!(q.str("labelSelector"), "a=1,b in (x)");
        assert!(q.flag("watch"));
        assert!(!q.flag("missing"));
    }
}
