//! The properties the fuzz targets check, one function per target. Each takes the raw input and
//! panics when a property fails; the libFuzzer binaries in `fuzz_targets/` call them, and
//! `tests/replay.rs` runs them over the stored seeds and regressions on stable Rust.
//!
//! Beyond "does not panic", every target checks what an accepted value promises: it prints back
//! as it was given, parses again to the same value, and stays within its documented limits.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use gpudev_domain::api_key::KEY_LEN;
use gpudev_domain::arn::{MAX_ARN_LEN, PARTITIONS};
use gpudev_domain::env::{
    MAX_ENV_NAME_LEN, MAX_ENV_TOTAL_BYTES, MAX_ENV_VARS, RESERVED_ENV_PREFIXES,
};
use gpudev_domain::image::{MAX_IMAGE_LEN, MAX_TAG_LEN};
use gpudev_domain::request::{MIN_DURATION_SECONDS, PRIORITY_RANGE};
use gpudev_domain::submission::{CONTROL_ENV_VARS, JobSubmission, MAX_COMMAND_LEN};
use gpudev_domain::username::MAX_USERNAME_LEN;
use gpudev_domain::{
    ArnKind, AuthorizationError, AwsArn, EnvVars, GpuCatalog, ImageRef, Limits, PresentedKey,
    ReservationRequest, Username,
};

/// `AwsArn::parse`: an accepted ARN displays as given, parses again to itself, and has the parts
/// the caller-identity shapes promise.
pub fn arn(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(arn) = AwsArn::parse(raw) else {
        return;
    };
    assert_eq!(arn.to_string(), raw);
    assert_eq!(AwsArn::parse(&arn.to_string()).as_ref(), Ok(&arn));
    assert!(raw.len() <= MAX_ARN_LEN);
    assert!(raw.starts_with(&format!("arn:{}:", arn.partition())));
    assert!(PARTITIONS.contains(&arn.partition()));
    assert!(arn.account().len() == 12 && arn.account().bytes().all(|b| b.is_ascii_digit()));
    match arn.kind() {
        ArnKind::User => assert_eq!(arn.role(), None),
        ArnKind::Role | ArnKind::AssumedRole => {
            let role = arn.role().unwrap_or_default();
            assert!(!role.is_empty() && arn.role_matches(role));
        }
    }
    // The username is a valid one: the last segment, character for character, cut to the
    // longest username.
    let username = arn.username();
    assert!(Username::parse(username.as_str()).is_ok(), "{username:?}");
    let last = raw.rsplit('/').next().unwrap_or_default();
    assert_eq!(username.as_str().len(), last.len().min(MAX_USERNAME_LEN));
}

/// `PresentedKey::from_authorization`: accepted headers are `Bearer <key>` with the scheme in any
/// case, the key is what follows it, and every well-formed key in a bearer header is accepted.
pub fn authorization(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    match PresentedKey::from_authorization(header) {
        Ok(key) => {
            assert!(header.len() > 7 && header[..7].eq_ignore_ascii_case("bearer "));
            let token = header[7..].trim();
            assert_eq!(token.len(), KEY_LEN);
            let direct = PresentedKey::parse(token).unwrap_or_else(|e| panic!("{e}"));
            assert!(direct.hash().ct_eq(&key.hash()));
            let canonical = PresentedKey::from_authorization(&format!("Bearer {token}"));
            assert!(canonical.is_ok_and(|k| k.hash().ct_eq(&key.hash())));
        }
        Err(AuthorizationError::NotBearer) => {
            let bearer = header
                .split_once(' ')
                .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
            assert!(!bearer, "{header:?} was refused as not bearer");
        }
        Err(AuthorizationError::Key(_)) => {}
    }
    // The same bytes as a token: accepted exactly when they are a well-formed key.
    let as_token = PresentedKey::from_authorization(&format!("Bearer {header}"));
    assert_eq!(
        as_token.is_ok(),
        PresentedKey::parse(header.trim()).is_ok(),
        "{header:?}"
    );
}

/// `ImageRef::parse`: an accepted reference displays as given, parses again to itself, is
/// exactly its registry, path, tag and digest put back together, and keeps the length limits.
pub fn image_ref(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(image) = ImageRef::parse(raw) else {
        return;
    };
    assert_eq!(image.to_string(), raw);
    assert_eq!(ImageRef::parse(image.as_str()).as_ref(), Ok(&image));
    assert!(!raw.is_empty() && raw.len() <= MAX_IMAGE_LEN);
    assert!(!raw.chars().any(|c| c.is_whitespace() || c.is_control()));
    let mut rebuilt = String::new();
    if let Some(registry) = image.registry() {
        rebuilt.push_str(registry);
        rebuilt.push('/');
    }
    rebuilt.push_str(image.path());
    if let Some(tag) = image.tag() {
        assert!(!tag.is_empty() && tag.len() <= MAX_TAG_LEN);
        rebuilt.push(':');
        rebuilt.push_str(tag);
    }
    if let Some(digest) = image.digest() {
        rebuilt.push('@');
        rebuilt.push_str(digest);
    }
    assert_eq!(rebuilt, raw);
    assert!(!image.path().is_empty());
    assert_eq!(image.path(), image.path().to_ascii_lowercase());
}

/// `EnvVars::parse` and `EnvVars::parse_pair`: an accepted set keeps every documented limit, and
/// a set is accepted exactly when each `NAME=VALUE` pair is and the count and size fit.
pub fn env_vars(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(vars) = BTreeMap::<String, String>::arbitrary(&mut input) else {
        return;
    };
    let pairs_ok = vars.iter().all(|(name, value)| {
        if name.contains('=') {
            // Not a valid name, and `NAME=VALUE` would split it elsewhere.
            return false;
        }
        let flag = format!("{name}={value}");
        match EnvVars::parse_pair(&flag) {
            Ok((n, v)) => {
                assert_eq!((&n, &v), (name, value), "{flag:?} split differently");
                true
            }
            Err(_) => false,
        }
    });
    let total: usize = vars.iter().map(|(n, v)| n.len() + v.len()).sum();
    let fits = vars.len() <= MAX_ENV_VARS && total <= MAX_ENV_TOTAL_BYTES;
    match EnvVars::parse(vars.clone()) {
        Ok(env) => {
            assert!(pairs_ok && fits);
            assert_eq!(env.len(), vars.len());
            for (name, value) in env.iter() {
                assert!(!name.is_empty() && name.len() <= MAX_ENV_NAME_LEN);
                assert!(!name.starts_with(|c: char| c.is_ascii_digit()));
                assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                assert!(!RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p)));
                assert!(!value.contains('\0'));
                assert_eq!(vars.get(name).map(String::as_str), Some(value));
            }
        }
        Err(_) => assert!(!(pairs_ok && fits), "a valid set was refused"),
    }
}

/// The submit body as the API reads it (JSON object → `JobSubmission` → compatibility rules →
/// `ReservationRequest`): an accepted request keeps every documented limit, no control variable
/// reaches the dev box, and the submission written back as JSON resolves to the same request.
pub fn submit_request(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if !body.is_object() {
        return;
    }
    let Ok(submission) = serde_json::from_value::<JobSubmission>(body) else {
        return;
    };
    let catalog = GpuCatalog::default();
    let limits = Limits::default();
    let Ok(resolved) = submission.clone().resolve(&catalog) else {
        return;
    };

    // Written back as JSON and read again, the submission resolves the same way.
    let again = serde_json::to_value(&submission)
        .and_then(serde_json::from_value::<JobSubmission>)
        .unwrap_or_else(|e| panic!("the submission does not survive JSON: {e}"));
    assert_eq!(again.resolve(&catalog).as_ref(), Ok(&resolved));

    assert!(
        !resolved
            .raw
            .env
            .keys()
            .any(|k| CONTROL_ENV_VARS.contains(&k.as_str()))
    );
    if let Some(size) = resolved.disk_size_gb {
        assert!((10..=10_000).contains(&size));
    }
    if let Some(command) = &resolved.command {
        assert!(command.len() <= MAX_COMMAND_LEN && !command.contains('\0'));
    }

    let Ok(request) = ReservationRequest::new(&catalog, &limits, resolved.raw.clone()) else {
        return;
    };
    let seconds = request.duration().as_seconds();
    assert!(seconds >= MIN_DURATION_SECONDS);
    assert!(seconds as f64 <= limits.max_duration_hours * 3600.0);
    assert!(PRIORITY_RANGE.contains(&request.priority()));
    let spec = request.gpu();
    assert!(catalog.lookup(spec.name.as_str()).is_ok());
    assert!(request.nodes() >= 1 && request.nodes() <= limits.max_nodes);
    if spec.is_cpu_only() {
        assert_eq!(request.gpu_count(), 0);
    } else {
        assert!(request.gpu_count() >= 1);
        assert_eq!(
            request.gpu_count(),
            request.gpus_per_node() * request.nodes()
        );
        assert!(request.gpus_per_node() <= spec.gpus_per_node);
        if request.nodes() > 1 {
            assert!(spec.multinode && request.gpus_per_node() == spec.gpus_per_node);
        }
    }
    if let Some(image) = request.image() {
        assert!(image.as_str().len() <= MAX_IMAGE_LEN);
    }
    assert!(request.env().len() <= MAX_ENV_VARS);
    assert!(
        request
            .env()
            .names()
            .all(|n| !CONTROL_ENV_VARS.contains(&n))
    );
}

/// `BearerSecret::from_authorization` (the dev box agent's token): accepted headers are
/// `Bearer <43 URL-safe base64 characters>` with the scheme in any case, the token is what follows
/// it, and it hashes as the token read alone does.
pub fn agent_token(data: &[u8]) {
    use gpudev_domain::BearerSecret;
    use gpudev_domain::secret::SECRET_LEN;
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = BearerSecret::from_authorization(header) {
        assert!(header.len() > 7 && header[..7].eq_ignore_ascii_case("bearer "));
        let raw = header[7..].trim();
        assert_eq!(raw.len(), SECRET_LEN);
        assert!(
            raw.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let direct = BearerSecret::parse(raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(direct.hash(), token.hash());
        assert_eq!(token.hash().len(), 64);
    }
    // The same bytes as a token: accepted exactly when they parse alone.
    let as_header = BearerSecret::from_authorization(&format!("Bearer {header}"));
    assert_eq!(
        as_header.is_ok(),
        BearerSecret::parse(header.trim()).is_ok()
    );
}

/// An agent's report body (`POST /v1/agent/report`): an accepted report serialises back to a body
/// that reads as the same report, its figures are within the limits `check` promises, and it
/// counts as activity exactly when a session is open or a GPU is busy.
pub fn agent_report(data: &[u8]) {
    use gpudev_api_types::agent::{AgentReport, MAX_GPUS, MAX_SESSIONS};
    let Ok(report) = serde_json::from_slice::<AgentReport>(data) else {
        return;
    };
    let again: AgentReport = serde_json::from_str(&serde_json::to_string(&report).unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, report);
    if report.check().is_err() {
        return;
    }
    assert!(report.ssh_sessions <= MAX_SESSIONS);
    let gpus = report.gpus.clone().unwrap_or_default();
    assert!(gpus.len() <= MAX_GPUS);
    assert!(
        gpus.iter()
            .all(|g| g.utilization_percent <= 100 && g.memory_used_mib <= g.memory_total_mib)
    );
    for threshold in [0u32, 5, 50, 100, 101] {
        let busy = gpus
            .iter()
            .any(|g| u32::from(g.utilization_percent) >= threshold);
        let sessions = report.ssh_sessions > 0 || report.jupyter_connections.unwrap_or(0) > 0;
        assert_eq!(report.is_active(threshold), sessions || busy);
    }
}
