//! The protocol facts a topic records for whoever runs the Hub (issue 17): who subscribed to
//! what, which event went out to whom, who answered what and how fast, who timed out, which
//! SyncError followed. When a radiologist says "the viewer showed the previous patient at
//! 10:32", these are what the operator reads (`GET {hub}/{topic}/timeline`, the inspector),
//! and what the audit trail ([`crate::audit`]) is made from.
//!
//! References, never bodies: a fact names an anchor as `Patient/123`, never a resource's
//! content, and never the free text an app put into a SyncError it sent (it may name the
//! patient). The Hub's own diagnostics (built from subscriber names and event ids) are kept.
//!
//! The core only collects facts while [`super::HubConfig::record`] is on; the shell takes
//! them after each input ([`super::Topic::take_facts`]), stores them (bounded) and sends the
//! audit events, only once the input's own writes are durable.

use serde::Serialize;

use super::{Auth, Topic};
use crate::catalog::EventName;
use crate::time::Timestamp;

/// The most characters of a refusal's reason kept (the Hub's own messages are shorter; a
/// reason quoting a long id is cut).
const REASON_CHARS: usize = 300;

/// One fact, at one time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fact {
    /// When it happened (the `now` of the input).
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub what: FactKind,
}

/// Who asked, from the verified access token: its subject and its client. Absent on a hub
/// run without authorization, and for what the Hub did on its own (a timeout, an expiry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Who {
    /// The token's `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The token's `client_id` (or `azp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl Who {
    pub(crate) fn of(auth: &Auth) -> Option<Who> {
        (auth.subject.is_some() || auth.client.is_some())
            .then(|| Who { subject: auth.subject.clone(), client: auth.client.clone() })
    }
}

/// Why a SyncError was raised: what metrics count them by (issue 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncErrorCause {
    /// A subscriber answered 4xx (409: it refused to follow).
    Refused,
    /// A subscriber answered 413 (req 96).
    TooLong,
    /// A subscriber answered something else (5xx, …).
    Failed,
    /// A subscriber did not answer in time, or owed too many answers.
    Unresponsive,
    /// A subscriber's socket closed abnormally.
    ConnectionLost,
    /// An app sent it (it accepted, then could not follow; req 75).
    App,
}

impl SyncErrorCause {
    /// The cause of a failed answer with `status`.
    pub(crate) fn of_status(status: u16) -> SyncErrorCause {
        match status {
            413 => SyncErrorCause::TooLong,
            400..=499 => SyncErrorCause::Refused,
            _ => SyncErrorCause::Failed,
        }
    }

    /// Its name in facts and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncErrorCause::Refused => "refused",
            SyncErrorCause::TooLong => "too-long",
            SyncErrorCause::Failed => "failed",
            SyncErrorCause::Unresponsive => "unresponsive",
            SyncErrorCause::ConnectionLost => "connection-lost",
            SyncErrorCause::App => "app",
        }
    }
}

/// What happened. Serialised with `"fact": "<kind>"` and camelCase fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum FactKind {
    /// A subscription was created, or renewed with these events (req 24-43).
    Subscribed {
        /// Its name (`subscriber.name`, else "unnamed subscriber #n").
        subscriber: String,
        /// The events granted.
        events: Vec<EventName>,
        /// The lease granted, in seconds.
        lease_seconds: u64,
        /// A re-subscribe of an existing subscription (req 35).
        renewed: bool,
        /// Who asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<Who>,
    },
    /// A subscribe or unsubscribe was refused.
    SubscribeRefused {
        /// The HTTP status answered.
        status: u16,
        /// Why.
        reason: String,
        /// Who asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<Who>,
    },
    /// A subscriber's WebSocket connected and was confirmed (req 43).
    Connected {
        /// The subscriber.
        subscriber: String,
    },
    /// A subscription ended: `reason` is "unsubscribed", "lease expired", "never connected",
    /// "unresponsive: …" or "connection closed".
    Unsubscribed {
        /// The subscriber.
        subscriber: String,
        /// Why it ended.
        reason: String,
        /// Who asked, for an unsubscribe request.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<Who>,
    },
    /// A subscriber's socket closed (req 85-86); codes other than 1000/1001 lead to a
    /// SyncError.
    Closed {
        /// The subscriber.
        subscriber: String,
        /// The WebSocket close code.
        code: u16,
    },
    /// An event request was accepted (req 78).
    Event {
        /// Its id.
        id: String,
        /// Its name.
        event: EventName,
        /// Its anchor, as a reference (`Patient/123`).
        #[serde(skip_serializing_if = "Option::is_none")]
        anchor: Option<String>,
        /// The anchor's version after it (opens and updates).
        #[serde(skip_serializing_if = "Option::is_none")]
        version_id: Option<String>,
        /// A retry of an event already accepted: nothing was sent again (req 139).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
        /// Who sent it.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<Who>,
    },
    /// An event request was refused; nothing of it was applied or sent.
    EventRefused {
        /// Its id.
        id: String,
        /// Its name.
        event: EventName,
        /// The HTTP status answered.
        status: u16,
        /// Why (the answer's message, at most 300 characters).
        reason: String,
        /// Who sent it.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<Who>,
    },
    /// Notifications went out: the event `id` to the subscribers named, each now owing an
    /// answer (one fact per fan-out, not per recipient).
    Notified {
        /// The notification's id.
        id: String,
        /// Its event.
        event: EventName,
        /// The recipients.
        to: Vec<String>,
        /// For an event the Hub derived (req 97): the id of the event it was derived from.
        #[serde(skip_serializing_if = "Option::is_none")]
        derived_from: Option<String>,
    },
    /// A subscriber answered a notification (req 70).
    Answered {
        /// The subscriber.
        subscriber: String,
        /// The notification's id.
        id: String,
        /// Its event.
        event: EventName,
        /// The status answered: 200 followed, 202 deciding, 409 refused, …
        status: u16,
        /// From the notification to the answer, in milliseconds.
        latency_ms: u64,
    },
    /// A subscriber did not answer in time (req 85); it is unsubscribed.
    TimedOut {
        /// The subscriber.
        subscriber: String,
        /// The notification's id.
        id: String,
        /// Its event.
        event: EventName,
    },
    /// A SyncError: generated by the Hub about a subscriber, or sent by one (req 84-96).
    SyncError {
        /// The SyncError event's id.
        id: String,
        /// The event it is about: id …
        about_id: String,
        /// … and name.
        about_event: EventName,
        /// The subscriber that did not follow.
        subscriber: String,
        /// "hub" when the Hub generated it, "subscriber" when an app sent it.
        source: &'static str,
        /// Why.
        cause: SyncErrorCause,
        /// The Hub's diagnostics (absent for an app's SyncError: its text is the app's).
        #[serde(skip_serializing_if = "Option::is_none")]
        diagnostics: Option<String>,
    },
}

impl FactKind {
    /// The refusal's reason as recorded: at most [`REASON_CHARS`] characters.
    pub(crate) fn reason(text: impl std::fmt::Display) -> String {
        let s = text.to_string();
        match s.char_indices().nth(REASON_CHARS) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s,
        }
    }
}

impl Topic {
    /// The facts recorded since the last call, oldest first (empty unless
    /// [`super::HubConfig::record`] is on).
    pub fn take_facts(&mut self) -> Vec<Fact> {
        std::mem::take(&mut self.facts)
    }

    pub(crate) fn recording(&self) -> bool {
        self.config.record
    }

    pub(crate) fn record(&mut self, now: Timestamp, what: FactKind) {
        if self.config.record {
            self.facts.push(Fact { at: now, what });
        }
    }

    /// Records that notification `id` went to `subscriber`: added to the last fact when that
    /// is the same fan-out, so a fan-out to N subscribers is one fact.
    pub(crate) fn record_sent(
        &mut self,
        now: Timestamp,
        id: &str,
        event: &EventName,
        subscriber: String,
        derived_from: Option<&str>,
    ) {
        if !self.config.record {
            return;
        }
        if let Some(Fact { what: FactKind::Notified { id: last, to, .. }, .. }) = self.facts.last_mut() {
            if last == id {
                to.push(subscriber);
                return;
            }
        }
        let what = FactKind::Notified {
            id: id.to_owned(),
            event: event.clone(),
            to: vec![subscriber],
            derived_from: derived_from.map(str::to_owned),
        };
        self.facts.push(Fact { at: now, what });
    }
}
