//! The Hub's state machine for one topic, sans-IO (quinn-proto style).
//!
//! A [`Topic`] holds everything a FHIRcast session needs: subscriptions and their sockets'
//! states, pending acks, the open contexts (multi-tab anchors), the current context, content
//! and versions. The shell (a Durable Object) feeds it inputs:
//!
//! - [`Topic::handle_subscription`]: a validated (un)subscribe request (req 24-55);
//! - [`Topic::handle_connect`]: a WebSocket opened on an issued endpoint (req 43-44);
//! - [`Topic::handle_event`]: a validated event request (req 76-83, 107-128);
//! - [`Topic::handle_message`] / [`Topic::handle_ack`]: what a subscriber sent (req 70-75);
//! - [`Topic::handle_close`]: a socket closed (req 85-86);
//! - [`Topic::handle_timeout`]: the deadline from [`Topic::poll_timeout`] passed;
//!
//! and pumps [`Topic::poll_outbound`] for messages to send and sockets to close. Every input
//! takes `now`; the Topic never reads a clock. Its [`TopicState`] serialises, so a Durable
//! Object can persist it and rebuild the Topic after eviction or a restart.
//!
//! Decisions where the spec is silent are documented on the items that make them and listed
//! in ARCHITECTURE.md.

mod acks;
mod context;
mod error;
mod events;
mod roster;
mod state;
pub mod store;
pub mod stored_facts;
mod subscriptions;
pub mod timeline;
mod tracked;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

pub use error::{ConnectError, ContextError, EventRejected, SubscribeError};
pub use roster::{Roster, RosterAnswer, RosterEntry};
pub use state::TopicState;
pub use timeline::{Fact, FactKind, SyncErrorCause, Who};

use crate::scope::Scopes;
use crate::time::Timestamp;

/// Settings of a Hub, the same for every topic. Not persisted: the shell passes them in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// How long a subscriber has to answer a notification (req 85: 10 s).
    pub ack_timeout: Duration,
    /// How long an issued endpoint waits for its WebSocket (§5a-3).
    pub connect_timeout: Duration,
    /// The lease granted when a subscriber asks for none (req 30).
    pub default_lease_seconds: u64,
    /// The longest lease granted.
    pub max_lease_seconds: u64,
    /// Subscriptions per topic, connected or not.
    pub max_subscriptions: usize,
    /// Entries per update bundle (neg 18).
    pub max_bundle_entries: usize,
    /// Open contexts kept per topic; beyond it the least recently opened non-current one is
    /// dropped.
    pub max_open_contexts: usize,
    /// Request ids remembered for duplicate detection (req 139).
    pub dedup_window: usize,
    /// Send implied opens to subscribers that did not subscribe to the event itself (req 97).
    pub derive_opens: bool,
    /// Accept `*-update` for open anchors that are not current (req 119, req 14).
    pub non_current_updates: bool,
    /// Send a legacy `heartbeat` event at this period (STU2 clients; req 133). `None` in STU3.
    pub heartbeat: Option<Duration>,
    /// The largest open event, as stored (a shell sets it to its request body limit; it must
    /// stay under [`store::ROW_LIMIT_BYTES`]).
    pub max_event_bytes: usize,
    /// The largest content shared on one open context, as stored (req 107-113).
    pub max_content_bytes: usize,
    /// The most a topic's open contexts (open events and content) may hold, as stored: the
    /// least recently opened ones not in use are evicted to stay under it; an event that
    /// cannot fit even so is refused (413). It bounds the topic's memory too.
    pub max_topic_bytes: usize,
    /// The most notifications a subscriber may leave unanswered; one more and it is treated as
    /// unresponsive (a SyncError names it, it is unsubscribed).
    pub max_pending_acks: usize,
    /// How far ahead of the Hub's clock a context change may be stamped. Beyond it the event
    /// is refused (400): accepted, a wrong clock would make every app ignore every later,
    /// correctly stamped change (req 67) and lock the topic (decision, ARCHITECTURE.md).
    pub max_clock_ahead: Duration,
    /// Collect the protocol facts of every input for the timeline and the audit trail
    /// ([`timeline`]; the shell takes them with [`Topic::take_facts`]).
    pub record: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(60),
            default_lease_seconds: 3600,
            max_lease_seconds: 86_400,
            max_subscriptions: 2_000,
            max_bundle_entries: 500,
            max_open_contexts: 64,
            dedup_window: 1_024,
            derive_opens: true,
            non_current_updates: true,
            max_clock_ahead: Duration::from_secs(60),
            heartbeat: None,
            max_event_bytes: 1 << 20,
            max_content_bytes: 1 << 20,
            max_topic_bytes: 16 << 20,
            max_pending_acks: 256,
            record: false,
        }
    }
}

/// What the caller of an input is allowed to do, from its bearer token (req 16-23).
///
/// `Auth::open()` allows everything: the shell uses it when authorization is off (local
/// development). With tokens, the shell verifies the signature, issuer, audience and expiry,
/// and passes what the token grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Auth {
    /// The `fhircast/` scopes granted; `None` = everything (open mode).
    pub scopes: Option<Scopes>,
    /// When the token expires: leases end no later (req 20).
    pub expires_at: Option<Timestamp>,
    /// The topic the token is bound to, if it names one (neg 4, neg 13).
    pub topic: Option<String>,
    /// The token's subject (`sub`): who, for the timeline and the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The token's client (`client_id`, else `azp`): which app, for the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl Auth {
    /// Everything allowed: for hubs run without authorization.
    pub fn open() -> Self {
        Auth::default()
    }
}

/// What the shell must do on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Send `text` on the socket of endpoint `to`. One serialisation is shared by every
    /// recipient of a fan-out.
    Send {
        /// The endpoint token.
        to: String,
        /// The JSON text.
        text: Arc<str>,
    },
    /// Close the socket of endpoint `to`.
    Close {
        /// The endpoint token.
        to: String,
        /// The WebSocket close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// The answer to an accepted (un)subscribe (req 40, 53).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionAccepted {
    /// The endpoint token; the shell makes it the last segment of `hub.channel.endpoint`.
    pub endpoint: String,
}

/// The answer to an accepted event request (req 78).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventAccepted {
    /// The id, reused in the broadcast (req 80).
    pub id: String,
    /// The anchor's version after the event, for opens and updates (req 108-110).
    pub version_id: Option<String>,
    /// The request repeated an id already accepted with the same content: nothing was sent
    /// again (req 139).
    pub duplicate: bool,
}

/// The Hub's state for one topic, and its pending outputs.
#[derive(Debug)]
pub struct Topic {
    config: HubConfig,
    state: TopicState,
    outbound: VecDeque<Outbound>,
    /// Derived anchors recorded by the event being handled (not persisted): their recorded
    /// open goes out as it is, id included; any other derived open gets a fresh id.
    fresh_derived: Vec<crate::wire::ResourceKey>,
    /// Facts recorded and not yet taken ([`timeline`]; not persisted).
    facts: Vec<Fact>,
}

impl Topic {
    /// A new, empty topic. `id_prefix` makes the ids this Hub mints (SyncErrors, derived
    /// events, versions) unique across topics and restarts (req 137): give it fresh random
    /// text, e.g. 16 hex digits from a CSPRNG.
    pub fn new(topic: &str, id_prefix: &str, config: HubConfig) -> Self {
        Topic {
            config,
            state: TopicState::new(topic, id_prefix),
            outbound: VecDeque::new(),
            fresh_derived: Vec::new(),
            facts: Vec::new(),
        }
    }

    /// Rebuilds a topic from persisted state.
    pub fn restore(state: TopicState, config: HubConfig) -> Self {
        Topic { config, state, outbound: VecDeque::new(), fresh_derived: Vec::new(), facts: Vec::new() }
    }

    /// The state to persist.
    pub fn state(&self) -> &TopicState {
        &self.state
    }

    /// The settings.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The session id.
    pub fn topic(&self) -> &str {
        &self.state.topic
    }

    /// The next thing to put on the wire.
    pub fn poll_outbound(&mut self) -> Option<Outbound> {
        self.outbound.pop_front()
    }

    /// When [`Topic::handle_timeout`] must run next: the earliest ack deadline, lease end,
    /// unconnected-endpoint expiry or heartbeat. `None` when nothing is pending, so an idle
    /// topic needs no alarm.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let subs = self.state.subscriptions.values().flat_map(|s| {
            let acks = s.pending.iter().map(|p| p.deadline);
            std::iter::once(s.deadline()).chain(acks)
        });
        subs.chain(self.state.next_heartbeat).min()
    }

    /// What an app following `granted` should show now ([`crate::view`]): the Hub's current
    /// context as that app sees it.
    pub fn view_for(&self, granted: &[crate::catalog::EventName]) -> Option<crate::view::View> {
        let current = self.state.current.as_ref()?;
        crate::view::view_of(granted, Some(&self.state.anchor(current)?.open))
    }

    /// The number of subscriptions (issued or connected).
    pub fn subscription_count(&self) -> usize {
        self.state.subscriptions.len()
    }

    /// Whether the endpoint token belongs to a subscription of this topic.
    pub fn has_endpoint(&self, token: &str) -> bool {
        self.state.subscriptions.contains_key(token)
    }

    /// Endpoint tokens of the subscriptions whose socket is connected.
    pub fn connected_endpoints(&self) -> impl Iterator<Item = &str> {
        self.state.subscriptions.values().filter(|s| s.is_connected()).map(|s| s.endpoint.as_str())
    }

    fn push(&mut self, o: Outbound) {
        self.outbound.push_back(o);
    }
}

/// The endpoint token of a `hub.channel.endpoint` URL: its last path segment, without query
/// or fragment, whitespace trimmed (req 55).
pub fn endpoint_token(url: &str) -> Option<&str> {
    let url = url.trim();
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let last = url.trim_end_matches('/').rsplit('/').next()?;
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')).then_some(last)
}

#[cfg(test)]
mod tests;
