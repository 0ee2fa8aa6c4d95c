//! A topic's hibernatable WebSockets, by endpoint token: accepting them, putting the core's
//! outbound messages on them, forgetting them when they close.
//!
//! Each socket is accepted with its endpoint token as tag and as attachment, so the object can
//! be evicted between messages. The map from token to socket is built on the first fan-out
//! after the object starts (or wakes) and kept up to date as sockets come and go: a fan-out is
//! then one lookup per recipient, not a walk over every socket's attachment.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use fhircast_core::hub::{Outbound, Topic};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{State, WebSocket, WebSocketPair};

#[wasm_bindgen]
extern "C" {
    /// A WebSocket seen only for `send`.
    type Sendable;
    /// `WebSocket.send` with a JS string made once per fan-out: `send_with_str` would convert
    /// the same Rust text to a new JS string for every recipient.
    #[wasm_bindgen(method, js_name = send, catch)]
    fn send_js(this: &Sendable, data: &JsValue) -> std::result::Result<(), JsValue>;
}

/// The sockets of one topic.
#[derive(Default)]
pub(crate) struct Sockets {
    by_token: RefCell<Option<HashMap<String, WebSocket>>>,
}

impl Sockets {
    /// The endpoint token of a socket.
    pub(crate) fn token_of(state: &State, ws: &WebSocket) -> Option<String> {
        ws.deserialize_attachment::<String>().ok().flatten().or_else(|| state.get_tags(ws).into_iter().next())
    }

    /// The tokens of every socket the runtime holds for this object.
    pub(crate) fn live_tokens(state: &State) -> Vec<String> {
        state.get_websockets().iter().flat_map(|ws| state.get_tags(ws)).collect()
    }

    /// Accepts a new socket for endpoint `token`: hibernatable, tagged and attached.
    pub(crate) fn accept(&self, state: &State, token: &str) -> worker::Result<WebSocketPair> {
        let pair = WebSocketPair::new()?;
        state.accept_websocket_with_tags(&pair.server, &[token]);
        pair.server.serialize_attachment(token)?;
        if let Some(map) = self.by_token.borrow_mut().as_mut() {
            map.insert(token.to_owned(), pair.server.clone());
        }
        Ok(pair)
    }

    /// Forgets a socket that closed.
    pub(crate) fn forget(&self, token: &str) {
        if let Some(map) = self.by_token.borrow_mut().as_mut() {
            map.remove(token);
        }
    }

    /// Puts the core's outbound messages on the sockets. A fan-out's text is one `Arc<str>`:
    /// it becomes one JS string, sent to every recipient.
    pub(crate) fn send_outbound(&self, state: &State, topic: &mut Topic) {
        let mut cache = self.by_token.borrow_mut();
        let mut last: Option<(Arc<str>, JsValue)> = None;
        while let Some(o) = topic.poll_outbound() {
            let by_token = cache.get_or_insert_with(|| {
                state.get_websockets().into_iter().filter_map(|ws| Some((Self::token_of(state, &ws)?, ws))).collect()
            });
            match o {
                Outbound::Send { to, text } => {
                    let Some(ws) = by_token.get(&to) else { continue };
                    let js = match &last {
                        Some((t, js)) if Arc::ptr_eq(t, &text) => js.clone(),
                        _ => {
                            let js = JsValue::from_str(&text);
                            last = Some((text, js.clone()));
                            js
                        }
                    };
                    let _ = AsRef::<worker::web_sys::WebSocket>::as_ref(ws).unchecked_ref::<Sendable>().send_js(&js);
                }
                Outbound::Close { to, code, reason } => {
                    if let Some(ws) = by_token.remove(&to) {
                        let _ = ws.close(Some(code), Some(reason.as_str()));
                    }
                }
            }
        }
    }
}
