//! Subscribing, connecting, replay, unsubscribing and closing (req 24-57, 85-86).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::state::{Phase, Subscription};
use super::timeline::{FactKind, Who};
use super::{endpoint_token, Auth, Outbound, SubscribeError, SubscriptionAccepted, Topic};
use crate::catalog::{EventKind, EventName};
use crate::scope::Access;
use crate::subscription::{Mode, SubscriptionRequest};
use crate::time::Timestamp;
use crate::wire::{Confirmation, Denial};

/// WebSocket close code after a denial or an unsubscribe: the Hub ended it normally.
pub(crate) const CLOSE_NORMAL: u16 = 1000;

impl Topic {
    /// A validated (un)subscribe request (req 24-37, 50-53). `new_endpoint` is a fresh,
    /// cryptographically random token (req 41) that the Hub uses if this request creates a
    /// subscription; the shell builds `hub.channel.endpoint` from the returned token.
    ///
    /// Decisions (§5a-2): a subscribe that names an existing `hub.channel.endpoint` keeps that
    /// endpoint and socket, replaces the granted events and renews the lease (req 35); if the
    /// socket is connected the Hub sends a fresh confirmation on it and replays the current
    /// context for events newly granted. A subscribe without an endpoint always creates a new
    /// subscription.
    pub fn handle_subscription(
        &mut self,
        req: &SubscriptionRequest,
        auth: &Auth,
        new_endpoint: &str,
        now: Timestamp,
    ) -> Result<SubscriptionAccepted, SubscribeError> {
        let r = self.subscription(req, auth, new_endpoint, now);
        if let Err(e) = &r {
            let what =
                FactKind::SubscribeRefused { status: e.http_status(), reason: FactKind::reason(e), by: Who::of(auth) };
            self.record(now, what);
        }
        r
    }

    fn subscription(
        &mut self,
        req: &SubscriptionRequest,
        auth: &Auth,
        new_endpoint: &str,
        now: Timestamp,
    ) -> Result<SubscriptionAccepted, SubscribeError> {
        if req.topic != self.state.topic {
            return Err(SubscribeError::WrongTopic { expected: self.state.topic.clone(), found: req.topic.clone() });
        }
        if auth.topic.as_ref().is_some_and(|t| *t != self.state.topic) {
            return Err(SubscribeError::TopicNotAllowed { topic: req.topic.clone() });
        }
        if auth.expires_at.is_some_and(|e| e <= now) {
            return Err(SubscribeError::TokenExpired);
        }
        // Decision: cancelling needs a token with some fhircast/ scope (subscribing needs a read
        // scope), not just any token the issuer signed; checked before the endpoint is looked up.
        if req.mode == Mode::Unsubscribe && auth.scopes.as_ref().is_some_and(|s| s.is_empty()) {
            return Err(SubscribeError::NoFhircastScope);
        }
        let existing = match &req.endpoint {
            Some(url) => {
                let token = endpoint_token(url).filter(|t| self.state.subscriptions.contains_key(*t));
                Some(token.ok_or(SubscribeError::UnknownEndpoint)?.to_owned())
            }
            None => None,
        };
        if req.mode == Mode::Unsubscribe {
            // SubscriptionRequest guarantees an endpoint on unsubscribe (req 50, neg 10).
            let token = existing.ok_or(SubscribeError::UnknownEndpoint)?;
            let sub = self.state.subscriptions.remove(&token).expect("checked above");
            let what = FactKind::Unsubscribed {
                subscriber: sub.display_name(),
                reason: "unsubscribed".into(),
                by: Who::of(auth),
            };
            self.record(now, what);
            self.deny(&sub, "unsubscribed");
            return Ok(SubscriptionAccepted { endpoint: token });
        }
        // Grant the requested events the token may read (req 18, neg 5: a subset is allowed
        // and listed in the confirmation).
        let granted: Vec<EventName> = req
            .events
            .iter()
            .filter(|e| auth.scopes.as_ref().is_none_or(|s| s.allows(e, Access::Read)))
            .cloned()
            .collect();
        if granted.is_empty() {
            let first = req.events.first().map(|e| e.to_string()).unwrap_or_default();
            return Err(SubscribeError::NoGrantedEvents { first });
        }
        let lease = self.lease_for(req.lease_seconds, auth, now);
        if let Some(token) = existing {
            let sub = self.state.subscriptions.get_mut(&token).expect("checked above");
            let added: Vec<EventName> = granted.iter().filter(|e| !sub.events.contains(e)).cloned().collect();
            sub.events = granted;
            sub.lease_seconds = lease;
            sub.token_expires = auth.expires_at;
            if req.subscriber_name.is_some() {
                sub.name = req.subscriber_name.clone();
            }
            let what = FactKind::Subscribed {
                subscriber: sub.display_name(),
                events: sub.events.clone(),
                lease_seconds: lease,
                renewed: true,
                by: Who::of(auth),
            };
            self.record(now, what);
            let sub = self.state.subscriptions.get_mut(&token).expect("checked above");
            if sub.is_connected() {
                sub.phase = Phase::Connected { lease_until: sub.lease_end(now) };
                self.confirm(&token, now);
                self.replay(&token, Some(&added), now);
            }
            return Ok(SubscriptionAccepted { endpoint: token });
        }
        if self.state.subscriptions.len() >= self.config.max_subscriptions {
            return Err(SubscribeError::TooManySubscriptions { max: self.config.max_subscriptions });
        }
        let number = self.state.next_seq;
        self.state.next_seq += 1;
        let sub = Subscription {
            endpoint: new_endpoint.to_owned(),
            number,
            events: granted,
            name: req.subscriber_name.clone(),
            lease_seconds: lease,
            token_expires: auth.expires_at,
            phase: Phase::Issued { connect_by: now.add(self.config.connect_timeout) },
            pending: Vec::new(),
            last_answer: None,
            shown: None,
            told: Vec::new(),
            view_refused: false,
        };
        if self.recording() {
            let what = FactKind::Subscribed {
                subscriber: sub.display_name(),
                events: sub.events.clone(),
                lease_seconds: lease,
                renewed: false,
                by: Who::of(auth),
            };
            self.record(now, what);
        }
        self.state.subscriptions.insert(new_endpoint.to_owned(), sub);
        Ok(SubscriptionAccepted { endpoint: new_endpoint.to_owned() })
    }

    /// The lease granted: what was asked (or the default), at most the maximum, and ending no
    /// later than the token (req 20, 30; neg 8: clamp, never reject).
    fn lease_for(&self, asked: Option<u64>, auth: &Auth, now: Timestamp) -> u64 {
        let mut lease = asked.unwrap_or(self.config.default_lease_seconds).clamp(1, self.config.max_lease_seconds);
        if let Some(exp) = auth.expires_at {
            lease = lease.min(exp.since(now).as_secs().max(1));
        }
        lease
    }

    /// A WebSocket opened on an issued endpoint: confirm (req 43), then replay the current
    /// context (req 44). Endpoints are single-use (req 41, 54; neg 11).
    pub fn handle_connect(&mut self, token: &str, now: Timestamp) -> Result<(), super::ConnectError> {
        let sub = self.state.subscriptions.get_mut(token).ok_or(super::ConnectError::UnknownEndpoint)?;
        if sub.is_connected() {
            return Err(super::ConnectError::AlreadyConnected);
        }
        sub.phase = Phase::Connected { lease_until: sub.lease_end(now) };
        let subscriber = sub.display_name();
        self.record(now, FactKind::Connected { subscriber });
        self.confirm(token, now);
        self.replay(token, None, now);
        if let (Some(period), None) = (self.config.heartbeat, self.state.next_heartbeat) {
            self.state.next_heartbeat = Some(now.add(period));
        }
        Ok(())
    }

    /// The confirmation (req 43): the lease it grants is what is left of it from `now` (a
    /// lease bounded by the token, req 20, has less left when the socket connects late).
    fn confirm(&mut self, token: &str, now: Timestamp) {
        let sub = &self.state.subscriptions[token];
        let left = match sub.phase {
            Phase::Connected { lease_until } => lease_until.since(now).as_secs().max(1),
            Phase::Issued { .. } => sub.lease_seconds,
        };
        let c = Confirmation {
            mode: "subscribe".into(),
            topic: self.state.topic.clone(),
            events: sub.events_csv(),
            lease_seconds: left.min(sub.lease_seconds),
        };
        let text = serde_json::to_string(&c).expect("confirmations serialise");
        self.push(Outbound::Send { to: token.to_owned(), text: text.into() });
    }

    /// Replays the current context to one subscriber (req 44): for each resource type, the
    /// most recent open that is still open, in the order they were opened, so the last one
    /// replayed is the current context; each with its original id and timestamp and the
    /// anchor's current `context.versionId`. Filtered by the subscriber's events (req 45), and
    /// by `only` when given (events newly granted by a re-subscribe). A derived open (req 97)
    /// is replayed only to subscribers that would have received it live: not to subscribers of
    /// its source's open event, who know the anchor through the source (req 98). Replaying it
    /// to them would put an older anchor before the current one, which they may already have
    /// answered and so take for a duplicate, leaving them on the older anchor.
    ///
    /// Decision (§5a-9): when there is no current context (it was closed, or `Home-open` or
    /// `UserLogout` cleared it) nothing is replayed, so a new subscriber shows what every
    /// other app shows and what GET returns: no context. Replaying an older, still-open
    /// context would make the new app show a patient no other app shows.
    pub(crate) fn replay(&mut self, token: &str, only: Option<&[EventName]>, now: Timestamp) {
        if self.state.current.is_none() {
            // Nothing current: the view is empty. A re-subscribe may have left something shown.
            self.reconcile_one(token, now);
            return;
        }
        let mut latest: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, a) in self.state.anchors.iter().enumerate() {
            latest.insert(a.key.resource_type.as_str(), i);
        }
        let mut order: Vec<usize> = latest.into_values().collect();
        order.sort_unstable();
        let sub = &self.state.subscriptions[token];
        let view = self.view_for(&sub.events).map(|v| v.anchor);
        let mut sends = Vec::new();
        for i in order {
            let a = &self.state.anchors[i];
            let name = &a.open.name;
            if !sub.wants(name) || only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            let source_open = a.derived_from.as_ref().and_then(|k| EventName::of(&k.resource_type, EventKind::Open));
            if source_open.is_some_and(|s| sub.wants(&s)) {
                continue;
            }
            // Views: a derived anchor is replayed only as the subscriber's view (a patient the
            // current report implies, to a patient-only app), never on the way to it.
            if a.derived_from.is_some() && view.as_ref() != Some(&a.key) {
                continue;
            }
            let mut ev = a.open.clone();
            ev.version_id = Some(a.version_id.clone());
            let source = a.source_event.as_ref().map(|(id, name)| (Arc::<str>::from(id.as_str()), name.clone()));
            sends.push((ev, source));
        }
        // The view last, and never older than what is replayed before it (a follower ignores
        // an older event, req 67): a study opened long ago that the current report names is
        // sent again with a fresh id and the current context's time.
        if let Some(i) = sends.iter().position(|(ev, _)| ev.anchor() == view) {
            let (mut ev, source) = sends.remove(i);
            let newest = sends.iter().map(|(e, _)| e.timestamp).max();
            if newest.is_some_and(|t| t > ev.timestamp) {
                ev.id = self.state.mint();
                ev.timestamp = self.state.context_timestamp.unwrap_or(now).max(newest.unwrap_or(now));
            }
            sends.push((ev, source));
        }
        for (ev, source) in sends {
            if let Some(s) = &source {
                self.note_derived(&ev.id, s);
            }
            let text: Arc<str> = ev.to_json().into();
            self.send_to(token, text, &ev, source, now);
            if let (Some(sub), Some(k)) = (self.state.subscriptions.get_mut(token), ev.anchor()) {
                sub.note_open(k);
            }
        }
        self.reconcile_one(token, now);
    }

    /// Sends a denial and closes the socket, if connected (req 46-47, 53, 56).
    pub(crate) fn deny(&mut self, sub: &Subscription, reason: &str) {
        if !sub.is_connected() {
            return;
        }
        let d = Denial {
            mode: "denied".into(),
            topic: self.state.topic.clone(),
            events: sub.events_csv(),
            reason: Some(reason.to_owned()),
        };
        let text = serde_json::to_string(&d).expect("denials serialise");
        self.push(Outbound::Send { to: sub.endpoint.clone(), text: text.into() });
        self.push(Outbound::Close { to: sub.endpoint.clone(), code: CLOSE_NORMAL, reason: reason.to_owned() });
    }

    /// What a SyncError about a subscriber that left is about when it owed no answer: the
    /// current context's open, else the last context change (the apps' screens are empty, but
    /// one of them stopped following); `None` before any context change.
    pub(crate) fn about_now(&self) -> Option<(String, EventName)> {
        let current = self.state.current.as_ref().and_then(|k| self.state.anchor(k));
        current.map(|a| (a.open.id.clone(), a.open.name.clone())).or_else(|| self.state.last_change.clone())
    }

    /// A subscriber's socket closed (req 85-86). The subscription ends either way: endpoints
    /// are single-use, so it could never reconnect (§neg 23 decision). A close other than
    /// 1000/1001 is a connection problem: the other subscribers get a SyncError about the
    /// event the subscriber still owed an answer to, or else about the current context it
    /// no longer follows.
    pub fn handle_close(&mut self, token: &str, code: u16, now: Timestamp) {
        let Some(sub) = self.state.subscriptions.remove(token) else { return };
        self.record(now, FactKind::Closed { subscriber: sub.display_name(), code });
        if !sub.is_connected() || code == 1000 || code == 1001 {
            return;
        }
        let about = sub
            .pending
            .iter()
            .find(|p| p.event.kind() != crate::catalog::EventKind::SyncError)
            .map(|p| {
                let (id, event) = p.about();
                (id.to_owned(), event.clone())
            })
            .or_else(|| self.about_now());
        if let Some((id, event)) = about {
            let diagnostics =
                format!("{} lost its connection to the hub (WebSocket close code {code})", sub.display_name());
            let cause = super::timeline::SyncErrorCause::ConnectionLost;
            self.send_sync_error(&id, &event, &sub.display_name(), diagnostics, cause, Some(token), now);
        }
    }
}
