//! Event requests: validation against the topic's state, state changes, and fan-out
//! (req 76-83, 97-99, 107-128, 139).

use std::sync::Arc;

use super::state::OpenAnchor;
use super::store::EMPTY_CONTENT_BYTES;
use super::timeline::{Fact, FactKind, SyncErrorCause, Who};
use super::{Auth, EventAccepted, EventRejected, Outbound, Topic};
use crate::bundle::{Content, UpdateBundle};
use crate::catalog::{EventKind, EventName};
use crate::event::Event;
use crate::scope::Access;
use crate::syncerror::SyncErrorDetails;
use crate::time::Timestamp;
use crate::view::implied_opens;
use crate::wire::{ContextEntry, ResourceKey, ValueField};

impl Topic {
    /// An event request (req 76-78). On success the event is applied and broadcast to every
    /// connected subscriber of it, the requester included, with the requester's `id`
    /// (req 80, 45); on refusal nothing changes and nothing is sent.
    ///
    /// The event's context is validated against the catalog here (req 64), so a shell may
    /// read the event with [`Event::parse_envelope`] to route it and leave the rest to this.
    pub fn handle_event(&mut self, event: Event, auth: &Auth, now: Timestamp) -> Result<EventAccepted, EventRejected> {
        let r = self.event_recorded(event, auth, now);
        // Marks for the event being handled only: a later input (a re-subscribe's replay) must
        // mint as a topic restored from storage would, where nothing is marked.
        self.fresh_derived.clear();
        r
    }

    /// [`Topic::handle_event`], recording its facts ([`super::timeline`]).
    fn event_recorded(&mut self, event: Event, auth: &Auth, now: Timestamp) -> Result<EventAccepted, EventRejected> {
        if !self.recording() {
            return self.event(event, auth, now);
        }
        let (id, name, anchor) = (event.id.clone(), event.name.clone(), event.anchor().map(|k| k.to_string()));
        let sync_error = match name.kind() {
            EventKind::SyncError => SyncErrorDetails::from_context(&event.context).ok(),
            _ => None,
        };
        let mark = self.facts.len();
        let r = self.event(event, auth, now);
        let by = Who::of(auth);
        match &r {
            Ok(acc) => {
                let mut facts = vec![Fact {
                    at: now,
                    what: FactKind::Event {
                        id: id.clone(),
                        event: name,
                        anchor,
                        version_id: acc.version_id.clone(),
                        duplicate: acc.duplicate,
                        by,
                    },
                }];
                if let (Some(d), false) = (sync_error, acc.duplicate) {
                    // An app's SyncError: its diagnostics are the app's text, not recorded.
                    let what = FactKind::SyncError {
                        id,
                        about_id: d.event_id,
                        about_event: EventName::parse(&d.event_name).unwrap_or_else(|_| name_of_sync_error()),
                        subscriber: d.subscriber_name,
                        source: "subscriber",
                        cause: SyncErrorCause::App,
                        diagnostics: None,
                    };
                    facts.push(Fact { at: now, what });
                }
                self.facts.splice(mark..mark, facts);
            }
            Err(e) => {
                self.facts.truncate(mark);
                let what = FactKind::EventRefused {
                    id,
                    event: name,
                    status: e.http_status(),
                    reason: FactKind::reason(e),
                    by,
                };
                self.record(now, what);
            }
        }
        r
    }

    fn event(&mut self, event: Event, auth: &Auth, now: Timestamp) -> Result<EventAccepted, EventRejected> {
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
        event.check_id_lengths()?;
        let fingerprint = fingerprint(&event);
        if let Some((_, f)) = self.state.recent_ids.iter().find(|(id, _)| *id == event.id) {
            if *f == fingerprint {
                return Ok(EventAccepted { id: event.id, version_id: None, duplicate: true });
            }
            return Err(EventRejected::IdReused { id: event.id });
        }
        let id = event.id.clone();
        self.fresh_derived.clear();
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
                let details = SyncErrorDetails::from_context(&event.context)
                    .map_err(|e| EventRejected::BadSyncError(e.to_string()))?;
                let source =
                    self.state.derived_ids.iter().find(|(id, _)| *id == details.event_id).map(|(_, s)| s.clone());
                match source {
                    // About an event this Hub derived (a subscriber answered 202 to it, then
                    // refused): relayed as about the event it was derived from, so the app
                    // that sent that one recognises it and resends it (req 81). The rest of
                    // the OperationOutcome is kept; the diagnostics name the derived event.
                    Some((id, name)) => {
                        let diagnostics = format!(
                            "{} (about {} {}, derived from {name} {id})",
                            details.diagnostics, details.event_name, details.event_id
                        );
                        let relayed =
                            SyncErrorDetails { event_id: id, event_name: name.to_string(), diagnostics, ..details };
                        let mut ev = event.clone();
                        ev.context = vec![relayed.context_entry()];
                        self.broadcast(&ev, None, now);
                    }
                    None => self.broadcast(&event, None, now),
                }
                None
            }
            EventKind::UserLogout => {
                // Logout ends the user's session: no context remains (decision, §5a-19).
                self.check_stale(&event, now)?;
                self.state.current = None;
                self.state.context_timestamp = Some(event.timestamp);
                self.state.last_change = Some((event.id.clone(), event.name.clone()));
                self.broadcast(&event, None, now);
                self.reconcile_views(&event, now);
                self.state.anchors.clear();
                None
            }
            EventKind::HomeOpen => {
                // The user is on a screen without context: nothing is current, nothing is
                // closed (decision, req 128, §5a-19).
                self.check_stale(&event, now)?;
                self.state.current = None;
                self.state.context_timestamp = Some(event.timestamp);
                self.state.last_change = Some((event.id.clone(), event.name.clone()));
                self.broadcast(&event, None, now);
                self.reconcile_views(&event, now);
                None
            }
            EventKind::UserHibernate | EventKind::Heartbeat | EventKind::Custom => {
                self.broadcast(&event, None, now);
                None
            }
        };
        self.state.recent_ids.push_back((id.clone(), fingerprint));
        self.state.marks.recent_appended += 1;
        self.drop_lagging(now);
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
    ///
    /// A context change stamped more than `max_clock_ahead` after the Hub's `now` is refused
    /// too (400): accepted, it would make every later, correctly stamped change look stale
    /// and lock the topic. For the same reason a stored current-context timestamp later than
    /// `now + max_clock_ahead` (state written before this rule) is not compared with: the next
    /// accepted change replaces it.
    fn check_stale(&self, event: &Event, now: Timestamp) -> Result<(), EventRejected> {
        let limit = now.add(self.config.max_clock_ahead);
        if event.timestamp > limit {
            let ahead = (event.timestamp.unix_nanos() - now.unix_nanos()) / 1_000_000_000;
            return Err(EventRejected::FromTheFuture {
                timestamp: event.timestamp.to_rfc3339(),
                hub_now: now.to_rfc3339(),
                ahead_seconds: ahead,
                max_seconds: self.config.max_clock_ahead.as_secs(),
            });
        }
        match self.state.context_timestamp.filter(|c| *c <= limit) {
            Some(cur) if event.timestamp < cur => {
                Err(EventRejected::Stale { timestamp: event.timestamp.to_rfc3339(), current: cur.to_rfc3339() })
            }
            _ => Ok(()),
        }
    }

    /// `*-open` (req 108, 122-123): the anchor becomes (or stays) open and becomes current.
    /// A new anchor gets a fresh `context.versionId`; re-opening an open anchor keeps its
    /// version and content (req 125) and only makes it current again.
    ///
    /// Size limits are checked before anything changes: the open event as stored is at most
    /// `max_event_bytes`, and the topic's open contexts must fit `max_topic_bytes` once the
    /// ones not in use are evicted (see [`Topic::evict_old_anchors`]).
    fn open(&mut self, mut event: Event, now: Timestamp) -> Result<String, EventRejected> {
        self.check_stale(&event, now)?;
        let key = event.anchor().expect("validated opens have an anchor");
        event.version_id = None;
        event.prior_version_id = None;
        let bytes = super::store::open_row(&event).len();
        if bytes > self.config.max_event_bytes {
            return Err(EventRejected::EventTooLarge {
                event: event.name.to_string(),
                bytes,
                max: self.config.max_event_bytes,
            });
        }
        // What cannot be evicted once this open is current: the anchors it carries (itself
        // included). The derived opens it records are each at most its own size.
        let implied = if self.config.derive_opens { implied_opens(&event).len() } else { 0 };
        let kept: usize = self.state.anchors.iter().filter(|a| carries(&event, &a.key)).map(|a| a.stored_bytes()).sum();
        let needed = kept + bytes * (1 + implied);
        if needed > self.config.max_topic_bytes {
            return Err(EventRejected::TopicFull { bytes: needed, max: self.config.max_topic_bytes });
        }
        if self.config.derive_opens {
            self.derive_opens(&event, &key, now);
        }
        let version = match self.state.anchor_index(&key) {
            Some(i) => {
                self.state.anchors.set_open(i, event.clone(), bytes);
                self.state.anchors.set_not_derived(i);
                self.state.anchors.move_to_end(i);
                self.state.anchors.last().expect("just moved").version_id.clone()
            }
            None => {
                let v = self.state.mint();
                let a = OpenAnchor {
                    key: key.clone(),
                    open: event.clone(),
                    version_id: v.clone(),
                    content: Content::default(),
                    derived_from: None,
                    source_event: None,
                    open_bytes: bytes,
                    content_bytes: EMPTY_CONTENT_BYTES,
                };
                self.state.anchors.push(a);
                v
            }
        };
        self.state.current = Some(key);
        self.state.context_timestamp = Some(event.timestamp);
        self.state.last_change = Some((event.id.clone(), event.name.clone()));
        self.evict_old_anchors(None);
        event.version_id = Some(version.clone());
        self.broadcast(&event, None, now);
        self.reconcile_views(&event, now);
        Ok(version)
    }

    /// Keeps at most `max_open_contexts` anchors holding at most `max_topic_bytes`: the least
    /// recently opened non-current ones go first, silently (no subscriber's view is made of
    /// them: views come from the current context). Never the current anchor nor one the
    /// current context carries (a patient a current report implies: replay and
    /// get-current-context read it); with an evicted anchor go the anchors derived from it
    /// that the current context does not carry, so none is left pointing at a source that is
    /// gone. Callers check beforehand that what cannot be evicted fits.
    fn evict_old_anchors(&mut self, spare: Option<&ResourceKey>) {
        while self.state.anchors.len() > self.config.max_open_contexts.max(1)
            || self.stored_bytes() > self.config.max_topic_bytes
        {
            let current_open = self.state.current.as_ref().and_then(|k| self.state.anchor(k)).map(|a| a.open.clone());
            let (current, spare) = (self.state.current.clone(), spare.cloned());
            let in_use = |a: &OpenAnchor| in_use(a, current.as_ref(), current_open.as_ref(), spare.as_ref());
            match self.state.anchors.iter().position(|a| !in_use(a)) {
                Some(i) => {
                    let gone = self.state.anchors.remove(i).key;
                    self.state.anchors.retain(|a| a.derived_from.as_ref() != Some(&gone) || in_use(a));
                }
                None => break,
            }
        }
    }

    /// What the topic's open contexts hold in storage, in bytes.
    fn stored_bytes(&self) -> usize {
        self.state.anchors.iter().map(OpenAnchor::stored_bytes).sum()
    }

    /// Derived opens (req 97-98), the record: the anchors an open implies (the patient of a
    /// report, say) are recorded as open, derived from it, so that replay and
    /// get-current-context know them, and they close with it. What each subscriber is sent is
    /// decided per subscriber by [`Topic::reconcile_views`]. Nothing is recorded when that
    /// anchor already is the most recent open of its type.
    fn derive_opens(&mut self, source: &Event, source_key: &ResourceKey, _now: Timestamp) {
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
            match self.state.anchor_index(&key) {
                Some(i) => self.state.anchors.move_to_end(i),
                None => {
                    let v = self.state.mint();
                    self.fresh_derived.push(key.clone());
                    let open_bytes = super::store::open_row(&derived).len();
                    self.state.anchors.push(OpenAnchor {
                        key,
                        open: derived,
                        version_id: v,
                        content: Content::default(),
                        derived_from: Some(source_key.clone()),
                        source_event: Some((source.id.clone(), source.name.clone())),
                        open_bytes,
                        content_bytes: EMPTY_CONTENT_BYTES,
                    });
                }
            }
        }
    }

    /// `*-close` (req 124-126): closes an open anchor; closing the current one leaves no
    /// current context. Decision (neg 19, §5a-20): a close for an anchor that is not open is
    /// refused (409) — the requester is out of step, and broadcasting it could only confuse.
    /// Content and version go with the anchor (req 113, 125).
    fn close(&mut self, event: Event, now: Timestamp) -> Result<(), EventRejected> {
        self.check_stale(&event, now)?;
        let key = event.anchor().expect("validated closes have an anchor");
        let i = self.state.anchor_index(&key).ok_or_else(|| EventRejected::NotOpen { anchor: key.clone() })?;
        // Decision (views): the patient (say) of the current report cannot be closed while the
        // report is current; every patient-only app's view is that patient, so it would be
        // sent the close and at once the patient again.
        if let Some(cur) = self.state.current.clone().filter(|c| *c != key) {
            if self.state.anchor(&cur).is_some_and(|a| carries(&a.open, &key)) {
                return Err(EventRejected::CarriedByCurrent { anchor: key, current: cur });
            }
        }
        self.state.anchors.remove(i);
        if self.state.current.as_ref() == Some(&key) {
            self.state.current = None;
        }
        self.state.context_timestamp = Some(event.timestamp);
        self.state.last_change = Some((event.id.clone(), event.name.clone()));
        self.broadcast(&event, None, now);
        // Views first, while the anchors about to go are still recorded: the closes sent
        // carry their contexts as they were opened.
        self.reconcile_views(&event, now);
        self.derive_closes(&event, &key, now);
        Ok(())
    }

    /// Closes (in the record) the anchors derived from a closed source, unless another open
    /// context still carries them: such an anchor now goes with that context (with the
    /// context it was derived from, if the carrier is itself derived), so it closes when the
    /// last context carrying it closes. Subscribers are told by [`Topic::reconcile_views`].
    fn derive_closes(&mut self, _source: &Event, source_key: &ResourceKey, _now: Timestamp) {
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
                self.state.anchors.set_derived_from(i, Some(carrier));
                continue;
            }
            let i = self.state.anchor_index(&key).expect("listed above");
            self.state.anchors.remove(i);
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
        // The content after the update, measured before anything changes (req 111: all or
        // nothing).
        let mut content = self.state.anchors[i].content.clone();
        content.apply(&bundle);
        let bytes = super::store::content_row(&content).len();
        if bytes > self.config.max_content_bytes {
            return Err(EventRejected::ContentTooLarge { anchor: key, bytes, max: self.config.max_content_bytes });
        }
        let total = self.stored_bytes() - self.state.anchors[i].content_bytes + bytes;
        if total > self.config.max_topic_bytes {
            // What cannot be evicted: what the current context carries, and this anchor.
            let current = self.state.current.as_ref();
            let current_open = current.and_then(|k| self.state.anchor(k)).map(|a| &a.open);
            let kept: usize = self
                .state
                .anchors
                .iter()
                .filter(|a| in_use(a, current, current_open, Some(&key)))
                .map(|a| if a.key == key { a.open_bytes + bytes } else { a.stored_bytes() })
                .sum();
            if kept > self.config.max_topic_bytes {
                return Err(EventRejected::TopicFull { bytes: kept, max: self.config.max_topic_bytes });
            }
        }
        let version = self.state.mint();
        let prior = self.state.anchors.set_content(i, content, bytes, version.clone());
        event.version_id = Some(version.clone());
        event.prior_version_id = Some(prior);
        self.evict_old_anchors(Some(&key));
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
        let recording = self.config.record;
        let mut to = Vec::new();
        let (subs, out) = (&mut self.state.subscriptions, &mut self.outbound);
        subs.update_where(|sub| {
            if !sub.is_connected() || !sub.wants(&event.name) || skip_subscribers_of.is_some_and(|s| sub.wants(s)) {
                return false;
            }
            if recording {
                to.push(sub.display_name());
            }
            out.push_back(Outbound::Send { to: sub.endpoint.clone(), text: text.clone() });
            sub.pending.push(super::state::PendingAck {
                id: id.clone(),
                event: event.name.clone(),
                deadline,
                source: None,
            });
            sub.note_direct(event);
            true
        });
        if !to.is_empty() {
            let what = FactKind::Notified { id: event.id.clone(), event: event.name.clone(), to, derived_from: None };
            self.record(now, what);
        }
    }

    /// After a context change (`source`), sends every connected subscriber whose view
    /// ([`crate::view`]) is not what it shows the events that get it there (decision,
    /// ARCHITECTURE.md "views"; req 97-99):
    /// - a view to show: the opens the current context implies that it follows and was not
    ///   sent yet (least specific first, so a patient comes before its study; req 98: never
    ///   twice), ending with the view's own open; or the current open itself, with a fresh
    ///   id, when the subscriber follows it but missed it;
    /// - an empty view (the current context closed, `Home-open`, `UserLogout`, or nothing it
    ///   follows is current): a close of everything it was sent opens of, most specific first,
    ///   for the close events it follows.
    ///
    /// Each derived event names `source` as its source, so a refusal of it is reported as a
    /// refusal of `source` (req 81: the app that sent it resends). With `derive_opens` off
    /// nothing is derived.
    pub(crate) fn reconcile_views(&mut self, source: &Event, now: Timestamp) {
        if !self.config.derive_opens {
            return;
        }
        let tokens: Vec<String> =
            self.state.subscriptions.values().filter(|s| s.is_connected()).map(|s| s.endpoint.clone()).collect();
        let mut round = ViewRound::new(self, Some(source), now);
        for token in tokens {
            self.reconcile_view(&token, &mut round, now);
        }
    }

    /// [`Topic::reconcile_views`] for one subscriber (after its replay).
    pub(crate) fn reconcile_one(&mut self, token: &str, now: Timestamp) {
        if self.config.derive_opens {
            let mut round = ViewRound::new(self, None, now);
            self.reconcile_view(token, &mut round, now);
        }
    }

    fn reconcile_view(&mut self, token: &str, round: &mut ViewRound, now: Timestamp) {
        let Some(sub) = self.state.subscriptions.get_mut(token) else { return };
        if !sub.is_connected() {
            return;
        }
        if !sub.events.iter().any(|e| e.kind() == EventKind::Open) {
            // It follows no open event, so it shows no context: nothing to keep it on.
            sub.shown = None;
            sub.told.clear();
            return;
        }
        let sub = &self.state.subscriptions[token];
        let view = round.view_of(&sub.events);
        if view.as_ref().map(|v| &v.anchor) == sub.shown.as_ref() && !sub.view_refused {
            return;
        }
        let mut wanted: Vec<(EventName, ResourceKey)> = Vec::new();
        match &view {
            // Only the view's own open: an app that follows patients and studies is sent the
            // study (its context names the patient), never the patient on the way, which would
            // make it show, and say in sync on, what is not its view.
            Some(v) => wanted.push((v.name.clone(), v.anchor.clone())),
            None => {
                let mut told = sub.told.clone();
                if let Some(k) = &sub.shown {
                    if !told.contains(k) {
                        told.push(k.clone());
                    }
                }
                for k in told.into_iter().rev() {
                    match EventName::of(&k.resource_type, EventKind::Close) {
                        Some(name) if sub.wants(&name) => wanted.push((name, k)),
                        _ => {}
                    }
                }
            }
        }
        for (name, anchor) in wanted {
            let i = match round.built.iter().position(|b| b.event.name == name && b.anchor == anchor) {
                Some(i) => i,
                None => {
                    let built = self.build_derived(&name, &anchor, view.as_deref(), round);
                    round.built.push(built);
                    round.built.len() - 1
                }
            };
            let b = &round.built[i];
            let (event, text, source) = (b.event.clone(), b.text.clone(), b.source.clone());
            self.send_to(token, text, &event, source, now);
            if let Some(sub) = self.state.subscriptions.get_mut(token) {
                sub.note_direct(&event);
            }
        }
    }

    /// A derived event of this round, built and serialised once for every subscriber that
    /// needs it (as a broadcast is): the view's open, or a close of what a view showed.
    fn build_derived(
        &mut self,
        name: &EventName,
        anchor: &ResourceKey,
        view: Option<&crate::view::View>,
        round: &ViewRound,
    ) -> Derived {
        let stamp = round.stamp;
        let mut event = match (view, &round.current_open) {
            (Some(v), Some(cur)) if v.name == cur.name => {
                let mut ev = cur.clone();
                ev.id = self.state.mint();
                ev.timestamp = ev.timestamp.max(stamp);
                ev
            }
            (Some(v), Some(cur)) => {
                // The derived open this very event recorded goes out as recorded (so it is
                // replayed later with the same id); any other gets a fresh id, since a
                // subscriber may have answered the recorded one before (it would take it for a
                // duplicate and not apply it).
                let fresh = self.fresh_derived.contains(&v.anchor);
                let recorded = self.state.anchor(&v.anchor).filter(|a| {
                    fresh && a.open.name == v.name && a.open.context == v.context && a.open.timestamp >= stamp
                });
                match recorded {
                    Some(a) => a.open.clone(),
                    None => Event {
                        timestamp: cur.timestamp.max(stamp),
                        id: self.state.mint(),
                        topic: self.state.topic.clone(),
                        name: v.name.clone(),
                        version_id: None,
                        prior_version_id: None,
                        context: v.context.clone(),
                    },
                }
            }
            _ => {
                let context = match self.state.anchor(anchor) {
                    Some(a) => a.open.context.clone(),
                    None => vec![ContextEntry::new(
                        name.anchor_key().unwrap_or("patient"),
                        ValueField::Resource,
                        &serde_json::json!({"resourceType": anchor.resource_type, "id": anchor.id}),
                    )],
                };
                Event {
                    timestamp: stamp,
                    id: self.state.mint(),
                    topic: self.state.topic.clone(),
                    name: name.clone(),
                    version_id: None,
                    prior_version_id: None,
                    context,
                }
            }
        };
        if event.name.kind() == EventKind::Open {
            event.version_id = self.state.anchor(anchor).map(|a| a.version_id.clone());
        }
        // What a refusal of it names (req 81): an open is derived from the current context's
        // open, whatever made it necessary; a close from the change that emptied the view.
        let source = if view.is_some() { round.current_source.clone() } else { round.change_source.clone() };
        if let Some(s) = &source {
            self.note_derived(&event.id, s);
        }
        Derived { text: event.to_json().into(), anchor: anchor.clone(), event, source }
    }

    /// Remembers that the Hub derived `id` from `source` (the last `dedup_window`): a
    /// subscriber's SyncError about it is relayed as about the source.
    pub(crate) fn note_derived(&mut self, id: &str, source: &(Arc<str>, EventName)) {
        if self.state.derived_ids.iter().any(|(d, _)| d == id) {
            return;
        }
        self.state.derived_ids.push_back((id.to_owned(), (source.0.to_string(), source.1.clone())));
        while self.state.derived_ids.len() > self.config.dedup_window.min(super::store::DERIVED_IDS_KEPT) {
            self.state.derived_ids.pop_front();
        }
    }

    /// Sends one notification to one subscriber and waits for its answer; `source` is the
    /// event it was derived from, if any.
    pub(crate) fn send_to(
        &mut self,
        token: &str,
        text: Arc<str>,
        event: &Event,
        source: Option<(Arc<str>, EventName)>,
        now: Timestamp,
    ) {
        let deadline = now.add(self.config.ack_timeout);
        if let Some(sub) = self.state.subscriptions.get_mut(token) {
            let derived_from = source.as_ref().map(|(id, _)| id.to_string());
            let name = self.config.record.then(|| sub.display_name());
            sub.pending.push(super::state::PendingAck {
                id: event.id.as_str().into(),
                event: event.name.clone(),
                deadline,
                source,
            });
            self.outbound.push_back(Outbound::Send { to: token.to_owned(), text });
            if let Some(name) = name {
                self.record_sent(now, &event.id, &event.name, name, derived_from.as_deref());
            }
        }
    }
}

/// Whether eviction must keep anchor `a`: the current anchor, one the current context carries,
/// or `spare` (an anchor whose content just grew).
fn in_use(
    a: &OpenAnchor,
    current: Option<&ResourceKey>,
    current_open: Option<&Event>,
    spare: Option<&ResourceKey>,
) -> bool {
    Some(&a.key) == current || Some(&a.key) == spare || current_open.is_some_and(|o| carries(o, &a.key))
}

/// What identifies a request for duplicate detection (req 139): same id, event, time and
/// anchor is a retry; same id with anything else is a different event.
fn fingerprint(e: &Event) -> String {
    let anchor = e.anchor().map(|k| k.to_string()).unwrap_or_default();
    format!("{}|{}|{}", e.name, e.timestamp.unix_nanos(), anchor)
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

/// One round of views (after one context change, or for one subscriber after its replay): what
/// every subscriber's view is computed from, and the derived events already built in it.
struct ViewRound {
    current_open: Option<Event>,
    /// Derived events are stamped with the change that made them necessary (the newest
    /// context timestamp), never earlier: a follower ignores an event older than what it
    /// applied last (req 67), e.g. the close that emptied its view before the re-open.
    stamp: Timestamp,
    current_source: Option<(Arc<str>, EventName)>,
    /// The change that emptied views (or the last change, for a subscriber just connected).
    change_source: Option<(Arc<str>, EventName)>,
    built: Vec<Derived>,
    /// The views computed this round, by the events they were computed for: subscribers
    /// mostly follow the same events, and a view clones the current context.
    views: Vec<(Vec<EventName>, Option<std::rc::Rc<crate::view::View>>)>,
}

impl ViewRound {
    fn new(topic: &Topic, source: Option<&Event>, now: Timestamp) -> Self {
        let st = &topic.state;
        let current_open = st.current.as_ref().and_then(|k| st.anchor(k)).map(|a| a.open.clone());
        let pair = |id: &str, name: &EventName| (Arc::<str>::from(id), name.clone());
        ViewRound {
            current_source: current_open.as_ref().map(|c| pair(&c.id, &c.name)),
            change_source: source
                .map(|e| pair(&e.id, &e.name))
                .or_else(|| st.last_change.as_ref().map(|(id, name)| pair(id, name))),
            stamp: st.context_timestamp.unwrap_or(now),
            current_open,
            built: Vec::new(),
            views: Vec::new(),
        }
    }

    /// The view of a subscriber following `granted` ([`crate::view::view_of`]), computed once
    /// per distinct `granted` in a round.
    fn view_of(&mut self, granted: &[EventName]) -> Option<std::rc::Rc<crate::view::View>> {
        if let Some((_, v)) = self.views.iter().find(|(g, _)| g.as_slice() == granted) {
            return v.clone();
        }
        let v = crate::view::view_of(granted, self.current_open.as_ref()).map(std::rc::Rc::new);
        self.views.push((granted.to_vec(), v.clone()));
        v
    }
}

/// A derived event of a round, serialised once.
struct Derived {
    anchor: ResourceKey,
    event: Event,
    text: Arc<str>,
    source: Option<(Arc<str>, EventName)>,
}

/// `SyncError`, for a SyncError whose OperationOutcome names an event that is not one.
fn name_of_sync_error() -> EventName {
    EventName::parse("SyncError").expect("catalogued")
}
