//! Answers to notifications, deadlines, and the SyncErrors they lead to (req 70-75, 84-96,
//! 56, 133).

use std::sync::Arc;

use super::timeline::{FactKind, SyncErrorCause};
use super::{Outbound, Topic};
use crate::catalog::{EventKind, EventName};
use crate::event::Event;
use crate::syncerror::{IssueCode, Severity, SyncErrorDetails};
use crate::time::Timestamp;
use crate::wire::{Ack, AckError, ContextEntry, ValueField};

impl Topic {
    /// A text message from a subscriber's socket. Anything that is not an ack, and acks for
    /// unknown ids, are ignored (neg 24: never close for it); the error says why, for logs.
    pub fn handle_message(&mut self, token: &str, text: &str, now: Timestamp) -> Result<(), AckError> {
        let ack = Ack::parse(text)?;
        self.handle_ack(token, &ack, now);
        Ok(())
    }

    /// An answer to a notification (req 70-72). A 2xx settles it (202 means the subscriber
    /// may still refuse with a SyncError of its own, req 75). Any other status makes the Hub
    /// send a SyncError to the other subscribers of `SyncError` (req 72, 84, 88, 95), named
    /// after the refusing subscriber; a 413 is reported with `too-long` (req 96).
    ///
    /// Decision: a failed answer to a SyncError notification raises no further SyncError, so
    /// one broken app cannot start a storm.
    pub fn handle_ack(&mut self, token: &str, ack: &Ack, now: Timestamp) {
        let recording = self.recording();
        // Sent at the deadline less the ack timeout (the timeout is a setting: a restart with
        // another one skews the latencies of answers owed across it).
        let ack_timeout_ms = self.config.ack_timeout.as_millis() as i64;
        let Some(sub) = self.state.subscriptions.get_mut(token) else { return };
        let Some(i) = sub.pending.iter().position(|p| *p.id == *ack.id) else { return };
        let p = sub.pending.remove(i);
        sub.last_answer = Some(super::state::Answer { id: p.id.clone(), event: p.event.clone(), status: ack.status });
        // Built here, from the subscription in hand (one lookup per answer, N per event).
        let answered = recording.then(|| {
            let sent_ms = p.deadline.unix_millis() - ack_timeout_ms;
            FactKind::Answered {
                subscriber: sub.display_name(),
                id: p.id.to_string(),
                event: p.event.clone(),
                status: ack.status,
                latency_ms: (now.unix_millis() - sent_ms).max(0) as u64,
            }
        });
        let settled = ack.is_success() || p.event.kind() == EventKind::SyncError;
        if let Some(what) = answered {
            self.record(now, what);
        }
        if settled {
            return;
        }
        let sub = self.state.subscriptions.get_mut(token).expect("found above");
        if matches!(p.event.kind(), EventKind::Open | EventKind::Close | EventKind::HomeOpen | EventKind::UserLogout) {
            sub.view_refused = true;
        }
        let name = sub.display_name();
        let what = describe(&p);
        let diagnostics = match ack.status {
            409 => format!("{name} refused to follow {what} (409 Conflict)"),
            413 => format!("{name} could not handle {what}: too large (413)"),
            s @ 400..=499 => format!("{name} rejected {what} ({s})"),
            s => format!("{name} failed to process {what} ({s})"),
        };
        let (id, event) = p.about();
        self.send_sync_error(id, event, &name, diagnostics, SyncErrorCause::of_status(ack.status), Some(token), now);
    }

    /// Runs whatever is due at `now` (see [`Topic::poll_timeout`]):
    /// - an endpoint never connected expires silently (§5a-3);
    /// - a lease that ran out ends with a denial and a close (req 56, neg 27);
    /// - a notification not answered within the ack timeout (10 s) sends a SyncError to the
    ///   others and then unsubscribes the silent subscriber (req 85, 87: after N = 1);
    /// - a legacy heartbeat, when enabled.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let expired: Vec<String> =
            self.state.subscriptions.values().filter(|s| s.deadline() <= now).map(|s| s.endpoint.clone()).collect();
        for token in expired {
            let sub = self.state.subscriptions.remove(&token).expect("listed above");
            let reason = if sub.is_connected() { "lease expired" } else { "never connected" };
            self.record(
                now,
                FactKind::Unsubscribed { subscriber: sub.display_name(), reason: reason.into(), by: None },
            );
            self.deny(&sub, "lease expired");
        }
        // Every silent subscriber is dropped before any SyncError about one of them goes out,
        // so none is sent a SyncError (and made to owe an answer) in the instant it is dropped.
        let silent: Vec<String> = self
            .state
            .subscriptions
            .values()
            .filter(|s| s.pending.iter().any(|p| p.deadline <= now))
            .map(|s| s.endpoint.clone())
            .collect();
        if self.recording() {
            for token in &silent {
                let sub = &self.state.subscriptions[token];
                let late: Vec<_> = sub
                    .pending
                    .iter()
                    .filter(|p| p.deadline <= now)
                    .map(|p| FactKind::TimedOut {
                        subscriber: sub.display_name(),
                        id: p.id.to_string(),
                        event: p.event.clone(),
                    })
                    .collect();
                for what in late {
                    self.record(now, what);
                }
            }
        }
        let secs = self.config.ack_timeout.as_secs_f64();
        self.drop_unanswering(
            &silent,
            |sub, p| format!("{} did not answer {} within {secs} s", sub.display_name(), describe(p)),
            |p| p.deadline <= now,
            &format!("unresponsive: no answer within {secs} s"),
            now,
        );
        if let Some(due) = self.state.next_heartbeat.filter(|t| *t <= now) {
            let _ = due;
            self.heartbeat(now);
        }
    }

    /// Ends the lease of the subscription of `token` at `now`, as if it had run out, and runs
    /// what is due ([`Topic::handle_timeout`]): the subscriber gets its denial and its socket is
    /// closed (req 56, neg 27). For an operator revoking an app, and for the test kit's
    /// "expire the lease" fault (`fhircast-sdk/testing`), which must take the same path as a
    /// lease that ends by itself. `false` when no such subscription is connected.
    pub fn expire_lease(&mut self, token: &str, now: Timestamp) -> bool {
        if !self.state.subscriptions.get(token).is_some_and(|s| s.is_connected()) {
            return false;
        }
        if let Some(sub) = self.state.subscriptions.get_mut(token) {
            sub.phase = super::state::Phase::Connected { lease_until: now };
        }
        self.handle_timeout(now);
        true
    }

    /// Drops subscribers that owe more answers than `max_pending_acks`: they do not keep up
    /// (a subscription's stored row is bounded by it). Treated as unresponsive: the others get
    /// a SyncError naming it, it gets a denial (req 87).
    pub(crate) fn drop_lagging(&mut self, now: Timestamp) {
        let max = self.config.max_pending_acks;
        let lagging: Vec<String> =
            self.state.subscriptions.values().filter(|s| s.pending.len() > max).map(|s| s.endpoint.clone()).collect();
        if lagging.is_empty() {
            return;
        }
        self.drop_unanswering(
            &lagging,
            |sub, p| {
                format!(
                    "{} did not keep up: {} notifications unanswered (at most {max}), the oldest {}",
                    sub.display_name(),
                    sub.pending.len(),
                    describe(p)
                )
            },
            |_| true,
            &format!("unresponsive: more than {max} notifications unanswered"),
            now,
        );
    }

    /// Unsubscribes `tokens` for not answering, then tells the others: a SyncError about the
    /// first unanswered notification `owed` selects (else about the context: it stopped
    /// following), and a denial to each.
    fn drop_unanswering(
        &mut self,
        tokens: &[String],
        diagnostics: impl Fn(&super::state::Subscription, &super::state::PendingAck) -> String,
        owed: impl Fn(&super::state::PendingAck) -> bool,
        reason: &str,
        now: Timestamp,
    ) {
        let gone: Vec<_> = tokens.iter().filter_map(|token| self.state.subscriptions.remove(token)).collect();
        for sub in &gone {
            self.record(
                now,
                FactKind::Unsubscribed { subscriber: sub.display_name(), reason: reason.into(), by: None },
            );
        }
        let secs = self.config.ack_timeout.as_secs_f64();
        for sub in &gone {
            if let Some(p) = sub.pending.iter().find(|p| owed(p) && p.event.kind() != EventKind::SyncError) {
                let (id, event) = p.about();
                self.send_sync_error(
                    id,
                    event,
                    &sub.display_name(),
                    diagnostics(sub, p),
                    SyncErrorCause::Unresponsive,
                    Some(&sub.endpoint),
                    now,
                );
            } else if let Some((id, event)) = self.about_now() {
                // Only SyncErrors went unanswered: no event was refused, but the subscriber is
                // dropped and stops following; the others are told so, about the context.
                let diagnostics = format!(
                    "{} did not answer a SyncError within {secs} s and was unsubscribed: it no longer follows the context",
                    sub.display_name()
                );
                let cause = SyncErrorCause::Unresponsive;
                self.send_sync_error(&id, &event, &sub.display_name(), diagnostics, cause, Some(&sub.endpoint), now);
            }
        }
        for sub in &gone {
            self.deny(sub, reason);
        }
    }

    /// A Hub-generated SyncError (req 84-96): one per failing subscriber and event, sent to
    /// every connected subscriber of `SyncError` except the one at fault (§5a-15 decision).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_sync_error(
        &mut self,
        event_id: &str,
        event_name: &EventName,
        subscriber: &str,
        diagnostics: String,
        cause: SyncErrorCause,
        exclude: Option<&str>,
        now: Timestamp,
    ) {
        let details = SyncErrorDetails {
            event_id: event_id.to_owned(),
            event_name: event_name.to_string(),
            subscriber_name: subscriber.to_owned(),
            diagnostics,
            code: if cause == SyncErrorCause::TooLong { IssueCode::TooLong } else { IssueCode::Processing },
            // Seed 003: every SyncError the Hub generates is `information`.
            severity: Severity::Information,
        };
        let event = Event {
            timestamp: now,
            id: self.state.mint(),
            topic: self.state.topic.clone(),
            name: EventName::parse("SyncError").expect("catalogued"),
            version_id: None,
            prior_version_id: None,
            context: vec![details.context_entry()],
        };
        let what = FactKind::SyncError {
            id: event.id.clone(),
            about_id: event_id.to_owned(),
            about_event: event_name.clone(),
            subscriber: subscriber.to_owned(),
            source: "hub",
            cause,
            diagnostics: Some(details.diagnostics.clone()),
        };
        self.record(now, what);
        let text: Arc<str> = event.to_json().into();
        let targets: Vec<String> = self
            .state
            .subscriptions
            .values()
            .filter(|s| s.is_connected() && s.wants(&event.name) && Some(s.endpoint.as_str()) != exclude)
            .map(|s| s.endpoint.clone())
            .collect();
        for t in targets {
            self.send_to(&t, text.clone(), &event, None, now);
        }
    }

    /// The legacy heartbeat (STU2; req 133): `{"key":"period","decimal":<seconds>}` to every
    /// connected subscriber, unacknowledged. Scheduled only while someone is connected, so an
    /// idle topic needs no alarm.
    fn heartbeat(&mut self, now: Timestamp) {
        let Some(period) = self.config.heartbeat else {
            self.state.next_heartbeat = None;
            return;
        };
        let targets: Vec<String> = self.connected_endpoints().map(str::to_owned).collect();
        if targets.is_empty() {
            self.state.next_heartbeat = None;
            return;
        }
        let event = Event {
            timestamp: now,
            id: self.state.mint(),
            topic: self.state.topic.clone(),
            name: EventName::parse("heartbeat").expect("catalogued"),
            version_id: None,
            prior_version_id: None,
            context: vec![ContextEntry::new("period", ValueField::Other("decimal".into()), &period.as_secs_f64())],
        };
        let text: Arc<str> = event.to_json().into();
        for to in targets {
            self.push(Outbound::Send { to, text: text.clone() });
        }
        self.state.next_heartbeat = Some(now.add(period));
    }
}

/// A notification's event for a SyncError's diagnostics: its name, and for a derived event the
/// event it was derived from (`Patient-open (derived from DiagnosticReport-open e1)`).
fn describe(p: &super::state::PendingAck) -> String {
    match &p.source {
        Some((id, name)) => format!("{} (derived from {name} {id})", p.event),
        None => p.event.to_string(),
    }
}
