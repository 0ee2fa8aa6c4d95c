//! Get Current Context (req 100-106).

use super::{Auth, ContextError, Topic};
use crate::catalog::EventName;
use crate::scope::Access;
use crate::wire::CurrentContext;

impl Topic {
    /// The answer to `GET {hub.url}/{topic}`: the context array of the current context's
    /// open exactly as it was sent (req 106), its anchor type and `context.versionId`, and one
    /// `content` entry holding the anchor's shared content as a `collection` Bundle (req 105).
    /// With no current context, the empty form (req 103-104).
    ///
    /// Decision (§5a-8): a GET carries no subscription, so it is filtered by the token: it
    /// needs the read scope of the current anchor's open event.
    pub fn current_context(&self, auth: &Auth) -> Result<CurrentContext, ContextError> {
        if auth.topic.as_ref().is_some_and(|t| *t != self.state.topic) {
            return Err(ContextError::TopicNotAllowed { topic: self.state.topic.clone() });
        }
        let Some(anchor) = self.state.current.as_ref().and_then(|k| self.state.anchor(k)) else {
            return Ok(CurrentContext::empty());
        };
        let open: &EventName = &anchor.open.name;
        if auth.scopes.as_ref().is_some_and(|s| !s.allows(open, Access::Read)) {
            return Err(ContextError::MissingScope { event: open.to_string() });
        }
        let mut context = anchor.open.context.clone();
        context.push(anchor.content.context_entry());
        Ok(CurrentContext {
            context_type: anchor.key.resource_type.clone(),
            version_id: Some(anchor.version_id.clone()),
            context,
        })
    }
}
