//! Event requests: validation against the topic's state, state changes, and fan-out
//! (req 76-83, 97-99, 107-128, 139).

use std::sync::Arc;

use super::state::OpenAnchor;
use super::{Auth, EventAccepted, EventRejected, Outbound, Topic};
use crate::bundle::{Content, UpdateBundle};
use crate::catalog::{EventKind, EventName};
use crate::event::Event;
use crate::scope::Access;
use crate::syncerror::SyncErrorDetails;
use crate::time::Timestamp;
use crate::wire::{ContextEntry, ResourceKey, ValueField};

impl Topic {
    /// An event request (req 76-78). On success the event is applied and broadcast to every
    /// connected subscriber of it, the requester included, with the requester's `id`
    /// (req 80, 45); on refusal nothing changes and nothing is sent.
    ///
    /// The event's context is validated against the catalog here (req 64), so a shell may
    /// read the event with [`Event::parse_envelope`] to route it and leave the rest to this.
    pub fn handle_event(&mut self, event: Event, auth: &Auth, now: Timestamp) -> Result<EventAccepted, EventRejected> {
        if event.topic != self.state.topic {
            return Err(EventRejected::WrongTopic { expected: self.state.topic.clone(), found: event.topic.clone() });
        }
        if auth.topic.as_ref().is_some_and(|t| *t != self.state.topic) {
            return Err(EventRejected::TopicNotAllowed { topic: event.topic.clone() });
        }
        if auth.scopes.as_ref().is_some_and(|s| !s.allows(&event.name, Access::Write)) {
            return Err(EventRejected::MissingScope { event: event.name.to_string() });
        }
        event.validate()?;
        let fingerprint = fingerprint(&event);
        if let Some((_, f)) = self.state.recent_ids.iter().find(|(id, _)| *id == event.id) {
            if *f == fingerprint {
                return Ok(EventAccepted { id: event.id, version_id: None, duplicate: true });
            }
            return Err(EventRejected::IdReused { id: event.id });
        }
        let id = event.id.clone();
        let version_id = match event.name.kind() {
            EventKind::Open => Some(self.open(event, now)?),
            EventKind::Close => {
                self.close(event, now)?;
                None
            }
            EventKind::Update => Some(self.update(event, now)?),
            EventKind::Select => {
                self.select(event, now)?;
                None
            }
            EventKind::SyncError => {
                SyncErrorDetails::from_context(&event.context)
                    .map_err(|e| EventRejected::BadSyncError(e.to_string()))?;
                self.broadcast(&event, None, now);
                None
            }
            EventKind::UserLogout => {
                // Logout ends the user's session: no context remains (decision, §5a-19).
                self.check_stale(&event)?;
                self.state.anchors.clear();
                self.state.current = None;
                self.state.context_timestamp = Some(event.timestamp);
                self.broadcast(&event, None, now);
                None
            }
            EventKind::HomeOpen => {
                // The user is on a screen without context: nothing is current, nothing is
                // closed (decision, req 128, §5a-19).
                self.check_stale(&event)?;
                self.state.current = None;
                self.state.context_timestamp = Some(event.timestamp);
                self.broadcast(&event, None, now);
                None
            }
            EventKind::UserHibernate | EventKind::Heartbeat | EventKind::Custom => {
                self.broadcast(&event, None, now);
                None
            }
        };
        self.state.recent_ids.push_back((id.clone(), fingerprint));
        while self.state.recent_ids.len() > self.config.dedup_window {
            self.state.recent_ids.pop_front();
        }
        Ok(EventAccepted { id, version_id, duplicate: false })
    }

    /// Refuses a context change older than the event that set the current context.
    ///
    /// Decision: subscribers SHALL ignore such events (req 67), so a Hub that accepted one
    /// would change its own current context while every follower ignored it: a silent split.
    /// The Hub refuses it instead (409), and the SDK stamps its events no earlier than the
    /// newest context it has seen, so its requests are never refused for clock skew.
    fn check_stale(&self, event: &Event) -> Result<(), EventRejected> {
        match self.state.context_timestamp {
            Some(cur) if event.timestamp < cur => {
                Err(EventRejected::Stale { timestamp: event.timestamp.to_rfc3339(), current: cur.to_rfc3339() })
            }
            _ => Ok(()),
        }
    }

    /// `*-open` (req 108, 122-123): the anchor becomes (or stays) open and becomes current.
    /// A new anchor gets a fresh `context.versionId`; re-opening an open anchor keeps its
    /// version and content (req 125) and only makes it current again.
    fn open(&mut self, mut event: Event, now: Timestamp) -> Result<String, EventRejected> {
        self.check_stale(&event)?;
        let key = event.anchor().expect("validated opens have an anchor");
        event.version_id = None;
        event.prior_version_id = None;
        if self.config.derive_opens {
            self.derive_opens(&event, &key, now);
        }
        let version = match self.state.anchor_index(&key) {
            Some(i) => {
                let mut a = self.state.anchors.remove(i);
                a.open = event.clone();
                a.derived_from = None;
                let v = a.version_id.clone();
                self.state.anchors.push(a);
                v
            }
            None => {
                let v = self.state.mint();
                let a = OpenAnchor {
                    key: key.clone(),
                    open: event.clone(),
                    version_id: v.clone(),
                    content: Content::default(),
                    derived_from: None,
                };
                self.state.anchors.push(a);
                v
            }
        };
        self.state.current = Some(key);
        self.state.context_timestamp = Some(event.timestamp);
        self.evict_old_anchors();
        event.version_id = Some(version.clone());
        self.broadcast(&event, None, now);
        Ok(version)
    }

    /// Keeps at most `max_open_contexts` anchors: the least recently opened non-current ones
    /// go first, silently (no subscriber shows them as current).
    fn evict_old_anchors(&mut self) {
        while self.state.anchors.len() > self.config.max_open_contexts.max(1) {
            let current = self.state.current.clone();
            match self.state.anchors.iter().position(|a| Some(&a.key) != current.as_ref()) {
                Some(i) => {
                    self.state.anchors.remove(i);
                }
                None => break,
            }
        }
    }

    /// Derived opens (req 97-98): subscribers of `Patient-open` (say) that did not subscribe to
    /// the event being distributed (say `DiagnosticReport-open`) still learn the patient it
    /// implies. The implied anchor is recorded as open (so it is replayed), and its close is
    /// derived when the source closes. Nothing is sent when that anchor is already the most
    /// recent open of its type: no duplicates (req 98).
    fn derive_opens(&mut self, source: &Event, source_key: &ResourceKey, now: Timestamp) {
        for (name, context) in implied_opens(source) {
            let Some(key) = context
                .first()
                .and_then(|e| e.resource_header())
                .and_then(|h| Some(ResourceKey::new(h.resource_type, h.id?)))
            else {
                continue;
            };
            let latest = self.state.anchors.iter().rev().find(|a| a.key.resource_type == key.resource_type);
            if latest.is_some_and(|a| a.key == key) {
                continue;
            }
            let id = self.state.mint();
            let derived = Event {
                timestamp: source.timestamp,
                id,
                topic: self.state.topic.clone(),
                name: name.clone(),
                version_id: None,
                prior_version_id: None,
                context,
            };
            let version = match self.state.anchor_index(&key) {
                Some(i) => {
                    let a = self.state.anchors.remove(i);
                    let v = a.version_id.clone();
                    self.state.anchors.push(a);
                    v
                }
                None => {
                    let v = self.state.mint();
                    self.state.anchors.push(OpenAnchor {
                        key,
                        open: derived.clone(),
                        version_id: v.clone(),
                        content: Content::default(),
                        derived_from: Some(source_key.clone()),
                    });
                    v
                }
            };
            let mut out = derived;
            out.version_id = Some(version);
            self.broadcast(&out, Some(&source.name), now);
        }
    }

    /// `*-close` (req 124-126): closes an open anchor; closing the current one leaves no
    /// current context. Decision (neg 19, §5a-20): a close for an anchor that is not open is
    /// refused (409) — the requester is out of step, and broadcasting it could only confuse.
    /// Content and version go with the anchor (req 113, 125).
    fn close(&mut self, event: Event, now: Timestamp) -> Result<(), EventRejected> {
        self.check_stale(&event)?;
        let key = event.anchor().expect("validated closes have an anchor");
        let i = self.state.anchor_index(&key).ok_or_else(|| EventRejected::NotOpen { anchor: key.clone() })?;
        self.state.anchors.remove(i);
        if self.state.current.as_ref() == Some(&key) {
            self.state.current = None;
        }
        self.state.context_timestamp = Some(event.timestamp);
        self.broadcast(&event, None, now);
        self.derive_closes(&event, &key, now);
        Ok(())
    }

    /// Closes the anchors derived from a closed source, unless another open context still
    /// carries them, and tells the subscribers that only knew them through the derivation.
    /// An anchor another context still carries now goes with that context (with the context
    /// it was derived from, if the carrier is itself derived), so its close is derived when
    /// the last context carrying it closes.
    fn derive_closes(&mut self, source: &Event, source_key: &ResourceKey, now: Timestamp) {
        let derived: Vec<ResourceKey> = self
            .state
            .anchors
            .iter()
            .filter(|a| a.derived_from.as_ref() == Some(source_key))
            .map(|a| a.key.clone())
            .collect();
        for key in derived {
            // Anchors derived from the same source go with it; others may still carry the key.
            let carrier = self
                .state
                .anchors
                .iter()
                .rev()
                .find(|a| a.key != key && a.derived_from.as_ref() != Some(source_key) && carries(&a.open, &key))
                .map(|a| a.derived_from.clone().unwrap_or_else(|| a.key.clone()));
            if let Some(carrier) = carrier {
                let i = self.state.anchor_index(&key).expect("listed above");
                self.state.anchors[i].derived_from = Some(carrier);
                continue;
            }
            let i = self.state.anchor_index(&key).expect("listed above");
            let a = self.state.anchors.remove(i);
            let Some(name) = a.open.name.resource_type().and_then(|rt| EventName::of(rt, EventKind::Close)) else {
                continue;
            };
            let close = Event {
                timestamp: source.timestamp,
                id: self.state.mint(),
                topic: self.state.topic.clone(),
                name,
                version_id: None,
                prior_version_id: None,
                context: a.open.context.clone(),
            };
            self.broadcast(&close, Some(&source.name), now);
        }
    }

    /// `*-update` (req 107-112, 116-119; neg 15-18): checks the anchor is open (and current,
    /// unless non-current updates are enabled), that `context.versionId` is its current
    /// version, and that the bundle is well formed — all before changing anything — then
    /// applies the whole bundle, mints a new version and broadcasts it with
    /// `context.priorVersionId`. The bundle is re-sent byte for byte, so its `id` is kept
    /// (req 112).
    fn update(&mut self, mut event: Event, now: Timestamp) -> Result<String, EventRejected> {
        let key = event.anchor().expect("validated updates have an anchor");
        let i = self.state.anchor_index(&key).ok_or_else(|| EventRejected::NotOpen { anchor: key.clone() })?;
        if !self.config.non_current_updates && self.state.current.as_ref() != Some(&key) {
            return Err(EventRejected::NotCurrent { anchor: key, event: event.name.to_string() });
        }
        let sent = event.version_id.clone().expect("validated updates carry a version");
        let current = &self.state.anchors[i].version_id;
        if sent != *current {
            return Err(EventRejected::VersionMismatch { anchor: key, expected: current.clone(), found: sent });
        }
        let raw = event.entries("updates").next().expect("validated updates carry a bundle").value.get();
        let bundle = UpdateBundle::parse(raw, self.config.max_bundle_entries)?;
        let version = self.state.mint();
        let a = &mut self.state.anchors[i];
        a.content.apply(&bundle);
        let prior = std::mem::replace(&mut a.version_id, version.clone());
        event.version_id = Some(version.clone());
        event.prior_version_id = Some(prior);
        self.broadcast(&event, None, now);
        Ok(version)
    }

    /// `*-select` (req 115, 119, 121; neg 20): only on the current anchor; forwarded as is.
    fn select(&mut self, event: Event, now: Timestamp) -> Result<(), EventRejected> {
        let key = event.anchor().expect("validated selects have an anchor");
        if self.state.current.as_ref() != Some(&key) {
            if self.state.anchor_index(&key).is_none() {
                return Err(EventRejected::NotOpen { anchor: key });
            }
            return Err(EventRejected::NotCurrent { anchor: key, event: event.name.to_string() });
        }
        self.broadcast(&event, None, now);
        Ok(())
    }

    /// Sends an event to every connected subscriber of it (req 45, 58, 80), except those that
    /// also subscribe to `skip_subscribers_of` (used for derived events: subscribers of the
    /// source get the source). The event is serialised once for all recipients.
    pub(crate) fn broadcast(&mut self, event: &Event, skip_subscribers_of: Option<&EventName>, now: Timestamp) {
        let text: Arc<str> = event.to_json().into();
        let id: Arc<str> = event.id.as_str().into();
        let deadline = now.add(self.config.ack_timeout);
        let (subs, out) = (&mut self.state.subscriptions, &mut self.outbound);
        for sub in subs.values_mut() {
            if !sub.is_connected() || !sub.wants(&event.name) || skip_subscribers_of.is_some_and(|s| sub.wants(s)) {
                continue;
            }
            out.push_back(Outbound::Send { to: sub.endpoint.clone(), text: text.clone() });
            sub.pending.push(super::state::PendingAck { id: id.clone(), event: event.name.clone(), deadline });
        }
    }

    /// Sends one notification to one subscriber and waits for its answer.
    pub(crate) fn send_to(&mut self, token: &str, text: Arc<str>, event: &Event, now: Timestamp) {
        let deadline = now.add(self.config.ack_timeout);
        if let Some(sub) = self.state.subscriptions.get_mut(token) {
            sub.pending.push(super::state::PendingAck {
                id: event.id.as_str().into(),
                event: event.name.clone(),
                deadline,
            });
            self.outbound.push_back(Outbound::Send { to: token.to_owned(), text });
        }
    }
}

/// What identifies a request for duplicate detection (req 139): same id, event, time and
/// anchor is a retry; same id with anything else is a different event.
fn fingerprint(e: &Event) -> String {
    let anchor = e.anchor().map(|k| k.to_string()).unwrap_or_default();
    format!("{}|{}|{}", e.name, e.timestamp.unix_nanos(), anchor)
}

/// The opens an open event implies (req 97): `Patient-open` for its patient,
/// `Encounter-open` for its encounter (with the patient), and `ImagingStudy-open` for each
/// study (with encounter and patient when present). Only full resources with an id count.
fn implied_opens(source: &Event) -> Vec<(EventName, Vec<ContextEntry>)> {
    let own = source.name.resource_type();
    let resource = |key: &str, rt: &str| {
        source
            .entries(key)
            .find(|e| {
                e.field == ValueField::Resource
                    && e.resource_header().is_some_and(|h| h.resource_type == rt && h.id.is_some())
            })
            .cloned()
    };
    let patient = resource("patient", "Patient");
    let encounter = resource("encounter", "Encounter");
    let mut out = Vec::new();
    let open = |rt: &str| EventName::of(rt, EventKind::Open).expect("catalogued types");
    if own != Some("Patient") {
        if let Some(p) = &patient {
            out.push((open("Patient"), vec![p.clone()]));
        }
    }
    if own != Some("Encounter") {
        if let (Some(e), Some(p)) = (&encounter, &patient) {
            out.push((open("Encounter"), vec![e.clone(), p.clone()]));
        }
    }
    if own != Some("ImagingStudy") {
        for s in source.entries("study") {
            if s.field != ValueField::Resource
                || !s.resource_header().is_some_and(|h| h.resource_type == "ImagingStudy" && h.id.is_some())
            {
                continue;
            }
            let mut ctx = vec![s.clone()];
            ctx.extend(encounter.clone());
            ctx.extend(patient.clone());
            out.push((open("ImagingStudy"), ctx));
        }
    }
    out
}

/// Whether an open event's context holds the resource `key` (as anchor or as a related
/// resource).
pub(super) fn carries(open: &Event, key: &ResourceKey) -> bool {
    open.context.iter().any(|e| {
        e.field == ValueField::Resource
            && e.resource_header()
                .is_some_and(|h| h.resource_type == key.resource_type && h.id.as_deref() == Some(key.id.as_str()))
    })
}
