//! The roster: who follows a topic and how they are doing, for an EHR's dashboard
//! (`GET {hub.url}/{topic}/subscribers`; not a FHIRcast operation, an extension of this Hub).
//!
//! An EHR hosting apps wants to show whether each one keeps up: a SyncError tells it when one
//! refused, but not who is listening, who is still connecting, or who has not answered yet.
//! The roster says that and nothing more: no endpoint URLs (they are the subscribers' only
//! credential on the socket, req 22) and no context.

use serde::Serialize;

use super::{Auth, ContextError, Topic};
use crate::catalog::EventName;
use crate::scope::Access;

/// The subscribers of a topic, in the order they subscribed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Roster {
    /// The topic.
    #[serde(rename = "hub.topic")]
    pub topic: String,
    /// One entry per subscription (connected or waiting for its socket).
    pub subscribers: Vec<RosterEntry>,
}

/// One subscriber in the [`Roster`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RosterEntry {
    /// `subscriber.name`, or "unnamed subscriber #n" (the name SyncErrors use, req 92).
    pub name: String,
    /// The events granted (req 43).
    pub events: Vec<EventName>,
    /// Whether its WebSocket is connected (and the subscription confirmed).
    pub connected: bool,
    /// Notifications sent to it and not answered yet, oldest first.
    pub awaiting: Vec<RosterAnswer>,
    /// Its last answer, if any: `status` 200 followed, 202 deciding, 409 refused, …
    #[serde(rename = "lastAnswer", skip_serializing_if = "Option::is_none")]
    pub last_answer: Option<RosterAnswer>,
}

/// A notification in the [`Roster`]: its id, its event, and the answer given (if any).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RosterAnswer {
    /// The notification's id.
    pub id: String,
    /// Its event.
    pub event: EventName,
    /// The status answered; absent while awaited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl Topic {
    /// Whether `auth` may read how this topic's subscribers are doing: the roster, and the
    /// timeline (issue 17), which tells the same story over time.
    pub fn may_observe(&self, auth: &Auth) -> Result<(), ContextError> {
        if auth.topic.as_ref().is_some_and(|t| *t != self.state.topic) {
            return Err(ContextError::TopicNotAllowed { topic: self.state.topic.clone() });
        }
        let sync_error = EventName::parse("SyncError").expect("catalogued");
        if auth.scopes.as_ref().is_some_and(|s| !s.allows(&sync_error, Access::Read)) {
            return Err(ContextError::RosterNeedsSyncErrorRead);
        }
        Ok(())
    }

    /// The roster of this topic.
    ///
    /// Decision: it needs what SyncErrors need — a token for this topic (if bound to one) that
    /// may read `SyncError` — since it tells the same story (who does not follow) in more detail.
    pub fn roster(&self, auth: &Auth) -> Result<Roster, ContextError> {
        self.may_observe(auth)?;
        let mut subs: Vec<_> = self.state.subscriptions.values().collect();
        subs.sort_by_key(|s| s.number);
        let subscribers = subs
            .into_iter()
            .map(|s| RosterEntry {
                name: s.display_name(),
                events: s.events.clone(),
                connected: s.is_connected(),
                awaiting: s
                    .pending
                    .iter()
                    .map(|p| RosterAnswer { id: p.id.to_string(), event: p.event.clone(), status: None })
                    .collect(),
                last_answer: s.last_answer.as_ref().map(|a| RosterAnswer {
                    id: a.id.to_string(),
                    event: a.event.clone(),
                    status: Some(a.status),
                }),
            })
            .collect();
        Ok(Roster { topic: self.state.topic.clone(), subscribers })
    }
}
