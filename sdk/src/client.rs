//! `FhircastClient`: the exported class. Every method checks its arguments, calls the
//! session, and turns [`SdkError`]s into JavaScript `Error`s; nothing else happens here.
//! (`npm/index.js` wraps this class in the public, documented one.)

use std::rc::Rc;

use fhircast_core::catalog::EventName;
use fhircast_core::wire::ContextEntry;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use crate::error::SdkError;
use crate::js;
use crate::options::{Listener, Options};
use crate::session::Session;
use fhircast_core::sharing::{self, Changes};

/// A FHIRcast subscriber: one subscription to one topic, followed over a WebSocket.
#[wasm_bindgen]
pub struct FhircastClient {
    session: Rc<Session>,
}

fn listener(kind: &str) -> Result<Listener, JsValue> {
    Listener::parse(kind).ok_or_else(|| SdkError::Argument(format!("unknown listener kind {kind:?}")).into_js())
}

#[wasm_bindgen]
impl FhircastClient {
    /// Subscribes (req 24-32), opens the WebSocket (req 40-42) and resolves with the client
    /// once the hub confirmed the subscription (req 43). Rejects if the hub refuses or cannot
    /// be reached.
    pub fn connect(options: JsValue) -> Result<Promise, JsValue> {
        let options = Options::from_js(&options).map_err(SdkError::into_js)?;
        Ok(Session::new(options).start())
    }

    /// The topic (`hub.topic`) this client follows.
    #[wasm_bindgen(getter)]
    pub fn topic(&self) -> String {
        self.session.topic().to_owned()
    }

    /// Sets the handler of `event` (case-insensitive; `*` for any event without its own).
    /// Its result decides the answer to the hub (req 71).
    pub fn on(&self, event: &str, handler: Function) -> Result<(), JsValue> {
        self.session.set_handler(event, handler).map_err(SdkError::into_js)
    }

    /// Removes the handler of `event`, if it is `handler`.
    pub fn off(&self, event: &str, handler: &Function) {
        self.session.remove_handler(event, handler);
    }

    /// Adds a listener: `kind` is `onSyncError`, `onStatusChange` or `onContextChange`.
    pub fn listen(&self, kind: &str, callback: Function) -> Result<(), JsValue> {
        self.session.add_listener(listener(kind)?, callback);
        Ok(())
    }

    /// Removes a listener added with `listen`.
    pub fn unlisten(&self, kind: &str, callback: &Function) -> Result<(), JsValue> {
        self.session.remove_listener(listener(kind)?, callback);
        Ok(())
    }

    /// Sends an event (req 76); resolves with its id when the hub accepted it and its echo
    /// arrived (req 80).
    pub fn publish(&self, event: &str, context: JsValue) -> Result<Promise, JsValue> {
        let name = EventName::parse(event)
            .map_err(|e| SdkError::Argument(format!("publish({event:?}, context): {e}")).into_js())?;
        let bad = |why: &str| {
            SdkError::Argument(format!(
                "publish({event:?}, context): context must be an array of {{key, resource}} or {{key, reference}} entries{why}"
            ))
            .into_js()
        };
        if !js_sys::Array::is_array(&context) {
            return Err(bad(""));
        }
        let context: Vec<ContextEntry> = js::from_js(&context).map_err(|e| bad(&format!(" ({e})")))?;
        self.session.publish(name, context).map_err(SdkError::into_js)
    }

    /// Shares content (req 107-117): a `<Type>-update` of `anchor` (`"Type/id"`) with a
    /// transaction Bundle of `changes = {put: [...resources], delete: ["Type/id", ...]}`,
    /// carrying the anchor's current `context.versionId`.
    pub fn update(&self, anchor: &str, changes: JsValue) -> Result<Promise, JsValue> {
        let bad = || {
            SdkError::Argument("update(anchor, changes): changes must be {put?: Resource[], delete?: string[]}".into())
                .into_js()
        };
        if !changes.is_object() {
            return Err(bad());
        }
        let put = js::array_of(&js::get(&changes, "put"), js::json_text).ok_or_else(bad)?;
        let delete = js::array_of(&js::get(&changes, "delete"), |v| v.as_string()).ok_or_else(bad)?;
        let changes = Changes { put, delete };
        let (name, context) =
            sharing::update_event(anchor, &changes, &js::uuid()).map_err(|e| SdkError::Argument(e.0).into_js())?;
        self.session.publish(name, context).map_err(SdkError::into_js)
    }

    /// Selects resources in the current anchor (req 115, 119, 121): a `<Type>-select` with one
    /// `select` reference per `"Type/id"` (an empty list clears the selection).
    pub fn select(&self, anchor: &str, references: JsValue) -> Result<Promise, JsValue> {
        let refs = js::array_of(&references, |v| v.as_string()).ok_or_else(|| {
            SdkError::Argument("select(anchor, references): references must be an array of \"Type/id\" strings".into())
                .into_js()
        })?;
        let current = self.session.current_anchor();
        let (name, context) =
            sharing::select_event(anchor, &refs, current.as_ref()).map_err(|e| SdkError::Argument(e.0).into_js())?;
        self.session.publish(name, context).map_err(SdkError::into_js)
    }

    /// Decides about an event whose handler answered `'defer'` (req 75): `'accept'`,
    /// `'refuse'` or `'fail'`.
    pub fn decide(&self, event_id: &str, outcome: JsValue) -> Result<(), JsValue> {
        self.session.decide_later(event_id, &outcome).map_err(SdkError::into_js)
    }

    /// What the app should show, or `null`.
    #[wasm_bindgen(js_name = currentContext)]
    pub fn current_context(&self) -> JsValue {
        self.session.current_js()
    }

    /// `{state, reason?}`.
    pub fn status(&self) -> JsValue {
        self.session.status_js()
    }

    /// Unsubscribes (req 49-50), closes the WebSocket with code 1000 and stops all timers.
    pub fn close(&self) -> Promise {
        self.session.close()
    }
}

impl FhircastClient {
    /// The JS object of a client for `session` (what `connect()` resolves with).
    pub(crate) fn wrap(session: Rc<Session>) -> JsValue {
        FhircastClient { session }.into()
    }
}
