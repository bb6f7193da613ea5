//! AWS identity ARNs, as returned by `sts:GetCallerIdentity`.
//!
//! Only the three shapes a caller identity can take are accepted:
//!
//! ```text
//! arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION
//! arn:PARTITION:iam::ACCOUNT:role[/PATH…]/ROLE
//! arn:PARTITION:iam::ACCOUNT:user[/PATH…]/NAME
//! ```
//! where `PARTITION` is `aws`, `aws-cn` or `aws-us-gov` and `ACCOUNT` is twelve digits.

use std::fmt;

use crate::username::Username;

/// Longest ARN accepted (the IAM limit for ARNs).
pub const MAX_ARN_LEN: usize = 2048;

/// Partitions an identity may come from.
pub const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// Which kind of principal an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArnKind {
    /// A temporary session of an assumed IAM role (`sts … assumed-role/ROLE/SESSION`).
    AssumedRole,
    /// An IAM role itself (`iam … role/ROLE`).
    Role,
    /// An IAM user (`iam … user/NAME`).
    User,
}

/// Why a string is not an accepted AWS identity ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// The string does not have the `arn:partition:service:region:account:resource` shape.
    #[error("AWS ARN must have the form arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE")]
    Malformed,
    /// The ARN is longer than [`MAX_ARN_LEN`].
    #[error("AWS ARN must be at most {MAX_ARN_LEN} characters")]
    TooLong,
    /// The partition is not one of [`PARTITIONS`].
    #[error("AWS ARN partition {0:?} is not supported (expected aws, aws-cn or aws-us-gov)")]
    UnsupportedPartition(String),
    /// The service is neither `sts` nor `iam`.
    #[error("AWS ARN service {0:?} is not supported (expected sts or iam)")]
    UnsupportedService(String),
    /// An identity ARN carries no region, but this one does.
    #[error("AWS identity ARN must have an empty region")]
    UnexpectedRegion,
    /// The account is not twelve digits.
    #[error("AWS ARN account must be exactly 12 digits")]
    BadAccount,
    /// The resource is not an assumed role, a role or a user.
    #[error(
        "AWS ARN resource must be sts assumed-role/ROLE/SESSION, iam role/ROLE or iam user/NAME"
    )]
    UnsupportedResource,
    /// A role, session, user or path segment contains a character IAM does not allow.
    #[error("AWS ARN names may contain only letters, digits and + = , . @ _ - (found {0:?})")]
    InvalidCharacter(char),
}

/// A parsed AWS identity ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsArn {
    raw: String,
    partition: String,
    account: String,
    kind: ArnKind,
    role: Option<String>,
    username: Username,
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | ',' | '.' | '@' | '_' | '-')
}

/// Checks that every segment is non-empty and made of IAM name characters.
fn check_segments(segments: &[&str]) -> Result<(), ArnError> {
    for segment in segments {
        if segment.is_empty() {
            return Err(ArnError::UnsupportedResource);
        }
        if let Some(bad) = segment.chars().find(|c| !name_char(*c)) {
            return Err(ArnError::InvalidCharacter(bad));
        }
    }
    Ok(())
}

impl AwsArn {
    /// Parses an identity ARN; anything but an assumed role, a role or a user is refused.
    pub fn parse(raw: &str) -> Result<Self, ArnError> {
        if raw.len() > MAX_ARN_LEN {
            return Err(ArnError::TooLong);
        }
        let mut parts = raw.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(ArnError::Malformed);
        };
        if !PARTITIONS.contains(&partition) {
            return Err(ArnError::UnsupportedPartition(partition.to_owned()));
        }
        if service != "sts" && service != "iam" {
            return Err(ArnError::UnsupportedService(service.to_owned()));
        }
        if !region.is_empty() {
            return Err(ArnError::UnexpectedRegion);
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ArnError::BadAccount);
        }
        let segments: Vec<&str> = resource.split('/').collect();
        let (kind, names) = match (service, segments.split_first()) {
            ("sts", Some((&"assumed-role", rest))) if rest.len() == 2 => {
                (ArnKind::AssumedRole, rest)
            }
            ("iam", Some((&"role", rest))) if !rest.is_empty() => (ArnKind::Role, rest),
            ("iam", Some((&"user", rest))) if !rest.is_empty() => (ArnKind::User, rest),
            _ => return Err(ArnError::UnsupportedResource),
        };
        check_segments(names)?;
        let role = match kind {
            ArnKind::AssumedRole => names.first(),
            ArnKind::Role => names.last(),
            ArnKind::User => None,
        };
        let last = names.last().ok_or(ArnError::UnsupportedResource)?;
        // Segments are non-empty, so sanitising cannot fail; map the error anyway rather than panic.
        let username = Username::sanitize(last).map_err(|_| ArnError::UnsupportedResource)?;
        Ok(Self {
            raw: raw.to_owned(),
            partition: partition.to_owned(),
            account: account.to_owned(),
            kind,
            role: role.map(|r| (*r).to_owned()),
            username,
        })
    }

    /// The ARN exactly as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The partition: `aws`, `aws-cn` or `aws-us-gov`.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The twelve-digit account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Which kind of principal this is.
    pub fn kind(&self) -> ArnKind {
        self.kind
    }

    /// The role name (without its path) for roles and assumed roles; `None` for IAM users.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// The gpudev username of this identity: the last `/` segment (session name, role name or
    /// user name) with characters outside `[A-Za-z0-9._-]` replaced by `-`.
    pub fn username(&self) -> Username {
        self.username.clone()
    }

    /// True when this identity is the role named `allowed` (exact, case-sensitive match of the
    /// role name without its path). IAM users never match.
    pub fn role_matches(&self, allowed: &str) -> bool {
        self.role.as_deref() == Some(allowed)
    }
}

impl fmt::Display for AwsArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";

    #[test]
    fn assumed_role_arn_yields_role_session_and_username() {
        let arn =
            AwsArn::parse("arn:aws:sts::123456789012:assumed-role/GpuDevUsers/alice@corp.com")
                .unwrap();
        assert_eq!(arn.kind(), ArnKind::AssumedRole);
        assert_eq!(arn.account(), ACCOUNT);
        assert_eq!(arn.partition(), "aws");
        assert_eq!(arn.role(), Some("GpuDevUsers"));
        assert_eq!(arn.username().as_str(), "alice-corp.com");
        assert_eq!(
            arn.as_str(),
            "arn:aws:sts::123456789012:assumed-role/GpuDevUsers/alice@corp.com"
        );
    }

    #[test]
    fn role_arn_with_and_without_path_uses_the_last_segment() {
        let plain = AwsArn::parse("arn:aws:iam::123456789012:role/Builder").unwrap();
        assert_eq!(plain.kind(), ArnKind::Role);
        assert_eq!(plain.role(), Some("Builder"));
        assert_eq!(plain.username().as_str(), "Builder");

        let pathed = AwsArn::parse("arn:aws:iam::123456789012:role/team/ml/Builder").unwrap();
        assert_eq!(pathed.role(), Some("Builder"));
        assert_eq!(pathed.username().as_str(), "Builder");
    }

    #[test]
    fn iam_user_arn_has_no_role_and_never_matches_one() {
        let user = AwsArn::parse("arn:aws:iam::123456789012:user/bob").unwrap();
        assert_eq!(user.kind(), ArnKind::User);
        assert_eq!(user.role(), None);
        assert_eq!(user.username().as_str(), "bob");
        assert!(!user.role_matches("bob"));
        assert!(!user.role_matches(""));
    }

    #[test]
    fn china_and_govcloud_partitions_are_accepted() {
        let cn = AwsArn::parse("arn:aws-cn:sts::123456789012:assumed-role/R/s1").unwrap();
        assert_eq!(cn.partition(), "aws-cn");
        let gov = AwsArn::parse("arn:aws-us-gov:iam::123456789012:role/R").unwrap();
        assert_eq!(gov.partition(), "aws-us-gov");
    }

    #[test]
    fn role_matches_is_exact() {
        let arn = AwsArn::parse("arn:aws:sts::123456789012:assumed-role/GpuDev/alice").unwrap();
        assert!(arn.role_matches("GpuDev"));
        assert!(!arn.role_matches("gpudev"));
        assert!(!arn.role_matches("GpuDe"));
        assert!(!arn.role_matches("alice"));
        assert!(!arn.role_matches("GpuDev/alice"));
    }

    #[test]
    fn session_names_are_sanitized_into_usernames() {
        let arn = AwsArn::parse("arn:aws:sts::123456789012:assumed-role/R/a+b=c,d").unwrap();
        assert_eq!(arn.username().as_str(), "a-b-c-d");
    }

    #[test]
    fn malformed_strings_are_refused() {
        for bad in [
            "",
            "arn",
            "arn:aws:sts::123456789012",
            "urn:aws:sts::123456789012:assumed-role/R/s",
            "ARN:aws:sts::123456789012:assumed-role/R/s",
        ] {
            assert_eq!(AwsArn::parse(bad), Err(ArnError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn unknown_partitions_and_services_are_refused() {
        assert_eq!(
            AwsArn::parse("arn:aws-iso:iam::123456789012:role/R"),
            Err(ArnError::UnsupportedPartition("aws-iso".into()))
        );
        assert_eq!(
            AwsArn::parse("arn:aws:s3:::bucket/key"),
            Err(ArnError::UnsupportedService("s3".into()))
        );
    }

    #[test]
    fn regions_and_bad_accounts_are_refused() {
        assert_eq!(
            AwsArn::parse("arn:aws:sts:us-east-1:123456789012:assumed-role/R/s"),
            Err(ArnError::UnexpectedRegion)
        );
        for account in ["12345678901", "1234567890123", "12345678901a", ""] {
            let raw = format!("arn:aws:iam::{account}:role/R");
            assert_eq!(AwsArn::parse(&raw), Err(ArnError::BadAccount), "{raw}");
        }
    }

    #[test]
    fn other_resources_are_refused() {
        for bad in [
            "arn:aws:sts::123456789012:assumed-role/R",
            "arn:aws:sts::123456789012:assumed-role/R/s/extra",
            "arn:aws:sts::123456789012:assumed-role//s",
            "arn:aws:sts::123456789012:federated-user/bob",
            "arn:aws:sts::123456789012:role/R",
            "arn:aws:iam::123456789012:role",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role//R",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:iam::123456789012:group/devs",
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:assumed-role/R/s",
        ] {
            assert_eq!(
                AwsArn::parse(bad),
                Err(ArnError::UnsupportedResource),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_with_characters_iam_forbids_are_refused() {
        assert_eq!(
            AwsArn::parse("arn:aws:sts::123456789012:assumed-role/R/al ice"),
            Err(ArnError::InvalidCharacter(' '))
        );
        assert_eq!(
            AwsArn::parse("arn:aws:iam::123456789012:user/b:ob"),
            Err(ArnError::InvalidCharacter(':'))
        );
    }

    #[test]
    fn overlong_arns_are_refused() {
        let raw = format!("arn:aws:iam::123456789012:user/{}", "a".repeat(MAX_ARN_LEN));
        assert_eq!(AwsArn::parse(&raw), Err(ArnError::TooLong));
    }

    #[test]
    fn errors_read_as_sentences_naming_the_rule() {
        let msg = AwsArn::parse("arn:aws:iam::1:role/R")
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "AWS ARN account must be exactly 12 digits");
    }
}
