//! Reservation requests: the raw JSON body, its limits, and the checked form the rest of the
//! system works with.

use std::collections::BTreeMap;
use std::fmt;

use crate::disk::{DiskName, DiskNameError};
use crate::display_name::{DisplayName, DisplayNameError};
use crate::env::{EnvError, EnvVars};
use crate::github_user::{GithubUser, GithubUserError};
use crate::gpu::{GpuCatalog, GpuSpec, GpuType, UnknownGpuType};
use crate::image::{ImageError, ImageRef};

/// Shortest reservation or extension: five minutes.
pub const MIN_DURATION_SECONDS: i64 = 5 * 60;
/// Lowest and highest request priority.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -100..=100;

const SECONDS_PER_HOUR: f64 = 3600.0;

/// Operator-set bounds on what a user may request.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest single reservation or extension, in hours (default 24).
    pub max_duration_hours: f64,
    /// Longest total life of a reservation including all extensions, in hours (default 72).
    pub max_lifetime_hours: f64,
    /// Most whole nodes one multinode reservation may span (default 4).
    pub max_nodes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_duration_hours: 24.0,
            max_lifetime_hours: 72.0,
            max_nodes: 4,
        }
    }
}

/// Formats hours without float noise: `24`, `0.5`, `1.25`.
fn fmt_hours(hours: &f64) -> String {
    let s = format!("{hours:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Why a number of hours is refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum HoursError {
    /// NaN or infinite.
    #[error("duration must be a finite number of hours")]
    NotFinite,
    /// Below zero.
    #[error("duration must not be negative")]
    Negative,
    /// Shorter than five minutes.
    #[error("duration must be at least 5 minutes (0.0833 hours)")]
    TooShort,
    /// Longer than [`Limits::max_duration_hours`].
    #[error("duration must be at most {} hours", fmt_hours(.max_hours))]
    TooLong {
        /// The limit in force.
        max_hours: f64,
    },
}

/// A length of time in (possibly fractional) hours, between five minutes and
/// [`Limits::max_duration_hours`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
#[serde(transparent)]
pub struct Hours(f64);

impl Hours {
    /// Checks a requested number of hours against the five-minute floor and the limit.
    /// Bounds are compared after rounding to whole seconds, so `5.0 / 60.0` counts as five
    /// minutes.
    pub fn parse(hours: f64, limits: &Limits) -> Result<Self, HoursError> {
        if !hours.is_finite() {
            return Err(HoursError::NotFinite);
        }
        if hours < 0.0 {
            return Err(HoursError::Negative);
        }
        let seconds = (hours * SECONDS_PER_HOUR).round();
        if seconds < MIN_DURATION_SECONDS as f64 {
            return Err(HoursError::TooShort);
        }
        if seconds > (limits.max_duration_hours * SECONDS_PER_HOUR).round() {
            return Err(HoursError::TooLong {
                max_hours: limits.max_duration_hours,
            });
        }
        Ok(Self(hours))
    }

    /// The length in hours, as requested.
    pub fn as_hours(self) -> f64 {
        self.0
    }

    /// The length in whole seconds (rounded).
    pub fn as_seconds(self) -> i64 {
        // Bounded by the limits above, so the cast cannot saturate in practice.
        (self.0 * SECONDS_PER_HOUR).round() as i64
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} h", fmt_hours(&self.0))
    }
}

/// Why a reservation request (or an extension) is refused. [`RequestError::field`] names the
/// JSON field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// `gpu_type` is not in the catalog.
    #[error(transparent)]
    GpuType(#[from] UnknownGpuType),
    /// A CPU-only type was asked for with GPUs.
    #[error("gpu_count must be 0 for CPU-only type {gpu_type} (got {count})")]
    CpuTypeWithGpus {
        /// The CPU-only type.
        gpu_type: GpuType,
        /// The refused count.
        count: u32,
    },
    /// The GPU count does not fit on one node or on whole nodes.
    #[error("gpu_count {count} is not valid for {gpu_type}: {allowed}")]
    GpuCount {
        /// The GPU type asked for.
        gpu_type: GpuType,
        /// The refused count.
        count: u32,
        /// Which counts are valid, in words.
        allowed: String,
    },
    /// `duration_hours` is out of range.
    #[error(transparent)]
    Duration(HoursError),
    /// `extension_hours` is out of range.
    #[error("extension {0}")]
    Extension(HoursError),
    /// `image` is not a valid image reference.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// `env` breaks a rule.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// `disk_name` is not a valid disk name.
    #[error(transparent)]
    Disk(#[from] DiskNameError),
    /// `name` is not a valid display name.
    #[error(transparent)]
    Name(#[from] DisplayNameError),
    /// `github_user` is not a valid GitHub login.
    #[error(transparent)]
    GithubUser(#[from] GithubUserError),
    /// `priority` is outside [`PRIORITY_RANGE`].
    #[error("priority must be between -100 and 100 (got {0})")]
    Priority(i32),
    /// An extension would take the reservation past [`Limits::max_lifetime_hours`].
    #[error(
        "extension would make the reservation last {} hours in total, over the limit of {} \
         hours",
        fmt_hours(.total_hours),
        fmt_hours(.max_hours)
    )]
    LifetimeExceeded {
        /// Lifetime after the extension.
        total_hours: f64,
        /// The limit in force.
        max_hours: f64,
    },
}

impl RequestError {
    /// The request field at fault, as named in the JSON body.
    pub fn field(&self) -> &'static str {
        match self {
            Self::GpuType(_) => "gpu_type",
            Self::CpuTypeWithGpus { .. } | Self::GpuCount { .. } => "gpu_count",
            Self::Duration(_) => "duration_hours",
            Self::Extension(_) | Self::LifetimeExceeded { .. } => "extension_hours",
            Self::Image(_) => "image",
            Self::Env(_) => "env",
            Self::Disk(_) => "disk_name",
            Self::Name(_) => "name",
            Self::GithubUser(_) => "github_user",
            Self::Priority(_) => "priority",
        }
    }
}

/// Checks a GPU count against a type and returns how many whole nodes it spans.
///
/// A type with `G > 0` GPUs per node takes 1 to `G` GPUs on one node or, when it is multinode,
/// `k * G` GPUs on `k` whole nodes for `2 <= k <= max_nodes`. CPU-only types take 0 (one node).
pub fn nodes_for(spec: &GpuSpec, gpu_count: u32, limits: &Limits) -> Result<u32, RequestError> {
    let per_node = spec.gpus_per_node;
    if per_node == 0 {
        return if gpu_count == 0 {
            Ok(1)
        } else {
            Err(RequestError::CpuTypeWithGpus {
                gpu_type: spec.name.clone(),
                count: gpu_count,
            })
        };
    }
    if (1..=per_node).contains(&gpu_count) {
        return Ok(1);
    }
    let multinode = spec.multinode && limits.max_nodes >= 2;
    if multinode && gpu_count.is_multiple_of(per_node) {
        let nodes = gpu_count / per_node;
        if (2..=limits.max_nodes).contains(&nodes) {
            return Ok(nodes);
        }
    }
    let allowed = if multinode {
        format!(
            "use 1 to {per_node} GPUs on one node, or a multiple of {per_node} from {} to {} \
             on 2 to {} whole nodes",
            per_node.saturating_mul(2),
            per_node.saturating_mul(limits.max_nodes),
            limits.max_nodes
        )
    } else {
        format!("use 1 to {per_node} GPUs (it runs on a single node)")
    };
    Err(RequestError::GpuCount {
        gpu_type: spec.name.clone(),
        count: gpu_count,
        allowed,
    })
}

/// Checks that adding `extension` to a reservation that has already been booked for
/// `current_lifetime_hours` (its original duration plus earlier extensions) stays within
/// [`Limits::max_lifetime_hours`].
pub fn check_extension(
    current_lifetime_hours: f64,
    extension: Hours,
    limits: &Limits,
) -> Result<(), RequestError> {
    let total_hours = current_lifetime_hours + extension.as_hours();
    let total_seconds = (total_hours * SECONDS_PER_HOUR).round();
    let max_seconds = (limits.max_lifetime_hours * SECONDS_PER_HOUR).round();
    // Written so that a NaN or negative current lifetime is refused rather than let through.
    let within = current_lifetime_hours >= 0.0 && total_seconds <= max_seconds;
    if within {
        Ok(())
    } else {
        Err(RequestError::LifetimeExceeded {
            total_hours,
            max_hours: limits.max_lifetime_hours,
        })
    }
}

/// A reservation request as received (the JSON body of `POST /v1/reservations`), unchecked.
///
/// `Debug` shows environment variable names only.
#[derive(Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawReservationRequest {
    /// GPU type name, any case (`h100`).
    pub gpu_type: String,
    /// GPUs wanted (0 for CPU-only types).
    pub gpu_count: u32,
    /// Requested length in hours.
    pub duration_hours: f64,
    /// Container image; the platform default when absent.
    #[serde(default)]
    pub image: Option<String>,
    /// Environment variables for the dev box (secret values).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Persistent disk to mount as home.
    #[serde(default)]
    pub disk_name: Option<String>,
    /// Display name of the reservation.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether to start Jupyter.
    #[serde(default)]
    pub jupyter: bool,
    /// GitHub login whose public SSH keys are installed.
    #[serde(default)]
    pub github_user: Option<String>,
    /// Queue priority, -100 to 100.
    #[serde(default)]
    pub priority: i32,
}

impl fmt::Debug for RawReservationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawReservationRequest")
            .field("gpu_type", &self.gpu_type)
            .field("gpu_count", &self.gpu_count)
            .field("duration_hours", &self.duration_hours)
            .field("image", &self.image)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("disk_name", &self.disk_name)
            .field("name", &self.name)
            .field("jupyter", &self.jupyter)
            .field("github_user", &self.github_user)
            .field("priority", &self.priority)
            .finish()
    }
}

/// A checked reservation request. Every field obeys its rule; nothing downstream re-checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRequest {
    gpu: GpuSpec,
    gpu_count: u32,
    nodes: u32,
    duration: Hours,
    image: Option<ImageRef>,
    env: EnvVars,
    disk: Option<DiskName>,
    name: Option<DisplayName>,
    jupyter: bool,
    github_user: Option<GithubUser>,
    priority: i32,
}

impl ReservationRequest {
    /// Checks a raw request against the catalog and the limits; the first broken rule is
    /// reported.
    pub fn new(
        catalog: &GpuCatalog,
        limits: &Limits,
        raw: RawReservationRequest,
    ) -> Result<Self, RequestError> {
        let gpu = catalog.lookup(&raw.gpu_type)?.clone();
        let nodes = nodes_for(&gpu, raw.gpu_count, limits)?;
        let duration = Hours::parse(raw.duration_hours, limits).map_err(RequestError::Duration)?;
        let image = raw.image.as_deref().map(ImageRef::parse).transpose()?;
        let env = EnvVars::parse(raw.env)?;
        let disk = raw.disk_name.as_deref().map(DiskName::parse).transpose()?;
        let name = raw.name.as_deref().map(DisplayName::parse).transpose()?;
        let github_user = raw
            .github_user
            .as_deref()
            .map(GithubUser::parse)
            .transpose()?;
        if !PRIORITY_RANGE.contains(&raw.priority) {
            return Err(RequestError::Priority(raw.priority));
        }
        Ok(Self {
            gpu,
            gpu_count: raw.gpu_count,
            nodes,
            duration,
            image,
            env,
            disk,
            name,
            jupyter: raw.jupyter,
            github_user,
            priority: raw.priority,
        })
    }

    /// The catalog entry of the requested type.
    pub fn gpu(&self) -> &GpuSpec {
        &self.gpu
    }

    /// The requested GPU type's name (canonical lower case, whatever case was sent).
    pub fn gpu_type(&self) -> &GpuType {
        &self.gpu.name
    }

    /// Total GPUs across all nodes (0 for CPU-only types).
    pub fn gpu_count(&self) -> u32 {
        self.gpu_count
    }

    /// Whole nodes the reservation spans (1 unless it is a multinode request).
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// GPUs on each node (`gpu_count / nodes`).
    pub fn gpus_per_node(&self) -> u32 {
        self.gpu_count / self.nodes.max(1)
    }

    /// The requested length.
    pub fn duration(&self) -> Hours {
        self.duration
    }

    /// The requested image, if one was given.
    pub fn image(&self) -> Option<&ImageRef> {
        self.image.as_ref()
    }

    /// The environment variables (possibly empty).
    pub fn env(&self) -> &EnvVars {
        &self.env
    }

    /// The persistent disk to mount, if any.
    pub fn disk(&self) -> Option<&DiskName> {
        self.disk.as_ref()
    }

    /// The display name, if any.
    pub fn name(&self) -> Option<&DisplayName> {
        self.name.as_ref()
    }

    /// Whether Jupyter should run.
    pub fn jupyter(&self) -> bool {
        self.jupyter
    }

    /// The GitHub login for SSH keys, if any.
    pub fn github_user(&self) -> Option<&GithubUser> {
        self.github_user.as_ref()
    }

    /// Queue priority, -100 to 100 (higher first).
    pub fn priority(&self) -> i32 {
        self.priority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(gpu_type: &str, gpu_count: u32, duration_hours: f64) -> RawReservationRequest {
        RawReservationRequest {
            gpu_type: gpu_type.into(),
            gpu_count,
            duration_hours,
            ..RawReservationRequest::default()
        }
    }

    fn check(r: RawReservationRequest) -> Result<ReservationRequest, RequestError> {
        ReservationRequest::new(&GpuCatalog::default(), &Limits::default(), r)
    }

    fn field_of(r: RawReservationRequest) -> &'static str {
        check(r).unwrap_err().field()
    }

    #[test]
    fn default_limits_are_24h_72h_and_4_nodes() {
        let l = Limits::default();
        assert_eq!(
            (l.max_duration_hours, l.max_lifetime_hours, l.max_nodes),
            (24.0, 72.0, 4)
        );
        let partial: Limits = serde_json::from_str(r#"{"max_nodes": 2}"#).unwrap();
        assert_eq!(partial.max_nodes, 2);
        assert_eq!(partial.max_duration_hours, 24.0);
    }

    #[test]
    fn hours_accept_five_minutes_to_the_limit() {
        let l = Limits::default();
        assert_eq!(Hours::parse(1.0 / 12.0, &l).map(Hours::as_seconds), Ok(300));
        assert_eq!(Hours::parse(0.0833, &l).map(Hours::as_seconds), Ok(300));
        assert_eq!(Hours::parse(24.0, &l).map(Hours::as_seconds), Ok(86_400));
        assert_eq!(Hours::parse(1.5, &l).map(Hours::as_hours), Ok(1.5));
    }

    #[test]
    fn hours_refuse_nan_infinity_negative_too_short_and_too_long() {
        let l = Limits::default();
        assert_eq!(Hours::parse(f64::NAN, &l), Err(HoursError::NotFinite));
        assert_eq!(Hours::parse(f64::INFINITY, &l), Err(HoursError::NotFinite));
        assert_eq!(
            Hours::parse(f64::NEG_INFINITY, &l),
            Err(HoursError::NotFinite)
        );
        assert_eq!(Hours::parse(-1.0, &l), Err(HoursError::Negative));
        assert_eq!(Hours::parse(0.0, &l), Err(HoursError::TooShort));
        assert_eq!(Hours::parse(4.0 / 60.0, &l), Err(HoursError::TooShort));
        assert_eq!(
            Hours::parse(24.01, &l),
            Err(HoursError::TooLong { max_hours: 24.0 })
        );
        assert_eq!(
            Hours::parse(25.0, &l).unwrap_err().to_string(),
            "duration must be at most 24 hours"
        );
        let tight = Limits {
            max_duration_hours: 0.5,
            ..l
        };
        assert_eq!(
            Hours::parse(1.0, &tight).unwrap_err().to_string(),
            "duration must be at most 0.5 hours"
        );
    }

    #[test]
    fn a_complete_request_is_accepted_with_every_field_available() {
        let mut r = raw("H100", 16, 2.5);
        r.image = Some("nvcr.io/nvidia/pytorch:24.01-py3".into());
        r.env = [("WANDB_API_KEY".to_owned(), "secret".to_owned())].into();
        r.disk_name = Some("home".into());
        r.name = Some("llm finetune".into());
        r.jupyter = true;
        r.github_user = Some("octocat".into());
        r.priority = -5;
        let req = check(r).unwrap();
        assert_eq!(req.gpu_type().as_str(), "h100");
        assert_eq!(req.gpu().instance_type, "p5.48xlarge");
        assert_eq!(
            (req.gpu_count(), req.nodes(), req.gpus_per_node()),
            (16, 2, 8)
        );
        assert_eq!(req.duration().as_seconds(), 9_000);
        assert_eq!(
            req.image().map(ImageRef::as_str),
            Some("nvcr.io/nvidia/pytorch:24.01-py3")
        );
        assert_eq!(
            req.env().iter().collect::<Vec<_>>(),
            [("WANDB_API_KEY", "secret")]
        );
        assert_eq!(req.disk().map(DiskName::as_str), Some("home"));
        assert_eq!(req.name().map(DisplayName::as_str), Some("llm finetune"));
        assert!(req.jupyter());
        assert_eq!(req.github_user().map(GithubUser::as_str), Some("octocat"));
        assert_eq!(req.priority(), -5);
    }

    #[test]
    fn a_minimal_json_body_gets_the_defaults() {
        let r: RawReservationRequest =
            serde_json::from_str(r#"{"gpu_type":"t4","gpu_count":1,"duration_hours":1}"#).unwrap();
        let req = check(r).unwrap();
        assert_eq!(req.nodes(), 1);
        assert!(req.env().is_empty());
        assert!(req.image().is_none() && req.disk().is_none() && req.name().is_none());
        assert!(!req.jupyter());
        assert_eq!(req.priority(), 0);
    }

    #[test]
    fn single_node_counts_from_one_to_gpus_per_node_are_accepted() {
        for count in 1..=4 {
            assert_eq!(
                check(raw("t4", count, 1.0)).map(|r| r.nodes()),
                Ok(1),
                "t4 x{count}"
            );
        }
        for count in 1..=8 {
            assert_eq!(check(raw("a100", count, 1.0)).map(|r| r.nodes()), Ok(1));
        }
    }

    #[test]
    fn multinode_counts_are_whole_nodes_up_to_max_nodes() {
        for (count, nodes) in [(16, 2), (24, 3), (32, 4)] {
            assert_eq!(check(raw("b200", count, 1.0)).map(|r| r.nodes()), Ok(nodes));
        }
        for count in [0, 9, 12, 40, 64] {
            assert_eq!(
                field_of(raw("h100", count, 1.0)),
                "gpu_count",
                "h100 x{count}"
            );
        }
        let err = check(raw("h100", 12, 1.0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gpu_count 12 is not valid for h100: use 1 to 8 GPUs on one node, or a multiple \
             of 8 from 16 to 32 on 2 to 4 whole nodes"
        );
    }

    #[test]
    fn max_nodes_of_one_turns_multinode_off() {
        let limits = Limits {
            max_nodes: 1,
            ..Limits::default()
        };
        let h100 = GpuCatalog::default().lookup("h100").unwrap().clone();
        assert_eq!(nodes_for(&h100, 8, &limits), Ok(1));
        assert!(nodes_for(&h100, 16, &limits).is_err());
    }

    #[test]
    fn single_node_types_refuse_more_than_one_node() {
        let err = check(raw("t4", 8, 1.0)).unwrap_err();
        assert_eq!(err.field(), "gpu_count");
        assert_eq!(
            err.to_string(),
            "gpu_count 8 is not valid for t4: use 1 to 4 GPUs (it runs on a single node)"
        );
        assert_eq!(field_of(raw("l4", 0, 1.0)), "gpu_count");
    }

    #[test]
    fn cpu_types_take_zero_gpus() {
        assert_eq!(check(raw("cpu-x86", 0, 1.0)).map(|r| r.nodes()), Ok(1));
        let err = check(raw("cpu-arm", 1, 1.0)).unwrap_err();
        assert_eq!(err.field(), "gpu_count");
        assert_eq!(
            err.to_string(),
            "gpu_count must be 0 for CPU-only type cpu-arm (got 1)"
        );
    }

    #[test]
    fn unknown_gpu_types_are_refused_naming_the_field() {
        let err = check(raw("v100", 1, 1.0)).unwrap_err();
        assert_eq!(err.field(), "gpu_type");
        assert!(
            err.to_string().starts_with("unknown GPU type \"v100\""),
            "{err}"
        );
    }

    #[test]
    fn each_bad_field_is_reported_by_name() {
        assert_eq!(field_of(raw("t4", 1, 0.0)), "duration_hours");
        assert_eq!(field_of(raw("t4", 1, 100.0)), "duration_hours");

        let mut r = raw("t4", 1, 1.0);
        r.image = Some("UPPER/case".into());
        assert_eq!(field_of(r), "image");

        let mut r = raw("t4", 1, 1.0);
        r.env = [("1BAD".to_owned(), "v".to_owned())].into();
        assert_eq!(field_of(r), "env");

        let mut r = raw("t4", 1, 1.0);
        r.disk_name = Some("my disk".into());
        assert_eq!(field_of(r), "disk_name");

        let mut r = raw("t4", 1, 1.0);
        r.name = Some("a\u{7}".into());
        assert_eq!(field_of(r), "name");

        let mut r = raw("t4", 1, 1.0);
        r.name = Some("n".repeat(64));
        assert_eq!(field_of(r), "name");

        let mut r = raw("t4", 1, 1.0);
        r.github_user = Some("-octo".into());
        assert_eq!(field_of(r), "github_user");
    }

    #[test]
    fn priority_must_be_within_plus_or_minus_100() {
        for ok in [-100, 0, 100] {
            let mut r = raw("t4", 1, 1.0);
            r.priority = ok;
            assert_eq!(check(r).map(|q| q.priority()), Ok(ok));
        }
        for bad in [-101, 101, i32::MAX] {
            let mut r = raw("t4", 1, 1.0);
            r.priority = bad;
            assert_eq!(check(r), Err(RequestError::Priority(bad)));
        }
    }

    #[test]
    fn configured_limits_apply_to_duration() {
        let limits = Limits {
            max_duration_hours: 2.0,
            ..Limits::default()
        };
        let catalog = GpuCatalog::default();
        assert!(ReservationRequest::new(&catalog, &limits, raw("t4", 1, 2.0)).is_ok());
        let err = ReservationRequest::new(&catalog, &limits, raw("t4", 1, 3.0)).unwrap_err();
        assert_eq!(
            err,
            RequestError::Duration(HoursError::TooLong { max_hours: 2.0 })
        );
    }

    #[test]
    fn extensions_may_reach_but_not_pass_the_lifetime_cap() {
        let l = Limits::default();
        let ext = |h: f64| Hours::parse(h, &l).unwrap();
        assert_eq!(check_extension(48.0, ext(24.0), &l), Ok(()));
        assert_eq!(check_extension(70.0, ext(2.0), &l), Ok(()));
        let err = check_extension(70.0, ext(3.0), &l).unwrap_err();
        assert_eq!(err.field(), "extension_hours");
        assert_eq!(
            err.to_string(),
            "extension would make the reservation last 73 hours in total, over the limit of \
             72 hours"
        );
        assert!(check_extension(f64::NAN, ext(1.0), &l).is_err());
        assert!(check_extension(-100.0, ext(1.0), &l).is_err());
    }

    #[test]
    fn extension_hours_errors_name_their_field() {
        let err = RequestError::Extension(HoursError::TooShort);
        assert_eq!(err.field(), "extension_hours");
        assert_eq!(
            err.to_string(),
            "extension duration must be at least 5 minutes (0.0833 hours)"
        );
    }

    #[test]
    fn debug_of_a_raw_request_hides_env_values() {
        let mut r = raw("t4", 1, 1.0);
        r.env = [("HF_TOKEN".to_owned(), "hf_supersecret".to_owned())].into();
        let shown = format!("{r:?}");
        assert!(shown.contains("HF_TOKEN"), "{shown}");
        assert!(!shown.contains("supersecret"), "{shown}");
        let parsed = check(r).unwrap();
        assert!(!format!("{parsed:?}").contains("supersecret"));
    }
}
