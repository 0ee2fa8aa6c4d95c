//! Typed refusals of the Hub's inputs. Each says which rule failed and which spec item it is;
//! `http_status` gives the status the spec names or the project chose (ARCHITECTURE.md).

use crate::bundle::BundleError;
use crate::event::EventError;
use crate::wire::ResourceKey;

/// Why an (un)subscribe was refused (req 38-39, 52; neg 4, 5, 9, 10).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The request names another topic than the one it was routed to.
    #[error("hub.topic {found:?} does not match this topic {expected:?} (neg 4)")]
    WrongTopic {
        /// This topic.
        expected: String,
        /// The topic requested.
        found: String,
    },
    /// The token is bound to another topic.
    #[error("the access token is bound to another topic than {topic:?} (neg 4)")]
    TopicNotAllowed {
        /// The topic requested.
        topic: String,
    },
    /// The token grants none of the requested events.
    #[error("the access token grants none of the requested events; it needs a scope such as fhircast/{first}.read (req 18, neg 9)")]
    NoGrantedEvents {
        /// The first event requested.
        first: String,
    },
    /// The token carries no `fhircast/` scope at all, so it may not cancel a subscription
    /// either (found by the hostile corpus: any valid token could unsubscribe).
    #[error(
        "the access token has no fhircast/ scope; unsubscribing needs one, as subscribing does (req 16-18, neg 9)"
    )]
    NoFhircastScope,
    /// The token has expired.
    #[error("the access token has expired (req 20, neg 9)")]
    TokenExpired,
    /// `hub.channel.endpoint` names no subscription of this topic.
    #[error("hub.channel.endpoint does not name an active subscription of this topic; subscribe without it to get a new endpoint (req 54, neg 10)")]
    UnknownEndpoint,
    /// The topic has too many subscriptions.
    #[error("this topic has the maximum of {max} subscriptions; unsubscribe unused ones (req 37)")]
    TooManySubscriptions {
        /// The limit.
        max: usize,
    },
}

impl SubscribeError {
    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            SubscribeError::WrongTopic { .. } => 400,
            SubscribeError::TopicNotAllowed { .. }
            | SubscribeError::NoGrantedEvents { .. }
            | SubscribeError::NoFhircastScope => 403,
            SubscribeError::TokenExpired => 401,
            SubscribeError::UnknownEndpoint => 404,
            SubscribeError::TooManySubscriptions { .. } => 429,
        }
    }
}

/// Why a WebSocket cannot be accepted on an endpoint (neg 11).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No subscription has this endpoint: never issued, expired, or unsubscribed.
    #[error(
        "this WebSocket endpoint is unknown, expired or unsubscribed; subscribe again for a new one (req 54, neg 11)"
    )]
    UnknownEndpoint,
    /// The endpoint already has its socket: endpoints are single-use.
    #[error("this WebSocket endpoint is already connected; endpoints are single-use (req 41, neg 11)")]
    AlreadyConnected,
}

impl ConnectError {
    /// The HTTP status to refuse the upgrade with.
    pub fn http_status(&self) -> u16 {
        match self {
            ConnectError::UnknownEndpoint => 404,
            ConnectError::AlreadyConnected => 403,
        }
    }
}

/// Why an event request was refused (req 78; neg 12-20). Nothing of a refused request is
/// applied or sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventRejected {
    /// The event is malformed.
    #[error(transparent)]
    Invalid(#[from] EventError),
    /// The event names another topic.
    #[error("hub.topic {found:?} is not the topic {expected:?} this request was sent to (neg 13)")]
    WrongTopic {
        /// This topic.
        expected: String,
        /// The event's topic.
        found: String,
    },
    /// The token is bound to another topic.
    #[error("the access token is bound to another topic than {topic:?} (neg 13)")]
    TopicNotAllowed {
        /// The event's topic.
        topic: String,
    },
    /// The token lacks the write scope for the event.
    #[error("the access token lacks the scope fhircast/{event}.write (req 16-17, neg 13)")]
    MissingScope {
        /// The event.
        event: String,
    },
    /// The id was already used by a different event.
    #[error("id {id:?} was already used by another event; every request needs a unique id (req 77, 139)")]
    IdReused {
        /// The id.
        id: String,
    },
    /// The event happened before the event that set the current context.
    #[error("the timestamp {timestamp} is earlier than that of the event that set the current context ({current}); subscribers would ignore it (req 67). Check the sender's clock")]
    Stale {
        /// The request's timestamp.
        timestamp: String,
        /// The current context's timestamp.
        current: String,
    },
    /// The event is stamped too far ahead of the Hub's clock.
    #[error("the timestamp {timestamp} is {ahead_seconds} s ahead of the hub's clock ({hub_now}); at most {max_seconds} s is allowed, or every app would ignore the correctly stamped changes after it (req 67). Check the sender's clock")]
    FromTheFuture {
        /// The request's timestamp.
        timestamp: String,
        /// The Hub's time.
        hub_now: String,
        /// How far ahead, in whole seconds.
        ahead_seconds: i64,
        /// The most allowed, in seconds.
        max_seconds: u64,
    },
    /// The anchor is carried by the current context: close that first.
    #[error("{anchor} is part of the current context {current}: close {current} first (or open another context); closing only {anchor} would leave apps that follow it out of step with the current context")]
    CarriedByCurrent {
        /// The anchor asked to close.
        anchor: ResourceKey,
        /// The current context's anchor.
        current: ResourceKey,
    },
    /// The anchor is not open.
    #[error("{anchor} is not an open context of this topic (neg 16, neg 19)")]
    NotOpen {
        /// The anchor.
        anchor: ResourceKey,
    },
    /// The anchor is open but not the current context.
    #[error("{anchor} is not the current context; {event} is only allowed on the current context (neg 16, neg 20)")]
    NotCurrent {
        /// The anchor.
        anchor: ResourceKey,
        /// The event.
        event: String,
    },
    /// `context.versionId` is not the anchor's current version.
    #[error("context.versionId {found:?} is not the current version {expected:?} of {anchor}; fetch the current context and retry (req 109, neg 15)")]
    VersionMismatch {
        /// The anchor.
        anchor: ResourceKey,
        /// The current version.
        expected: String,
        /// The version sent.
        found: String,
    },
    /// The update bundle is malformed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A SyncError whose OperationOutcome cannot be read.
    #[error("the SyncError's OperationOutcome cannot be read: {0}")]
    BadSyncError(String),
    /// The open event, as the Hub would store it, is over the Hub's size limit for one event.
    #[error("this {event} is {bytes} bytes as stored, over this hub's limit of {max} bytes for one event (MAX_BODY_BYTES); share large resources by reference")]
    EventTooLarge {
        /// The event.
        event: String,
        /// Its size as stored.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The content shared on an anchor would grow over the Hub's limit.
    #[error("the content shared on {anchor} would be {bytes} bytes after this update, over this hub's limit of {max} bytes per open context (MAX_CONTENT_BYTES); remove entries or share resources by reference")]
    ContentTooLarge {
        /// The anchor.
        anchor: ResourceKey,
        /// The content's size after the update.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The topic's open contexts would hold more than the Hub's limit, even after closing
    /// every open context that is not in use.
    #[error("this topic's open contexts would hold {bytes} bytes, over its limit of {max} bytes (MAX_TOPIC_BYTES), even without the open contexts not in use; close contexts or share less")]
    TopicFull {
        /// The size the topic would have.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

impl EventRejected {
    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            EventRejected::Invalid(_) | EventRejected::BadSyncError(_) | EventRejected::FromTheFuture { .. } => 400,
            EventRejected::WrongTopic { .. }
            | EventRejected::TopicNotAllowed { .. }
            | EventRejected::MissingScope { .. } => 403,
            EventRejected::IdReused { .. }
            | EventRejected::Stale { .. }
            | EventRejected::NotOpen { .. }
            | EventRejected::CarriedByCurrent { .. }
            | EventRejected::NotCurrent { .. }
            | EventRejected::VersionMismatch { .. } => 409,
            EventRejected::Bundle(b) => b.http_status(),
            EventRejected::EventTooLarge { .. }
            | EventRejected::ContentTooLarge { .. }
            | EventRejected::TopicFull { .. } => 413,
        }
    }
}

/// Why the current context (req 100-106) or the roster cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The token is bound to another topic.
    #[error("the access token is bound to another topic than {topic:?} (neg 4)")]
    TopicNotAllowed {
        /// The topic requested.
        topic: String,
    },
    /// The token may not read the current context's open event.
    #[error("the access token lacks the scope fhircast/{event}.read needed to read the current context (req 18)")]
    MissingScope {
        /// The event.
        event: String,
    },
    /// The token may not read SyncErrors, so not the roster or the timeline either.
    #[error(
        "the access token lacks the scope fhircast/SyncError.read needed to read the topic's subscribers and timeline"
    )]
    RosterNeedsSyncErrorRead,
}

impl ContextError {
    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        403
    }
}
