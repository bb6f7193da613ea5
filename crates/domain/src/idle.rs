//! Idle dev boxes (ADR 18): when a box counts as idle, for how long, and what a user may ask.

use std::time::Duration;

/// How often a dev box's agent reports.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// A gap between two reports longer than this breaks an idle stretch (the next idle report
/// starts a new one), and an agent that has not reported for this long is silent. A silent box
/// is never released as idle for that alone.
pub const SILENT_AFTER: Duration = Duration::from_secs(5 * 60);

/// The idle policy from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePolicy {
    /// `IDLE_MINUTES`: idle minutes after which a box is released; 0 turns the feature off.
    pub minutes: u32,
    /// `IDLE_MAX_MINUTES`: the longest idle limit a user (not an admin) may ask for.
    pub max_user_minutes: u32,
    /// `IDLE_GPU_PERCENT`: a GPU at or above this utilisation is in use.
    pub gpu_percent: u32,
    /// `IDLE_WARNING_MINUTES`: how long before releasing an idle box its user is warned.
    pub warning_minutes: u32,
}

/// Why an asked-for idle limit is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdleLimitError {
    /// Shorter than the platform's limit.
    #[error("idle_minutes must be at least {0} (the platform's idle limit)")]
    BelowDefault(u32),
    /// Longer than users may ask for.
    #[error("idle_minutes must be at most {0} (only admins may ask for more, or 0 for never)")]
    AboveCap(u32),
    /// Idle detection is off on this platform, so a limit would be ignored.
    #[error("idle detection is off on this platform (IDLE_MINUTES=0); leave idle_minutes out")]
    Off,
}

impl IdlePolicy {
    /// Whether boxes are released when idle at all.
    pub fn enabled(&self) -> bool {
        self.minutes > 0
    }

    /// Checks an idle limit asked for at submit: at least the platform's, at most the users'
    /// cap; admins may ask for any, 0 meaning never.
    pub fn check_request(&self, asked: u32, admin: bool) -> Result<u32, IdleLimitError> {
        if !self.enabled() {
            return Err(IdleLimitError::Off);
        }
        if admin {
            return Ok(asked);
        }
        if asked < self.minutes {
            return Err(IdleLimitError::BelowDefault(self.minutes));
        }
        if asked > self.max_user_minutes.max(self.minutes) {
            return Err(IdleLimitError::AboveCap(
                self.max_user_minutes.max(self.minutes),
            ));
        }
        Ok(asked)
    }

    /// The idle limit in effect for a reservation that asked for `asked` (none: the platform's);
    /// `None` when it is never released as idle.
    pub fn limit_for(&self, asked: Option<i32>) -> Option<u32> {
        if !self.enabled() {
            return None;
        }
        match asked {
            None => Some(self.minutes),
            Some(m) => u32::try_from(m).ok().filter(|m| *m > 0),
        }
    }

    /// How long before the release the warning goes out, for a limit of `limit` minutes: the
    /// setting, but never more than half the limit.
    pub fn warning_for(&self, limit: u32) -> u32 {
        self.warning_minutes.min(limit / 2).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: IdlePolicy = IdlePolicy {
        minutes: 60,
        max_user_minutes: 480,
        gpu_percent: 5,
        warning_minutes: 15,
    };

    #[test]
    fn users_ask_between_the_platform_limit_and_the_cap_admins_for_anything() {
        let p = POLICY;
        assert_eq!(p.check_request(120, false), Ok(120));
        assert_eq!(
            p.check_request(30, false),
            Err(IdleLimitError::BelowDefault(60))
        );
        assert_eq!(
            p.check_request(481, false),
            Err(IdleLimitError::AboveCap(480))
        );
        assert_eq!(p.check_request(0, true), Ok(0));
        assert_eq!(p.check_request(5000, true), Ok(5000));
        let off = IdlePolicy { minutes: 0, ..p };
        assert_eq!(off.check_request(120, true), Err(IdleLimitError::Off));
    }

    #[test]
    fn the_limit_in_effect() {
        let p = POLICY;
        assert_eq!(p.limit_for(None), Some(60));
        assert_eq!(p.limit_for(Some(90)), Some(90));
        assert_eq!(p.limit_for(Some(0)), None);
        assert_eq!(IdlePolicy { minutes: 0, ..p }.limit_for(Some(90)), None);
        assert_eq!(p.warning_for(60), 15);
        assert_eq!(p.warning_for(20), 10);
        assert_eq!(p.warning_for(1), 1);
    }
}
