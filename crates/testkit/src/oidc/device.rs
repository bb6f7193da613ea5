//! The device authorization grant (RFC 8628) of the test issuer: codes, polls and decisions.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// What happens to a device code once the user has looked at it.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    /// The user has not decided yet.
    Pending,
    /// Approved: the token endpoint answers an ID token with these claims (over the defaults).
    Approved(Map<String, Value>),
    /// The user refused.
    Denied,
}

/// What the issuer does with the next device code it hands out.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// Approve it after the client has polled once.
    Approve(Map<String, Value>),
    /// Deny it after the client has polled once.
    Deny,
}

/// One device code.
#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    pub(crate) device_code: String,
    pub(crate) user_code: String,
    pub(crate) client_id: String,
    pub(crate) expires_at: Instant,
    pub(crate) interval: Duration,
    pub(crate) last_poll: Option<Instant>,
    pub(crate) polls: u32,
    pub(crate) decision: Decision,
    pub(crate) plan: Option<Plan>,
    pub(crate) redeemed: bool,
}

/// One poll of the token endpoint, as the issuer answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPoll {
    /// When it arrived.
    pub at: Instant,
    /// `id_token` for a success, else the OAuth error code (`authorization_pending`, …).
    pub answer: String,
}

/// Device flow settings and state.
#[derive(Debug)]
pub(crate) struct DeviceFlow {
    pub(crate) codes: Vec<DeviceCode>,
    pub(crate) plans: Vec<Plan>,
    pub(crate) interval: Duration,
    pub(crate) lifetime: Duration,
    pub(crate) slow_downs: u32,
    pub(crate) polls: Vec<TokenPoll>,
}

impl Default for DeviceFlow {
    fn default() -> Self {
        Self {
            codes: Vec::new(),
            plans: Vec::new(),
            interval: Duration::from_secs(1),
            lifetime: Duration::from_secs(60),
            slow_downs: 0,
            polls: Vec::new(),
        }
    }
}

/// What the token endpoint answers a device code poll.
pub(crate) enum PollAnswer {
    /// An error code.
    Error(&'static str),
    /// Mint an ID token with these claims over the defaults, for this client.
    Token(Map<String, Value>, String),
}

impl DeviceFlow {
    /// Hands out a new code; the oldest plan, if any, decides its fate.
    pub(crate) fn start(&mut self, client_id: &str, n: usize) -> DeviceCode {
        let plan = if self.plans.is_empty() {
            None
        } else {
            Some(self.plans.remove(0))
        };
        let code = DeviceCode {
            device_code: format!("device-{n}-{}", uuid::Uuid::new_v4().simple()),
            user_code: format!("WDJB-{n:04}"),
            client_id: client_id.to_owned(),
            expires_at: Instant::now() + self.lifetime,
            interval: self.interval,
            last_poll: None,
            polls: 0,
            decision: Decision::Pending,
            plan,
            redeemed: false,
        };
        self.codes.push(code.clone());
        code
    }

    /// Answers a poll for `device_code` by `client_id`.
    pub(crate) fn poll(&mut self, device_code: &str, client_id: &str) -> PollAnswer {
        let now = Instant::now();
        let answer = self.answer(device_code, client_id, now);
        self.polls.push(TokenPoll {
            at: now,
            answer: match &answer {
                PollAnswer::Error(e) => (*e).to_owned(),
                PollAnswer::Token(..) => "id_token".to_owned(),
            },
        });
        answer
    }

    fn answer(&mut self, device_code: &str, client_id: &str, now: Instant) -> PollAnswer {
        let slow_down = self.slow_downs > 0;
        let Some(code) = self
            .codes
            .iter_mut()
            .find(|c| c.device_code == device_code && c.client_id == client_id)
        else {
            return PollAnswer::Error("invalid_grant");
        };
        if code.redeemed {
            return PollAnswer::Error("invalid_grant");
        }
        if now >= code.expires_at {
            return PollAnswer::Error("expired_token");
        }
        let too_soon = code.last_poll.is_some_and(|last| {
            now.duration_since(last) + Duration::from_millis(50) < code.interval
        });
        code.last_poll = Some(now);
        code.polls += 1;
        if slow_down || too_soon {
            self.slow_downs = self.slow_downs.saturating_sub(1);
            // RFC 8628 §3.5: the client must add 5 seconds to its interval from now on.
            code.interval += Duration::from_secs(5);
            return PollAnswer::Error("slow_down");
        }
        if code.polls > 1
            && let Some(plan) = code.plan.take()
        {
            code.decision = match plan {
                Plan::Approve(claims) => Decision::Approved(claims),
                Plan::Deny => Decision::Denied,
            };
        }
        match &code.decision {
            Decision::Pending => PollAnswer::Error("authorization_pending"),
            Decision::Denied => PollAnswer::Error("access_denied"),
            Decision::Approved(claims) => {
                code.redeemed = true;
                PollAnswer::Token(claims.clone(), code.client_id.clone())
            }
        }
    }
}
