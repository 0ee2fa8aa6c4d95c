//! What arrives from the Hub: the WebSocket's messages, the app's decisions about them, and
//! get-current-context snapshots.

use serde_json::value::RawValue;

use super::{
    is_context_change, Context, Decision, Follower, OutOfSyncReason, Output, OwnPhase, Pending, Snapshot,
    SyncErrorNotice, SyncStatus,
};
use crate::catalog::{anchor_key, EventKind, EventName};
use crate::event::Event;
use crate::syncerror::SyncErrorDetails;
use crate::time::Timestamp;
use crate::vecmap::VecMap;
use crate::wire::{Ack, Confirmation, CurrentContext, ResourceKey};

impl Follower {
    /// A text message from the Hub's WebSocket: a confirmation, a denial, or a notification.
    /// Returns an error (for logs) only for text that is none of these; a notification that
    /// cannot be read but has an `id` is answered `400` so the Hub knows (req 70-71).
    pub fn handle_text(&mut self, text: &str, now: Timestamp) -> Result<(), String> {
        // The members as raw JSON, read only as far as needed (as serde_json's Map would read
        // them, without `Value`'s code in the browser SDK's wasm).
        let v: VecMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
        let field = |name: &str| v.get(name).and_then(|f| serde_json::from_str::<String>(f.get()).ok());
        match field("hub.mode").as_deref() {
            Some("subscribe") => {
                let c = Confirmation::parse(text).map_err(|e| format!("bad confirmation: {e}"))?;
                self.granted = c.events.split(',').filter_map(|e| EventName::parse(e).ok()).collect();
                if self.confirmed {
                    // A second confirmation on the same connection: a renewed lease (req 57) or
                    // changed events (req 35, §5a-2). Nothing the app shows has changed, and
                    // newly granted events are replayed as notifications.
                    return Ok(());
                }
                self.confirmed = true;
                if self.config.resync_with_get {
                    self.request_snapshot();
                    self.set_status(SyncStatus::Connecting);
                } else {
                    self.set_status(SyncStatus::InSync);
                }
                return Ok(());
            }
            Some("denied") => {
                // A `wire::Denial`, read from the members at hand (its own deserialiser would
                // cost the browser SDK's wasm): hub.topic and hub.events are required strings,
                // hub.reason an optional one.
                if field("hub.topic").is_none() || field("hub.events").is_none() {
                    return Err("bad denial: hub.topic and hub.events must be strings".into());
                }
                let reason = match v.get("hub.reason") {
                    Some(r) => serde_json::from_str::<Option<String>>(r.get())
                        .map_err(|e| format!("bad denial: hub.reason: {e}"))?,
                    None => None,
                };
                let reason = reason.unwrap_or_else(|| "subscription denied".into());
                self.connection_ended();
                self.set_status(SyncStatus::Disconnected {
                    reason: format!("the hub ended the subscription: {reason}"),
                });
                self.outputs.push_back(Output::Resubscribe { reason });
                return Ok(());
            }
            Some(other) => return Err(format!("unknown hub.mode {other:?}")),
            None => {}
        }
        match Event::parse_envelope(text) {
            Ok(event) => {
                self.handle_notification(event, now);
                Ok(())
            }
            Err(e) => match field("id").as_deref() {
                Some(id) => {
                    self.ack(id, 400);
                    Err(format!("unreadable notification {id}: {e}"))
                }
                None => Err(format!("unreadable message: {e}")),
            },
        }
    }

    fn ack(&mut self, id: &str, status: u16) {
        let text = serde_json::to_string(&Ack { id: id.to_owned(), status })
            .unwrap_or_else(|_| unreachable!("acks serialise"));
        self.outputs.push_back(Output::Send(text));
        self.answered.push_back((id.to_owned(), status));
        while self.answered.len() > self.config.dedup_window {
            self.answered.pop_front();
        }
    }

    fn handle_notification(&mut self, event: Event, now: Timestamp) {
        // Duplicates (a retry, a replay of what we have): answered as before, not delivered.
        // A context change sent again is still the newest the Hub sent: the replay on a new
        // connection ends with the current context, which this app may have answered before.
        if let Some((_, status)) = self.answered.iter().find(|(id, _)| *id == event.id) {
            let status = *status;
            self.ack(&event.id, status);
            let kind = event.name.kind();
            if is_context_change(kind) && self.context_ts.is_none_or(|ts| event.timestamp >= ts) {
                self.supersede_undecided(kind);
                let shown = self.current.as_ref().map(|c| &c.anchor);
                if (200..300).contains(&status) && kind == EventKind::Open && event.anchor().as_ref() != shown {
                    // An open this app followed before, sent again (a replay passes through
                    // older opens on its way to the current one): it is current again, so the
                    // app shows it again, as it did.
                    self.apply(&event);
                    self.outputs.push_back(Output::ContextChanged(self.current.clone()));
                    self.settle_in_sync();
                } else if !(200..300).contains(&status) {
                    // The Hub sent again a change this app refused (a replay after a reconnect):
                    // it is still the newest, and still refused. Whatever the app followed on
                    // the way (a replay passes through older opens), it is not in sync.
                    self.diverged = true;
                    self.refused = Some((event.id.clone(), event.name.to_string()));
                    self.set_refused(event.id.clone(), event.name.to_string());
                }
            }
            return;
        }
        if self.pending.contains_key(&event.id) {
            return;
        }
        let kind = event.name.kind();
        match kind {
            EventKind::SyncError => {
                self.ack(&event.id, 200);
                self.handle_sync_error(event, now);
            }
            EventKind::Heartbeat => self.ack(&event.id, 200),
            _ if is_context_change(kind) => {
                if self.context_ts.is_some_and(|ts| event.timestamp < ts) {
                    // Older than what set the current context: ignored (req 67). Nothing to do,
                    // so nothing failed: 200.
                    self.ack(&event.id, 200);
                    return;
                }
                self.remember(&event);
                if let Snapshot::Requested { dirty } = &mut self.snapshot {
                    *dirty = true;
                }
                self.supersede_undecided(kind);
                if self.own.contains_key(&event.id) {
                    self.ack(&event.id, 200);
                    self.apply(&event);
                    self.own_echoed(&event.id, now);
                    self.outputs.push_back(Output::ContextChanged(self.current.clone()));
                    self.settle_in_sync();
                    return;
                }
                self.deliver(event, now);
            }
            EventKind::Update => {
                // A snapshot under way may have been taken before this update: its content
                // would be older than what the Hub holds now. Asked for again (as for a context
                // change): applied, it would put an app that refused this update back in sync
                // on the older content.
                // Only for the anchor shown: updates of others do not change what a snapshot
                // says (and would keep it from ever being taken, when they come faster).
                if self.current.as_ref().is_some_and(|c| event.anchor().is_some_and(|a| a == c.anchor)) {
                    if let Snapshot::Requested { dirty } = &mut self.snapshot {
                        *dirty = true;
                    }
                }
                if self.own.contains_key(&event.id) {
                    self.ack(&event.id, 200);
                    let before = self.current.as_ref().and_then(|c| c.version_id.clone());
                    self.apply(&event);
                    self.own_echoed(&event.id, now);
                    // The app's own update changed what it shows (its version, its resources):
                    // told as another app's would be.
                    if self.current.as_ref().and_then(|c| c.version_id.clone()) != before {
                        self.outputs.push_back(Output::ContextChanged(self.current.clone()));
                    }
                    return;
                }
                if let Some(anchor) = event.anchor() {
                    if self.versions.get(&anchor).is_some_and(|v| v.is_empty()) {
                        // Its content is unknown (a missed update while it was not current): it
                        // is read again when it becomes current; nothing to apply meanwhile.
                        self.ack(&event.id, 200);
                        return;
                    }
                    let known = self.versions.get(&anchor);
                    if known.is_some() && known != event.prior_version_id.as_ref() {
                        self.ack(&event.id, 202);
                        if self.current.as_ref().is_none_or(|c| c.anchor != anchor) {
                            // Missed while not on screen: get-current-context would not carry
                            // it, so it is read again when it becomes current (decision, issue
                            // 12); what the app shows now is not affected.
                            self.shared.remove(&anchor);
                            self.versions.insert(anchor, String::new());
                            return;
                        }
                        // A missed update: the content is unknown until resynchronised.
                        self.shared.remove(&anchor);
                        self.set_status(SyncStatus::OutOfSync {
                            reason: OutOfSyncReason::VersionGap { anchor: anchor.to_string() },
                        });
                        self.request_snapshot();
                        return;
                    }
                }
                self.deliver(event, now);
            }
            _ => {
                if self.own.contains_key(&event.id) {
                    self.ack(&event.id, 200);
                    self.own_echoed(&event.id, now);
                    return;
                }
                self.deliver(event, now);
            }
        }
    }

    /// A newer context change (of kind `kind`) makes the older undecided ones moot, whether it
    /// is another app's, this app's own echo, or one sent again: a late decision must not apply
    /// them over it. Those not answered yet are answered 202 now.
    ///
    /// An open (or Home-open, logout) sets the whole current context, whatever came before. A
    /// close does not: it acts on the context the app never reached (the Hub still holds an
    /// open that is not the one closed), so the app has diverged until a snapshot says what the
    /// Hub holds.
    fn supersede_undecided(&mut self, kind: EventKind) {
        let mut moot = Vec::new();
        let mut superseded = false;
        for (id, p) in self.pending.iter_mut() {
            if is_context_change(p.event.name.kind()) && !p.superseded {
                p.superseded = true;
                superseded = true;
                if !p.acked_202 {
                    p.acked_202 = true;
                    moot.push(id.clone());
                }
            }
        }
        for id in moot {
            self.ack(&id, 202);
        }
        if superseded && kind == EventKind::Close {
            self.diverged = true;
            self.request_snapshot();
        }
    }

    /// Hands a notification to the app. Until the app has followed a context change it does
    /// not show what the Hub holds, so an in-sync follower is `Deciding` meanwhile (and back
    /// in sync as soon as the app accepts, in the same turn for an app that decides at once).
    fn deliver(&mut self, event: Event, now: Timestamp) {
        let deadline = now.add(self.config.answer_within);
        self.pending.insert(
            event.id.clone(),
            Pending { event: event.clone(), received: now, acked_202: false, deadline, superseded: false },
        );
        let deciding = matches!(
            self.status,
            SyncStatus::InSync | SyncStatus::OutOfSync { reason: OutOfSyncReason::Deciding { .. } }
        );
        if deciding && self.holds_sync(&event) {
            self.set_status(SyncStatus::OutOfSync {
                reason: OutOfSyncReason::Deciding { event_id: event.id.clone(), event_name: event.name.to_string() },
            });
        }
        self.outputs.push_back(Output::Deliver(event));
    }

    fn remember(&mut self, event: &Event) {
        self.history.push_back((event.id.clone(), event.timestamp));
        while self.history.len() > self.config.dedup_window {
            self.history.pop_front();
        }
    }

    /// The app's decision about a delivered notification (req 71, 75). Decisions about
    /// notifications already answered for good, or superseded by a newer context change, are
    /// ignored.
    pub fn decide(&mut self, id: &str, decision: Decision, now: Timestamp) {
        let Some(mut p) = self.pending.remove(id) else { return };
        if p.superseded {
            return;
        }
        let kind = p.event.name.kind();
        let name = p.event.name.to_string();
        match decision {
            Decision::Accept => {
                if !p.acked_202 {
                    self.ack(id, 200);
                }
                self.apply(&p.event);
                if is_context_change(kind) {
                    self.context_ts = Some(self.context_ts.map_or(p.event.timestamp, |t| t.max(p.event.timestamp)));
                }
                self.settle_in_sync();
            }
            Decision::Defer => {
                if !p.acked_202 {
                    self.ack(id, 202);
                    p.acked_202 = true;
                }
                p.deadline = p.received.add(self.config.decide_within);
                let holds = self.holds_sync(&p.event);
                self.pending.insert(id.to_owned(), p);
                if holds {
                    self.set_status(SyncStatus::OutOfSync {
                        reason: OutOfSyncReason::Deciding { event_id: id.to_owned(), event_name: name },
                    });
                }
            }
            Decision::Refuse | Decision::Fail => {
                let refused = decision == Decision::Refuse;
                if is_context_change(kind) || kind == EventKind::Update {
                    self.diverged = true;
                }
                if is_context_change(kind) {
                    self.refused = Some((id.to_owned(), name.clone()));
                }
                if !p.acked_202 {
                    self.ack(id, if refused { 409 } else { 500 });
                } else if !matches!(kind, EventKind::Update | EventKind::Select) {
                    // 202 then a refusal: a SyncError POSTed to the Hub (req 75, 94). Updates
                    // and selects are never answered with a SyncError (req 94).
                    let why = if refused { "refused to follow" } else { "failed to process" };
                    self.post_sync_error(&p.event, format!("{} {why} {name}", self.display_name()), now);
                }
                if is_context_change(kind) || kind == EventKind::Update {
                    self.set_refused(id.to_owned(), name);
                }
            }
        }
    }

    /// Out of sync because this app refused (or failed) `event_id`, unless disconnected (that
    /// status says more).
    fn set_refused(&mut self, event_id: String, event_name: String) {
        if !matches!(self.status, SyncStatus::Disconnected { .. }) {
            self.set_status(SyncStatus::OutOfSync { reason: OutOfSyncReason::Refused { event_id, event_name } });
        }
    }

    pub(super) fn display_name(&self) -> String {
        self.subscriber_name.clone().unwrap_or_else(|| "unnamed subscriber".into())
    }

    /// Applies an accepted (or own, echoed) event to what the app shows.
    fn apply(&mut self, event: &Event) {
        if matches!(event.name.kind(), EventKind::Open | EventKind::HomeOpen | EventKind::UserLogout) {
            self.diverged = false;
            self.refused = None;
        }
        match event.name.kind() {
            EventKind::Open => {
                if let Some(anchor) = event.anchor() {
                    // Current again, with content missed meanwhile: read it again (not in sync
                    // until the snapshot is applied: the follower stays out of sync, deciding,
                    // meanwhile).
                    let mut read = self.versions.get(&anchor).is_some_and(|v| v.is_empty());
                    // Content sharing: the content is known only if it was followed up to the
                    // version this open names. Else (an anchor opened before this app learnt its
                    // content: new, or opened earlier by another app) it is read the same way.
                    if self.shares(&anchor) {
                        let known = self.shared.contains_key(&anchor)
                            && event.version_id.is_some()
                            && self.versions.get(&anchor) == event.version_id.as_ref();
                        if !known {
                            self.shared.remove(&anchor);
                            read = true;
                        }
                    }
                    if read {
                        self.read_content(event);
                    }
                    if let Some(v) = &event.version_id {
                        self.versions.insert(anchor.clone(), v.clone());
                    }
                    self.current = Some(Context {
                        anchor,
                        event: event.name.clone(),
                        context: event.context.clone(),
                        version_id: event.version_id.clone(),
                        event_id: Some(event.id.clone()),
                        timestamp: Some(event.timestamp),
                    });
                }
            }
            EventKind::Close => {
                if let Some(anchor) = event.anchor() {
                    self.versions.remove(&anchor);
                    self.shared.remove(&anchor);
                    if self.current.as_ref().is_some_and(|c| c.anchor == anchor) {
                        self.current = None;
                    }
                }
            }
            EventKind::HomeOpen => self.current = None,
            EventKind::UserLogout => {
                self.current = None;
                self.versions.clear();
                self.shared.clear();
            }
            EventKind::Update => {
                if let (Some(anchor), Some(v)) = (event.anchor(), &event.version_id) {
                    if self.versions.get(&anchor).is_some_and(|known| Some(known) != event.prior_version_id.as_ref()) {
                        // Decided after the anchor moved on (a snapshot or a newer open set
                        // another version meanwhile): applying it would put older content over
                        // newer. The app followed it; what it shows is the newer state.
                        return;
                    }
                    if let Some(c) = self.current.as_mut().filter(|c| c.anchor == anchor) {
                        c.version_id = Some(v.clone());
                    }
                    // The update's Bundle, after those that gave the content at its prior version
                    // (checked on receipt). No Bundle: the content is no longer known.
                    let bundle = event.context.iter().find(|e| e.key == crate::bundle::UPDATES_KEY);
                    let full = match (self.shared.get_mut(&anchor), bundle) {
                        (Some(bundles), Some(b)) => {
                            bundles.push(b.value.clone());
                            bundles.len() > super::MAX_SHARED_BUNDLES
                        }
                        (Some(_), None) => true,
                        (None, _) => false,
                    };
                    let current = self.current.as_ref().is_some_and(|c| c.anchor == anchor);
                    self.versions.insert(anchor.clone(), v.clone());
                    if full {
                        // Read again in one piece (or no longer known): unknown until then.
                        self.shared.remove(&anchor);
                        if current {
                            self.read_content(event);
                        }
                    }
                }
            }
            _ => {}
        }
        if is_context_change(event.name.kind()) {
            self.context_ts = Some(self.context_ts.map_or(event.timestamp, |t| t.max(event.timestamp)));
        }
    }

    fn handle_sync_error(&mut self, event: Event, now: Timestamp) {
        let Ok(details) = SyncErrorDetails::from_context(&event.context) else { return };
        let own = self.own_ids.contains(&details.event_id);
        self.outputs.push_back(Output::SyncError(SyncErrorNotice {
            details: details.clone(),
            own_event: own,
            id: event.id.clone(),
        }));
        if own {
            // Still tracked: schedule its resend (req 81). Already resent: the resend is under
            // way, and this refusal, late, only tells the user.
            if let Some(o) = self.own.get_mut(&details.event_id) {
                o.phase = OwnPhase::Refused { at: now.add(self.config.resend_after) };
            }
            self.set_status(SyncStatus::OutOfSync {
                reason: OutOfSyncReason::OwnEventNotFollowed {
                    message: details.diagnostics.clone(),
                    event_id: details.event_id,
                    event_name: details.event_name,
                    subscriber: details.subscriber_name,
                },
            });
            return;
        }
        // A SyncError about a context change older than the current one says nothing about
        // now: every later change raises its own SyncError if it fails.
        let older = self
            .history
            .iter()
            .find(|(id, _)| *id == details.event_id)
            .is_some_and(|(_, ts)| self.context_ts.is_some_and(|c| *ts < c));
        if !older {
            self.set_status(SyncStatus::OutOfSync {
                reason: OutOfSyncReason::SyncError {
                    message: details.diagnostics,
                    event_id: details.event_id,
                    event_name: details.event_name,
                    subscriber: details.subscriber_name,
                },
            });
        }
    }

    /// Asks for a snapshot taken after now. A GET already under way may have been answered
    /// before what made the follower ask, so it is asked again once it returns.
    /// Not connected, nothing is asked: the next confirmation asks.
    pub(super) fn request_snapshot(&mut self) {
        if !self.config.resync_with_get || !self.confirmed {
            return;
        }
        match &mut self.snapshot {
            Snapshot::Requested { dirty } => *dirty = true,
            _ => {
                self.outputs.push_back(Output::FetchCurrentContext);
                self.snapshot = Snapshot::Requested { dirty: false };
            }
        }
    }

    /// The Hub's current context (req 100-106), asked for with
    /// [`Output::FetchCurrentContext`]. It replaces what the app shows, unless a context
    /// change arrived while it was under way: then it may be older than that change, and is
    /// asked for again.
    pub fn handle_snapshot(&mut self, snapshot: &CurrentContext, _now: Timestamp) {
        match self.snapshot {
            Snapshot::Requested { dirty: true } if self.confirmed => {
                self.snapshot = Snapshot::Requested { dirty: false };
                self.outputs.push_back(Output::FetchCurrentContext);
                return;
            }
            Snapshot::Requested { dirty: false } if self.confirmed => {}
            Snapshot::Requested { .. } => {
                // Asked for on a connection that has ended: the next confirmation asks again.
                self.snapshot = Snapshot::Idle;
                return;
            }
            _ => return,
        }
        self.snapshot = Snapshot::Idle;
        let current = context_from_snapshot(snapshot, &self.granted);
        if let Some((event_id, event_name)) = self.refused.clone() {
            // The app refused a context change (unsaved work, say) and has followed none since:
            // a snapshot must not switch it behind its back (seed 001). In sync only if the Hub
            // is back on what the app shows; else out of sync, as refused, until the app
            // follows a new change.
            if current.as_ref().map(|c| &c.anchor) != self.current.as_ref().map(|c| &c.anchor) {
                self.set_refused(event_id, event_name);
                return;
            }
            self.refused = None;
        }
        self.diverged = false;
        let mut content_learnt = false;
        if let Some(c) = &current {
            if let Some(v) = &c.version_id {
                self.versions.insert(c.anchor.clone(), v.clone());
            }
            // The anchor's content at that version (req 105): the `content` Bundle, or none.
            // Only for the snapshot's own anchor: an app that does not follow its open shows
            // a view of it (a patient implied by a report, say), whose content this is not.
            if self.shares(&c.anchor) && snapshot.context_type == c.anchor.resource_type {
                let content = snapshot.context.iter().find(|e| e.key == crate::bundle::CONTENT_KEY);
                let bundles = content.map(|e| vec![e.value.clone()]).unwrap_or_default();
                content_learnt = self
                    .shared
                    .get(&c.anchor)
                    .is_none_or(|old| !old.iter().map(|b| b.get()).eq(bundles.iter().map(|b| b.get())));
                self.shared.insert(c.anchor.clone(), bundles);
            }
        }
        // The snapshot names what the app already shows (the replay on connecting delivered
        // it): the app is told nothing new, and keeps what only the notification carried (its
        // id and timestamp).
        let same = match (&current, &self.current) {
            (Some(a), Some(b)) => {
                a.anchor == b.anchor && a.event == b.event && a.context == b.context && a.version_id == b.version_id
            }
            (a, b) => a.is_none() && b.is_none(),
        };
        if !same {
            self.current = current;
            self.outputs.push_back(Output::ContextChanged(self.current.clone()));
        } else if content_learnt {
            // Same context, its shared resources now known (or different): the app is told.
            self.outputs.push_back(Output::ContextChanged(self.current.clone()));
        }
        if matches!(self.status, SyncStatus::Disconnected { .. }) {
            return;
        }
        // A context change the app is still deciding about: not in sync until it has (and out
        // of `Connecting` now, so that its decision can settle the status).
        let undecided = self
            .pending
            .values()
            .filter(|p| !p.superseded && self.holds_sync(&p.event))
            .max_by_key(|p| p.received)
            .map(|p| (p.event.id.clone(), p.event.name.to_string()));
        match undecided {
            None => self.set_status(SyncStatus::InSync),
            Some((event_id, event_name)) => {
                self.set_status(SyncStatus::OutOfSync { reason: OutOfSyncReason::Deciding { event_id, event_name } })
            }
        }
    }

    /// Get-current-context failed; it is retried after [`super::FollowerConfig::resync_retry`].
    pub fn handle_snapshot_failed(&mut self, message: &str, now: Timestamp) {
        if !matches!(self.snapshot, Snapshot::Requested { .. }) {
            return;
        }
        if !self.confirmed {
            self.snapshot = Snapshot::Idle;
            return;
        }
        self.snapshot = Snapshot::RetryAt(now.add(self.config.resync_retry));
        if !matches!(self.status, SyncStatus::Disconnected { .. }) {
            self.set_status(SyncStatus::OutOfSync {
                reason: OutOfSyncReason::ResyncFailed { message: message.to_owned() },
            });
        }
    }

    /// Deadlines of delivered notifications (req 75).
    pub(super) fn notification_timeouts(&mut self, now: Timestamp) {
        let due: Vec<String> =
            self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| id.clone()).collect();
        for id in due {
            let mut p = self.pending.remove(&id).expect("listed");
            if p.superseded {
                continue;
            }
            if !p.acked_202 {
                // Undecided: answer 202 before the Hub gives up on us, keep waiting.
                self.ack(&id, 202);
                p.acked_202 = true;
                p.deadline = p.received.add(self.config.decide_within);
                let holds = self.holds_sync(&p.event);
                let name = p.event.name.to_string();
                self.pending.insert(id.clone(), p);
                if holds {
                    self.set_status(SyncStatus::OutOfSync {
                        reason: OutOfSyncReason::Deciding { event_id: id, event_name: name },
                    });
                }
            } else {
                // Still undecided 10 s after receipt: refused (req 75).
                self.pending.insert(id.clone(), p);
                self.decide(&id, Decision::Refuse, now);
            }
        }
    }
}

/// What an app following `granted` shows of the Hub's current context (`crate::view`): the
/// context itself if it follows its open event, else the most specific context it implies
/// that the app follows (a patient-only app joining while a report is current shows the
/// report's patient, as the Hub's derived open tells it), else nothing. With nothing granted
/// yet (no confirmation), the context as it is.
fn context_from_snapshot(s: &CurrentContext, granted: &[EventName]) -> Option<Context> {
    if s.context_type.is_empty() {
        return None;
    }
    let rt = crate::catalog::resource_type(&s.context_type)?;
    let open = EventName::of(rt, EventKind::Open)?;
    let context: Vec<_> = s.context.iter().filter(|e| e.key != "content").cloned().collect();
    if !granted.is_empty() && !granted.contains(&open) {
        let v = crate::view::view_of_context(granted, &open, &context)?;
        return Some(Context {
            anchor: v.anchor,
            event: v.name,
            context: v.context,
            version_id: None,
            event_id: None,
            timestamp: None,
        });
    }
    let key = anchor_key(rt);
    let header = s.context.iter().find(|e| e.key == key)?.resource_header()?;
    let anchor = ResourceKey::new(header.resource_type, header.id?);
    Some(Context { anchor, event: open, context, version_id: s.version_id.clone(), event_id: None, timestamp: None })
}
