//! Get Current Context (req 100-106).

use super::events::carries;
use super::{Auth, ContextError, Topic};
use crate::catalog::{EventKind, EventName};
use crate::scope::Access;
use crate::wire::CurrentContext;

impl Topic {
    /// The answer to `GET {hub.url}/{topic}`: the context array of the current context's
    /// open exactly as it was sent (req 106), its anchor type and `context.versionId`, and one
    /// `content` entry holding the anchor's shared content as a `collection` Bundle (req 105).
    /// With no current context, the empty form (req 103-104).
    ///
    /// Decision (§5a-8, req 18, 45, 97): a GET carries no subscription, so it is filtered by
    /// the token's read scopes, as a subscription with those grants would be. A token that may
    /// read the current anchor's open event gets it whole. One that may not, but may read an
    /// open the current context implies (`Patient-open` under a `DiagnosticReport-open`), gets
    /// the most recent such open — the derived open a subscriber with that grant was sent
    /// (req 97), never resources of events it may not read (req 18). Only a token that can
    /// read neither is refused (403). Without tokens (open mode) there is nothing to filter by.
    pub fn current_context(&self, auth: &Auth) -> Result<CurrentContext, ContextError> {
        if auth.topic.as_ref().is_some_and(|t| *t != self.state.topic) {
            return Err(ContextError::TopicNotAllowed { topic: self.state.topic.clone() });
        }
        let Some(anchor) = self.state.current.as_ref().and_then(|k| self.state.anchor(k)) else {
            return Ok(CurrentContext::empty());
        };
        let readable = |name: &EventName| auth.scopes.as_ref().is_none_or(|s| s.allows(name, Access::Read));
        let anchor = if readable(&anchor.open.name) {
            anchor
        } else {
            self.state
                .anchors
                .iter()
                .rev()
                .filter(|a| a.key != anchor.key && carries(&anchor.open, &a.key))
                .find(|a| EventName::of(&a.key.resource_type, EventKind::Open).is_some_and(|n| readable(&n)))
                .ok_or_else(|| ContextError::MissingScope { event: anchor.open.name.to_string() })?
        };
        let mut context = anchor.open.context.clone();
        context.push(anchor.content.context_entry());
        Ok(CurrentContext {
            context_type: anchor.key.resource_type.clone(),
            version_id: Some(anchor.version_id.clone()),
            context,
        })
    }
}
