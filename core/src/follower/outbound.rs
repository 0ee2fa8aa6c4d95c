//! What the app sends: its own events (req 76-83), their resends after a SyncError (req 81),
//! and the SyncErrors it posts after deferring and refusing (req 75, 94).

use super::{is_context_change, Follower, OutOfSyncReason, Output, Own, OwnPhase, Snapshot, SyncStatus};
use crate::catalog::{EventKind, EventName};
use crate::event::{Event, EventError};
use crate::syncerror::{IssueCode, Severity, SyncErrorDetails};
use crate::time::Timestamp;
use crate::wire::ContextEntry;

/// Why an own event cannot be prepared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The event is malformed.
    #[error(transparent)]
    Invalid(#[from] EventError),
    /// An update of an anchor whose version is not known: open it (or receive its open)
    /// first (req 117).
    #[error("no context.versionId is known for {anchor}; an anchor must be open before it is updated (req 117)")]
    UnknownVersion {
        /// The anchor, as `Type/id`.
        anchor: String,
    },
    /// The id is already in use by an event this app sent.
    #[error("the id {0:?} is already used by an event this app sent (req 77)")]
    DuplicateId(String),
}

impl Follower {
    /// Builds an own event for the shell to POST (req 76-77): `id` must be unique (a UUID).
    /// The timestamp is `now`, but never earlier than the newest context change seen, so a
    /// skewed clock cannot make the Hub or the other apps take it for a stale event (req 67).
    /// An update carries the anchor's current `context.versionId` (req 117).
    pub fn prepare(
        &mut self,
        name: EventName,
        context: Vec<ContextEntry>,
        id: &str,
        now: Timestamp,
    ) -> Result<Event, PrepareError> {
        if self.own.contains_key(id) {
            return Err(PrepareError::DuplicateId(id.to_owned()));
        }
        let mut timestamp = now;
        if is_context_change(name.kind()) {
            if let Some(ts) = self.context_ts {
                timestamp = timestamp.max(ts);
            }
        }
        let mut event = Event {
            timestamp,
            id: id.to_owned(),
            topic: self.topic.clone(),
            name,
            version_id: None,
            prior_version_id: None,
            context,
        };
        if event.name.kind() == EventKind::Update {
            let anchor = event.anchor().ok_or_else(|| {
                PrepareError::Invalid(EventError::MissingKey {
                    event: event.name.to_string(),
                    key: event.name.anchor_key().unwrap_or("anchor"),
                })
            })?;
            let v = self
                .versions
                .get(&anchor)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| PrepareError::UnknownVersion { anchor: anchor.to_string() })?;
            event.version_id = Some(v.clone());
        }
        event.validate()?;
        self.own.insert(id.to_owned(), Own { event: event.clone(), phase: OwnPhase::Posting, resends: 0 });
        self.remember_own(id);
        Ok(event)
    }

    /// The Hub's answer to a POSTed own event: `Ok` for 2xx, else the status and message.
    /// Accepted events wait for their echo (req 80); an event the app does not subscribe to
    /// has no echo and is done at once. A refused update means the version moved on: the
    /// follower resynchronises (req 117).
    pub fn handle_post_result(&mut self, id: &str, result: Result<(), (u16, String)>, now: Timestamp) {
        if self.own.get(id).is_some_and(|o| matches!(o.phase, OwnPhase::SyncError { .. })) {
            self.sync_error_posted(id, result, now);
            return;
        }
        let Some(own) = self.own.get_mut(id) else { return };
        match result {
            Ok(()) => {
                if !matches!(own.phase, OwnPhase::Posting) {
                    return;
                }
                // The echo comes on the socket (req 80): only while connected and subscribed
                // to the event; else the Hub's acceptance is all there will be.
                if self.confirmed && self.granted.contains(&own.event.name) {
                    own.phase = OwnPhase::Accepted { since: now };
                } else {
                    own.phase = OwnPhase::Echoed { at: now };
                    self.outputs.push_back(Output::Published { id: id.to_owned() });
                }
            }
            Err((status, message)) => {
                let own = self.own.remove(id).expect("checked");
                self.outputs.push_back(Output::PublishFailed { id: id.to_owned(), status, message });
                if own.event.name.kind() == EventKind::Update && status == 409 {
                    self.request_snapshot();
                }
            }
        }
    }

    pub(super) fn own_echoed(&mut self, id: &str, now: Timestamp) {
        if let Some(o) = self.own.get_mut(id) {
            if !matches!(o.phase, OwnPhase::Echoed { .. } | OwnPhase::Refused { .. }) {
                o.phase = OwnPhase::Echoed { at: now };
                self.outputs.push_back(Output::Published { id: id.to_owned() });
            }
        }
    }

    /// The Hub's answer to a SyncError this app POSTed. Until the Hub accepts it, the other
    /// apps have not been told, so a failure is retried: at once with a new id if the Hub took
    /// the id for a reused one (409), after [`super::FollowerConfig::resync_retry`] if the
    /// network or the Hub failed (status 0 or 5xx), up to `max_resends` times. A refusal that
    /// retrying cannot change (another 4xx) is given up.
    fn sync_error_posted(&mut self, id: &str, result: Result<(), (u16, String)>, now: Timestamp) {
        let Some(mut post) = self.own.remove(id) else { return };
        let Err((status, _)) = result else { return };
        if post.resends >= self.config.max_resends {
            return;
        }
        post.resends += 1;
        post.event.id = self.mint_sync_error_id(&post.event.id);
        match status {
            409 => {
                post.phase = OwnPhase::SyncError { retry_at: None };
                self.outputs.push_back(Output::Post(post.event.clone()));
            }
            0 | 500..=599 => post.phase = OwnPhase::SyncError { retry_at: Some(now.add(self.config.resync_retry)) },
            _ => return,
        }
        self.own.insert(post.event.id.clone(), post);
    }

    /// Remembers an own event's id (bounded like the other id memories).
    fn remember_own(&mut self, id: &str) {
        if self.own_ids.len() >= self.config.dedup_window.max(1) {
            self.own_ids.remove(0);
        }
        self.own_ids.push(id.to_owned());
    }

    /// A fresh SyncError id: the failed event's id (so logs pair them; its first 64 bytes, so
    /// the id stays within the Hub's 256), this follower's instance and a counter.
    fn mint_sync_error_id(&mut self, about: &str) -> String {
        self.sync_errors_minted += 1;
        let mut base = crate::before(about, "-syncerror");
        if base.len() > 64 {
            let mut cut = 64;
            while !base.is_char_boundary(cut) {
                cut -= 1;
            }
            base = &base[..cut];
        }
        if self.instance.is_empty() {
            format!("{base}-syncerror-{}", self.sync_errors_minted)
        } else {
            format!("{base}-syncerror-{}-{}", self.instance, self.sync_errors_minted)
        }
    }

    /// POSTs a SyncError about `event` (req 75, 94): severity warning, this app's name.
    pub(super) fn post_sync_error(&mut self, event: &Event, diagnostics: String, now: Timestamp) {
        let details = SyncErrorDetails {
            event_id: event.id.clone(),
            event_name: event.name.to_string(),
            subscriber_name: self.display_name(),
            diagnostics,
            code: IssueCode::Processing,
            // Seed 003: a subscriber's own SyncError after a 202 is `warning`.
            severity: Severity::Warning,
        };
        let id = self.mint_sync_error_id(&event.id);
        let e = Event {
            timestamp: now,
            id,
            topic: self.topic.clone(),
            name: EventName::parse("SyncError").unwrap_or_else(|_| unreachable!("catalogued")),
            version_id: None,
            prior_version_id: None,
            context: vec![details.context_entry()],
        };
        self.own
            .insert(e.id.clone(), Own { event: e.clone(), phase: OwnPhase::SyncError { retry_at: None }, resends: 0 });
        self.outputs.push_back(Output::Post(e));
    }

    /// Runs what is due: answers for undecided notifications (req 75), resends (req 81), the
    /// end of a resend's confirmation window, and get-current-context retries.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.notification_timeouts(now);
        let ids: Vec<String> = self.own.keys().cloned().collect();
        for id in ids {
            let o = &self.own[&id];
            match o.phase {
                OwnPhase::Refused { at } if at <= now => self.resend(&id, now),
                OwnPhase::SyncError { retry_at: Some(at) } if at <= now => {
                    let o = self.own.get_mut(&id).expect("listed");
                    o.phase = OwnPhase::SyncError { retry_at: None };
                    let event = o.event.clone();
                    self.outputs.push_back(Output::Post(event));
                }
                OwnPhase::Echoed { at } | OwnPhase::Accepted { since: at }
                    if at.add(self.config.confirm_window) <= now =>
                {
                    let o = self.own.remove(&id).expect("listed");
                    // An echoed resend that drew no SyncError: the others followed (req 81).
                    if o.resends > 0
                        && matches!(
                            &self.status,
                            SyncStatus::OutOfSync { reason: OutOfSyncReason::OwnEventNotFollowed { .. } }
                        )
                    {
                        self.settle_in_sync();
                    }
                }
                _ => {}
            }
        }
        if let Snapshot::RetryAt(t) = self.snapshot {
            if t <= now {
                self.snapshot = Snapshot::Idle;
                self.request_snapshot();
            }
        }
    }

    /// Resends a refused own event with a new id and its original timestamp (req 81, §5a-18:
    /// a new id, because the Hub treats a repeated id as a retry and would not broadcast it),
    /// unless a newer context change arrived or the resends are used up.
    fn resend(&mut self, id: &str, _now: Timestamp) {
        let o = self.own.remove(id).expect("caller checked");
        let superseded =
            is_context_change(o.event.name.kind()) && self.context_ts.is_some_and(|ts| ts > o.event.timestamp);
        if superseded || o.resends >= self.config.max_resends {
            return;
        }
        let mut event = o.event.clone();
        let base = crate::before(id, "-resend-");
        event.id = format!("{base}-resend-{}", o.resends + 1);
        self.own
            .insert(event.id.clone(), Own { event: event.clone(), phase: OwnPhase::Posting, resends: o.resends + 1 });
        self.remember_own(&event.id);
        self.outputs.push_back(Output::Post(event));
    }
}
