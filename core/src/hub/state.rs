//! The persisted state of a topic. Everything here survives eviction and restarts; the
//! outbound queue does not (it is drained before the shell persists).

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bundle::Content;
use crate::catalog::{EventKind, EventName};
use crate::event::Event;
use crate::time::Timestamp;
use crate::wire::ResourceKey;

use super::store::StoredMeta;
use super::tracked::{Anchors, Subscriptions};

/// Everything a topic must remember (serialisable: the Durable Object stores it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    pub(crate) topic: String,
    /// Prefix of the ids this Hub mints, unique per topic instance.
    pub(crate) id_prefix: String,
    /// Counter behind minted ids and versions: strictly increasing.
    pub(crate) next_seq: u64,
    /// Subscriptions by endpoint token (one stored row each).
    pub(crate) subscriptions: Subscriptions,
    /// Open contexts, least recently opened first (req 122-125); each one's open event and
    /// content are stored rows of their own.
    pub(crate) anchors: Anchors,
    /// The current context: the most recent open, unless closed since (req 122, 124).
    pub(crate) current: Option<ResourceKey>,
    /// Timestamp of the last event that changed the current context (req 67).
    pub(crate) context_timestamp: Option<Timestamp>,
    /// The last accepted context change (id, name): what a SyncError about a subscriber that
    /// left is about when no context is current (a lost connection, an unanswered SyncError).
    #[serde(default)]
    pub(crate) last_change: Option<(String, EventName)>,
    /// Events this Hub derived (req 97) and sent, with the event each was derived from (the
    /// last `dedup_window`): a subscriber's SyncError about one is relayed as about its source.
    #[serde(default)]
    pub(crate) derived_ids: VecDeque<(String, (String, EventName))>,
    /// Recently accepted request ids and a fingerprint of their event (req 139).
    pub(crate) recent_ids: VecDeque<(String, String)>,
    /// When the next legacy heartbeat is due, if enabled and anyone is connected.
    pub(crate) next_heartbeat: Option<Timestamp>,
    /// What changed in the recent ids since the last write (not stored).
    #[serde(skip)]
    pub(crate) marks: WriteMarks,
}

/// Changes to the stored rows of recent request ids since the last write. Never part of the
/// state's equality: a restored state has none.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteMarks {
    /// Request ids appended (the newest ones).
    pub(crate) recent_appended: usize,
    /// None of the recent ids is stored as rows (a state read from an older format).
    pub(crate) recent_rewrite: bool,
}

impl PartialEq for WriteMarks {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl TopicState {
    pub(crate) fn new(topic: &str, id_prefix: &str) -> Self {
        TopicState {
            topic: topic.to_owned(),
            id_prefix: id_prefix.to_owned(),
            next_seq: 1,
            subscriptions: Subscriptions::default(),
            anchors: Anchors::default(),
            current: None,
            context_timestamp: None,
            last_change: None,
            derived_ids: VecDeque::new(),
            recent_ids: VecDeque::new(),
            next_heartbeat: None,
            marks: WriteMarks::default(),
        }
    }

    /// The request ids remembered for duplicate detection (req 139), oldest first, each with
    /// its fingerprint: an accepted event appends one and may drop the oldest, so a shell can
    /// store them as rows (one insert per event) rather than rewrite them all.
    pub fn recent_ids(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> {
        self.recent_ids.iter().map(|(id, f)| (id.as_str(), f.as_str()))
    }

    /// Reads the state as the version before row storage wrote it (a meta part with whole
    /// anchors, a subscriptions part, the recent ids as rows), every row marked to be written
    /// in today's layout.
    pub fn from_legacy_parts(
        meta: &str,
        subscriptions: &str,
        recent_ids: impl IntoIterator<Item = (String, String)>,
    ) -> Result<TopicState, serde_json::Error> {
        let mut m: StoredMeta<Anchors> = serde_json::from_str(meta)?;
        let anchors = std::mem::take(&mut m.anchors);
        let mut s = m.into_state(anchors, serde_json::from_str(subscriptions)?, recent_ids);
        s.mark_all();
        Ok(s)
    }

    /// Marks every row to be written (a state read from an older format, or from JSON).
    pub fn mark_all(&mut self) {
        self.subscriptions.mark_all();
        self.anchors.mark_all();
        self.marks.recent_rewrite = true;
    }

    /// How many ids this topic has minted: a shell compares it before and after an input to
    /// learn whether the meta part changed (an answer that leads to a SyncError mints one).
    pub fn minted(&self) -> u64 {
        self.next_seq
    }

    /// A fresh id, unique within the Hub (req 137).
    pub(crate) fn mint(&mut self) -> String {
        let n = self.next_seq;
        self.next_seq += 1;
        format!("{}-{n}", self.id_prefix)
    }

    /// The topic's open contexts, least recently opened first.
    pub fn open_contexts(&self) -> impl Iterator<Item = &ResourceKey> {
        self.anchors.iter().map(|a| &a.key)
    }

    /// The last accepted context change (id, name), if any: what a SyncError about a
    /// subscriber that left names when no context is current.
    pub fn last_change(&self) -> Option<(&str, &EventName)> {
        self.last_change.as_ref().map(|(id, name)| (id.as_str(), name))
    }

    /// The current context's anchor.
    pub fn current(&self) -> Option<&ResourceKey> {
        self.current.as_ref()
    }

    /// The version of an open anchor.
    pub fn version_of(&self, key: &ResourceKey) -> Option<&str> {
        self.anchor(key).map(|a| a.version_id.as_str())
    }

    /// The content shared on an open anchor.
    pub fn content_of(&self, key: &ResourceKey) -> Option<&Content> {
        self.anchor(key).map(|a| &a.content)
    }

    pub(crate) fn anchor(&self, key: &ResourceKey) -> Option<&OpenAnchor> {
        self.anchors.iter().find(|a| &a.key == key)
    }

    pub(crate) fn anchor_index(&self, key: &ResourceKey) -> Option<usize> {
        self.anchors.iter().position(|a| &a.key == key)
    }
}

/// One subscription, keyed by its endpoint token (req 35: the key is topic + endpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Subscription {
    pub(crate) endpoint: String,
    /// Order of creation: names unnamed subscribers without revealing their endpoint.
    pub(crate) number: u64,
    /// Granted events (req 43), canonical, no duplicates.
    pub(crate) events: Vec<EventName>,
    pub(crate) name: Option<String>,
    pub(crate) lease_seconds: u64,
    /// When the access token it subscribed with expires, if it does: the lease, counted from
    /// the connect, ends no later (req 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_expires: Option<Timestamp>,
    pub(crate) phase: Phase,
    /// Notifications sent and not yet answered, oldest first.
    pub(crate) pending: Vec<PendingAck>,
    /// The last answer received, for the roster (`GET {hub}/{topic}/subscribers`). Absent in
    /// state stored before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_answer: Option<Answer>,
    /// The anchor this subscriber was last made to show, by the events the Hub sent it (its
    /// view, [`crate::view`]): what tells the Hub which derived open or close it still needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) shown: Option<ResourceKey>,
    /// The anchors it was sent opens of and no close since, at most one per resource type:
    /// no implied open is sent twice (req 98), and every one is closed when its view empties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) told: Vec<ResourceKey>,
    /// It refused or failed a context change since it was last sent one: what it shows is not
    /// known, so its view is sent again at the next context change (a resend, req 81, reaches
    /// it again even when the view did not move).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) view_refused: bool,
}

/// An answer a subscriber gave to a notification (req 70).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) id: Arc<str>,
    pub(crate) event: EventName,
    pub(crate) status: u16,
}

/// Where a subscription is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Phase {
    /// Issued; waiting for the WebSocket until `connect_by` (§5a-3).
    Issued { connect_by: Timestamp },
    /// Connected and confirmed; the lease ends at `lease_until` (req 43, 56).
    Connected { lease_until: Timestamp },
}

impl Subscription {
    pub(crate) fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected { .. })
    }

    /// When a lease starting `now` ends: `lease_seconds` later, and no later than the token
    /// it was asked with (req 20), which may expire before a late connect's lease would.
    pub(crate) fn lease_end(&self, now: Timestamp) -> Timestamp {
        let end = now.add(std::time::Duration::from_secs(self.lease_seconds));
        match self.token_expires {
            Some(exp) if exp < end => exp,
            _ => end,
        }
    }

    pub(crate) fn deadline(&self) -> Timestamp {
        match self.phase {
            Phase::Issued { connect_by } => connect_by,
            Phase::Connected { lease_until } => lease_until,
        }
    }

    pub(crate) fn wants(&self, event: &EventName) -> bool {
        self.events.contains(event)
    }

    /// The name used in SyncErrors (req 32, §5a-12): `subscriber.name`, else a number.
    pub(crate) fn display_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("unnamed subscriber #{}", self.number),
        }
    }

    /// A context change this subscriber received as it is (not derived): what it shows now.
    pub(crate) fn note_direct(&mut self, event: &Event) {
        match event.name.kind() {
            EventKind::Open => {
                if let Some(k) = event.anchor() {
                    self.note_open(k);
                }
            }
            EventKind::Close => {
                if let Some(k) = event.anchor() {
                    self.note_close(&k);
                }
            }
            EventKind::HomeOpen | EventKind::UserLogout => {
                self.shown = None;
                self.told.clear();
                self.view_refused = false;
            }
            _ => {}
        }
    }

    pub(crate) fn note_open(&mut self, k: ResourceKey) {
        self.view_refused = false;
        self.told.retain(|t| t.resource_type != k.resource_type);
        self.told.push(k.clone());
        self.shown = Some(k);
    }

    pub(crate) fn note_close(&mut self, k: &ResourceKey) {
        self.told.retain(|t| t != k);
        if self.shown.as_ref() == Some(k) {
            self.shown = None;
        }
    }

    pub(crate) fn events_csv(&self) -> String {
        self.events.iter().map(EventName::as_str).collect::<Vec<_>>().join(",")
    }
}

/// A notification waiting for its `{id,status}` (req 70).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingAck {
    pub(crate) id: Arc<str>,
    pub(crate) event: EventName,
    pub(crate) deadline: Timestamp,
    /// For an event the Hub derived (req 97), the event it was derived from (id, name): a
    /// SyncError about the derived event names that one, so the app that sent it recognises
    /// its own event and resends it (req 81).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<(Arc<str>, EventName)>,
}

impl PendingAck {
    /// The event a SyncError about this notification names: its source, if derived.
    pub(crate) fn about(&self) -> (&str, &EventName) {
        match &self.source {
            Some((id, name)) => (id, name),
            None => (&self.id, &self.event),
        }
    }
}

/// An open context (req 108, 122-126).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OpenAnchor {
    pub(crate) key: ResourceKey,
    /// The open event as last received (req 106: the context array exactly as sent).
    pub(crate) open: Event,
    /// The current `context.versionId` (req 108-110).
    pub(crate) version_id: String,
    /// Content shared through updates (req 107-113).
    pub(crate) content: Content,
    /// Set when the Hub derived this open from another event's context (req 97): its close
    /// is derived from that event's close.
    pub(crate) derived_from: Option<ResourceKey>,
    /// For a derived anchor, the event it was derived from (id, name): SyncErrors about its
    /// open, live or replayed, name that event (its sender resends it, req 81).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source_event: Option<(String, EventName)>,
    /// The size of the stored open row ([`super::store::open_row`]): what the topic's byte
    /// limit counts.
    #[serde(skip)]
    pub(crate) open_bytes: usize,
    /// The size of the stored content row ([`super::store::content_row`]).
    #[serde(skip)]
    pub(crate) content_bytes: usize,
}

impl OpenAnchor {
    /// What this anchor holds in storage, in bytes.
    pub(crate) fn stored_bytes(&self) -> usize {
        self.open_bytes + self.content_bytes
    }
}
