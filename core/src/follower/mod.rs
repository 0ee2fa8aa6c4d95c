//! The subscriber's state machine (the "follower"), sans-IO: what the browser SDK runs for
//! one subscription.
//!
//! It decides everything a subscriber must get right, so the SDK shell only moves bytes and
//! calls the app's callbacks:
//! - answering every notification, in time, with the status the app's decision implies
//!   (req 70-75): accept 200, defer 202 then accept or refuse with a SyncError, refuse 409,
//!   fail 500; an undecided app is answered 202 before the Hub's timeout;
//! - never letting an older event replace a newer context (req 67), suppressing duplicates,
//!   and tracking `context.versionId` per anchor so a missed update is noticed (req 110, 117);
//! - noticing every SyncError (req 84-96) and resending its own refused events (req 81);
//! - a [`SyncStatus`] that is never wrong: [`SyncStatus::InSync`] only while what the app
//!   shows is what the Hub holds, as far as the messages received say.
//!
//! After every (re)connection the follower asks for the current context
//! ([`Output::FetchCurrentContext`], `GET {hub}/{topic}`) and is in sync only once that
//! snapshot is applied; a snapshot that raced a live context change is discarded and asked
//! for again. A Hub that does not support GET can be followed with
//! [`FollowerConfig::resync_with_get`] off.

mod inbound;
mod outbound;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::catalog::{EventKind, EventName};
use crate::event::Event;
use crate::syncerror::SyncErrorDetails;
use crate::time::Timestamp;
use crate::vecmap::VecMap;
use crate::wire::{ContextEntry, ResourceKey};

pub use outbound::PrepareError;

/// Settings of a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerConfig {
    /// An app that has not decided by then is answered `202` (the Hub waits 10 s, req 85;
    /// 3 s leaves 7 s for the notification and the answer to travel).
    pub answer_within: Duration,
    /// After a `202`, an app that has still not decided this long after receipt is taken to
    /// refuse, and a SyncError is sent (req 75: within 10 s).
    pub decide_within: Duration,
    /// Wait before resending an own event another app could not follow (req 81: ≥ 10 s).
    pub resend_after: Duration,
    /// Resends of one event before giving up (the status stays out of sync).
    pub max_resends: u32,
    /// An echoed resend with no SyncError for this long means sync is restored.
    pub confirm_window: Duration,
    /// Resynchronise through get-current-context after connecting and after a version gap.
    ///
    /// Off, for Hubs without get-current-context: the follower reports in sync as soon as the
    /// Hub confirms the subscription, trusting the replay that follows it (req 44) to bring
    /// the current context. That is weaker: until the replay has arrived the app may show an
    /// older context while the status says in sync.
    pub resync_with_get: bool,
    /// Retry a failed get-current-context after this long.
    pub resync_retry: Duration,
    /// Notification ids remembered for duplicate suppression.
    pub dedup_window: usize,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig {
            answer_within: Duration::from_secs(3),
            decide_within: Duration::from_secs(10),
            resend_after: Duration::from_secs(10),
            max_resends: 5,
            confirm_window: Duration::from_secs(12),
            resync_with_get: true,
            resync_retry: Duration::from_secs(2),
            dedup_window: 512,
        }
    }
}

/// What the app shows, as far as FHIRcast is concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// The anchor: the resource the current context is about.
    pub anchor: ResourceKey,
    /// The open event's name (e.g. `Patient-open`).
    pub event: EventName,
    /// The context array of the open (without the `content` of a snapshot).
    pub context: Vec<ContextEntry>,
    /// The anchor's `context.versionId`, when the Hub shares content.
    pub version_id: Option<String>,
    /// The id of the open event, when it was received as a notification.
    pub event_id: Option<String>,
    /// When the open occurred, when known.
    pub timestamp: Option<Timestamp>,
}

/// Why the app is not in sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OutOfSyncReason {
    /// Another app could not follow an event (a SyncError, req 84-96).
    SyncError {
        /// The SyncError's diagnostics.
        message: String,
        /// The failed event's id.
        event_id: String,
        /// The failed event's name.
        event_name: String,
        /// The app that failed.
        subscriber: String,
    },
    /// Another app could not follow this app's own event; it is being resent (req 81).
    OwnEventNotFollowed {
        /// The SyncError's diagnostics.
        message: String,
        /// The event's id.
        event_id: String,
        /// The event's name.
        event_name: String,
        /// The app that failed.
        subscriber: String,
    },
    /// This app refused to follow an event.
    Refused {
        /// The event's id.
        event_id: String,
        /// The event's name.
        event_name: String,
    },
    /// This app has not decided yet whether to follow a context change it was given (if it
    /// takes long, the follower has answered 202).
    Deciding {
        /// The event's id.
        event_id: String,
        /// The event's name.
        event_name: String,
    },
    /// An update was missed: the content of the anchor is not known (req 110, 117).
    VersionGap {
        /// The anchor, as `Type/id`.
        anchor: String,
    },
    /// The current context could not be read after (re)connecting.
    ResyncFailed {
        /// Why.
        message: String,
    },
}

impl fmt::Display for OutOfSyncReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutOfSyncReason::SyncError { message, .. } | OutOfSyncReason::OwnEventNotFollowed { message, .. } => {
                f.write_str(message)
            }
            OutOfSyncReason::Refused { event_name, .. } => write!(f, "this app refused to follow {event_name}"),
            OutOfSyncReason::Deciding { event_name, .. } => write!(f, "this app has not yet followed {event_name}"),
            OutOfSyncReason::VersionGap { anchor } => write!(f, "an update of {anchor} was missed; resynchronising"),
            OutOfSyncReason::ResyncFailed { message } => write!(f, "cannot read the current context: {message}"),
        }
    }
}

/// Whether the app shows what the Hub holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum SyncStatus {
    /// Subscribing, or connected and reading the current context.
    Connecting,
    /// The app shows the Hub's current context.
    InSync,
    /// The app may show something else; the reason says what happened.
    OutOfSync {
        /// Why.
        reason: OutOfSyncReason,
    },
    /// No connection to the Hub: context changes are not received.
    Disconnected {
        /// Why.
        reason: String,
    },
}

/// The app's answer to a notification (req 71).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Followed: `200`.
    Accept,
    /// Not decided yet: `202`; decide later with [`Follower::decide`] (req 75).
    Defer,
    /// Will not follow: `409`, or a SyncError after a `202` (req 75, 94).
    Refuse,
    /// Could not process it: `500`, or a SyncError after a `202`.
    Fail,
}

/// A SyncError received, for the app (req 84-96).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncErrorNotice {
    /// Its parsed OperationOutcome.
    pub details: SyncErrorDetails,
    /// Whether it is about an event this app sent.
    pub own_event: bool,
    /// The SyncError notification's id.
    pub id: String,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send this text on the WebSocket (an ack).
    Send(String),
    /// Give this notification to the app and pass its decision to [`Follower::decide`].
    Deliver(Event),
    /// Tell the app about a SyncError.
    SyncError(SyncErrorNotice),
    /// The status changed.
    Status(SyncStatus),
    /// What the app should show changed outside a delivered notification (a snapshot or an
    /// own event's echo).
    ContextChanged(Option<Context>),
    /// POST this event to the Hub and report the answer with [`Follower::handle_post_result`].
    Post(Event),
    /// GET the current context and pass it to [`Follower::handle_snapshot`].
    FetchCurrentContext,
    /// The Hub ended the subscription (a denial): subscribe again (req 48).
    Resubscribe {
        /// The Hub's reason.
        reason: String,
    },
    /// An own event was accepted by the Hub and its echo received (or none is expected).
    Published {
        /// The event id.
        id: String,
    },
    /// An own event was refused by the Hub.
    PublishFailed {
        /// The event id.
        id: String,
        /// The HTTP status.
        status: u16,
        /// The Hub's message.
        message: String,
    },
}

/// A notification handed to the app and not yet answered for good.
#[derive(Clone, Debug)]
struct Pending {
    event: Event,
    received: Timestamp,
    /// A 202 was sent: the final answer, if a refusal, is a SyncError (req 75).
    acked_202: bool,
    deadline: Timestamp,
    /// A newer context change arrived: a late decision on this one is moot.
    superseded: bool,
}

#[derive(Clone, Debug)]
enum OwnPhase {
    /// POSTed, no answer yet.
    Posting,
    /// Accepted by the Hub, echo not yet received.
    Accepted { since: Timestamp },
    /// Echo received.
    Echoed { at: Timestamp },
    /// Another app could not follow it: resend at `at` (req 81).
    Refused { at: Timestamp },
    /// A SyncError this app sent (req 75): POSTed until the Hub accepts it, so the other apps
    /// are told; after a failure, posted again at `retry_at`.
    SyncError { retry_at: Option<Timestamp> },
}

#[derive(Clone, Debug)]
struct Own {
    event: Event,
    phase: OwnPhase,
    /// Resends so far.
    resends: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Snapshot {
    Idle,
    /// GET under way; `dirty` once a context change arrived meanwhile.
    Requested {
        dirty: bool,
    },
    /// GET failed; retry at this time.
    RetryAt(Timestamp),
}

/// The follower of one subscription.
#[derive(Debug)]
pub struct Follower {
    config: FollowerConfig,
    topic: String,
    subscriber_name: Option<String>,
    status: SyncStatus,
    current: Option<Context>,
    /// Timestamp of the newest context change applied or seen (req 67).
    context_ts: Option<Timestamp>,
    /// `context.versionId` per open anchor; an empty one marks content that is unknown (an
    /// update was missed while the anchor was not current), read again when it becomes current.
    versions: VecMap<ResourceKey, String>,
    /// Content sharing (req 105-117), for the anchors whose `*-update` the app follows: the
    /// Bundles that, applied in order, give an anchor's shared resources at its version in
    /// `versions` — the content of a snapshot (a collection Bundle), then each update applied
    /// since (transaction Bundles), kept as the Hub sent them. Absent while unknown (the anchor
    /// was opened before this app learnt its content, or an update was missed): a snapshot
    /// reads it when the anchor is current. The shell applies them for the app
    /// (`currentContext().resources`); the core only decides which bytes are current.
    shared: VecMap<ResourceKey, Vec<Box<RawValue>>>,
    granted: Vec<EventName>,
    /// Notification ids answered, with the status sent (duplicates are answered the same).
    answered: VecDeque<(String, u16)>,
    /// Context changes seen, with their timestamps: tells a SyncError about an older event.
    history: VecDeque<(String, Timestamp)>,
    pending: VecMap<String, Pending>,
    own: VecMap<String, Own>,
    /// Ids of events this app sent (resends' originals included), so a SyncError about one
    /// that arrives after its resend is still recognised as about this app's own event.
    own_ids: Vec<String>,
    snapshot: Snapshot,
    /// The app did not follow a change (it refused or failed one), so what it shows may differ
    /// from what the Hub holds. Only what sets the whole current context again ends this: an
    /// applied open, `Home-open` or `UserLogout`, or a snapshot. A close or an update
    /// followed meanwhile is applied to a context the Hub no longer has, so it does not.
    diverged: bool,
    /// The context change this app refused (or failed), while it has followed no open,
    /// `Home-open` or logout since: a snapshot must not switch it (seed 001).
    refused: Option<(String, String)>,
    /// The Hub confirmed the subscription on the current connection: only then can a snapshot
    /// put the follower in sync (before, it receives nothing).
    confirmed: bool,
    /// Part of every SyncError id this follower mints, given by the shell (random): two apps
    /// that refuse the same event must not send SyncErrors with the same id, or the Hub takes
    /// the second for a reuse of the first and nobody hears of it.
    instance: String,
    /// SyncErrors minted so far (the other part of their ids).
    sync_errors_minted: u64,
    outputs: VecDeque<Output>,
}

impl Follower {
    /// A follower for `topic`, disconnected until [`Follower::handle_connecting`].
    pub fn new(topic: &str, subscriber_name: Option<String>, config: FollowerConfig) -> Self {
        Follower {
            config,
            topic: topic.to_owned(),
            subscriber_name,
            status: SyncStatus::Disconnected { reason: "not connected yet".into() },
            current: None,
            context_ts: None,
            versions: VecMap::new(),
            shared: VecMap::new(),
            granted: Vec::new(),
            answered: VecDeque::new(),
            history: VecDeque::new(),
            pending: VecMap::new(),
            own: VecMap::new(),
            own_ids: Vec::new(),
            snapshot: Snapshot::Idle,
            diverged: false,
            refused: None,
            confirmed: false,
            instance: String::new(),
            sync_errors_minted: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Sets the random part of the ids this follower mints for its SyncErrors. Shells pass a
    /// fresh random string (a UUID) per follower: without it, two apps that refuse the same
    /// event would send SyncErrors with the same id, and the Hub would refuse the second.
    pub fn with_instance_id(mut self, instance: &str) -> Self {
        self.instance = instance.to_owned();
        self
    }

    /// The status.
    pub fn status(&self) -> &SyncStatus {
        &self.status
    }

    /// What the app shows.
    pub fn current(&self) -> Option<&Context> {
        self.current.as_ref()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The events the Hub granted in its last confirmation.
    pub fn granted_events(&self) -> &[EventName] {
        &self.granted
    }

    /// The last known `context.versionId` of an open anchor.
    pub fn version_of(&self, anchor: &ResourceKey) -> Option<&str> {
        self.versions.get(anchor).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The Bundles whose entries, applied in order (a PUT adds or replaces the resource of its
    /// type and id, a DELETE removes its `fullUrl`), are an anchor's shared resources now;
    /// `None` while they are unknown, or for an anchor whose updates the app does not follow.
    pub fn shared_of(&self, anchor: &ResourceKey) -> Option<&[Box<RawValue>]> {
        self.shared.get(anchor).filter(|_| self.shares(anchor)).map(Vec::as_slice)
    }

    /// Asks for the current context to learn the content of the anchor `event` made current,
    /// and, if in sync, is not until it is read (`Deciding` about `event`): the app shows no
    /// resources meanwhile.
    fn read_content(&mut self, event: &Event) {
        self.request_snapshot();
        if self.status == SyncStatus::InSync && matches!(self.snapshot, Snapshot::Requested { .. }) {
            self.set_status(SyncStatus::OutOfSync {
                reason: OutOfSyncReason::Deciding { event_id: event.id.clone(), event_name: event.name.to_string() },
            });
        }
    }

    /// Whether the app follows the `*-update` events of `anchor`'s type: only then is its
    /// content kept (content sharing is opt-in by subscription, req 107).
    fn shares(&self, anchor: &ResourceKey) -> bool {
        EventName::of(&anchor.resource_type, EventKind::Update).is_some_and(|u| self.granted.contains(&u))
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Follower::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let pending = self.pending.values().filter(|p| !p.superseded || !p.acked_202).map(|p| p.deadline);
        let own = self.own.values().map(|o| match o.phase {
            OwnPhase::Posting => Timestamp::from_unix_nanos(i64::MAX),
            OwnPhase::Accepted { since } => since.add(self.config.confirm_window),
            OwnPhase::Echoed { at } => at.add(self.config.confirm_window),
            OwnPhase::Refused { at } => at,
            OwnPhase::SyncError { retry_at } => retry_at.unwrap_or(Timestamp::from_unix_nanos(i64::MAX)),
        });
        let snap = match self.snapshot {
            Snapshot::RetryAt(t) => Some(t),
            _ => None,
        };
        pending.chain(own.filter(|t| t.unix_nanos() != i64::MAX)).chain(snap).min()
    }

    /// The shell is (re)subscribing.
    pub fn handle_connecting(&mut self, _now: Timestamp) {
        self.confirmed = false;
        self.set_status(SyncStatus::Connecting);
    }

    /// The socket closed or failed without a denial: nothing is received until the shell
    /// subscribes again. Notifications awaiting an answer are dropped (the Hub has dropped the
    /// subscription, and answers can no longer reach it).
    pub fn handle_disconnected(&mut self, reason: &str, _now: Timestamp) {
        self.connection_ended();
        self.set_status(SyncStatus::Disconnected { reason: reason.to_owned() });
    }

    /// The connection is over. A GET still under way is answered later, maybe after the next
    /// connection asked for its own: it stays outstanding, marked stale, so that its answer is
    /// discarded rather than taken for the new connection's (one GET at a time, so answers
    /// pair with requests).
    fn connection_ended(&mut self) {
        self.pending.clear();
        self.confirmed = false;
        // Own events the Hub accepted whose echo was awaited: it cannot come any more, and
        // the acceptance is what counts (the app's publish is done).
        let waiting: Vec<String> = self
            .own
            .iter()
            .filter(|(_, o)| matches!(o.phase, OwnPhase::Accepted { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            if let Some(o) = self.own.get_mut(&id) {
                if let OwnPhase::Accepted { since } = o.phase {
                    o.phase = OwnPhase::Echoed { at: since };
                }
            }
            self.outputs.push_back(Output::Published { id });
        }
        self.snapshot = match self.snapshot {
            Snapshot::Requested { .. } => Snapshot::Requested { dirty: true },
            _ => Snapshot::Idle,
        };
    }

    fn set_status(&mut self, s: SyncStatus) {
        if self.status != s {
            self.status = s.clone();
            self.outputs.push_back(Output::Status(s));
        }
    }

    /// Back in sync, unless connecting or disconnected (those end through their own paths), or
    /// the app has diverged from the Hub and nothing has set the whole context since.
    fn settle_in_sync(&mut self) {
        if self.diverged {
            return;
        }
        if matches!(self.status, SyncStatus::OutOfSync { .. }) && matches!(self.snapshot, Snapshot::Idle) {
            let undecided = self.pending.values().any(|p| !p.superseded && self.holds_sync(&p.event));
            if !undecided {
                self.set_status(SyncStatus::InSync);
            }
        }
    }
}

impl Follower {
    /// Whether the app shows what the Hub holds only once it has followed `event`: a context
    /// change, or an update of the anchor it shows (its content, req 111). Until the app has
    /// decided about such an event it is not in sync (`Deciding`).
    fn holds_sync(&self, event: &Event) -> bool {
        let kind = event.name.kind();
        is_context_change(kind)
            || (kind == EventKind::Update
                && self.current.as_ref().is_some_and(|c| event.anchor().is_some_and(|a| a == c.anchor)))
    }
}

/// Bundles kept per anchor before its content is read again in one piece (a snapshot): bounds
/// the memory a long session of updates takes, and the work of replaying them per read.
const MAX_SHARED_BUNDLES: usize = 64;

/// Events that set or clear the current context, and are ordered by timestamp (req 67).
fn is_context_change(kind: EventKind) -> bool {
    matches!(kind, EventKind::Open | EventKind::Close | EventKind::HomeOpen | EventKind::UserLogout)
}

#[cfg(test)]
mod tests;
