//! The browser WebSocket: text in, text out, one close callback. Dropping a [`Socket`]
//! detaches the callbacks and closes the socket if it is still open.

use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// Normal closure (RFC 6455): what the SDK sends when the app closes the client (req 49).
pub(crate) const NORMAL_CLOSURE: u16 = 1000;

/// An open (or opening) WebSocket with its callbacks. They have the one closure type the SDK
/// uses everywhere (`FnMut(JsValue)`, also for timers and promises): each closure type costs
/// its own wasm-bindgen shims.
pub(crate) struct Socket {
    ws: WebSocket,
    _on_message: Closure<dyn FnMut(JsValue)>,
    _on_close: Closure<dyn FnMut(JsValue)>,
}

impl Socket {
    /// Opens `url`; `on_text` gets every text message, `on_close` the close code and reason
    /// (1006 when the connection failed or dropped).
    pub(crate) fn open(
        url: &str,
        on_text: impl Fn(String) + 'static,
        on_close: impl Fn(u16, String) + 'static,
    ) -> Result<Socket, JsValue> {
        let ws = WebSocket::new(url)?;
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            if let Some(text) = e.unchecked_ref::<MessageEvent>().data().as_string() {
                on_text(text);
            }
        });
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let e: &CloseEvent = e.unchecked_ref();
            on_close(e.code(), e.reason());
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket { ws, _on_message: on_message, _on_close: on_close })
    }

    /// Sends a text message (dropped if the socket is not open: the hub then times the
    /// notification out, which is what a lost connection means anyway).
    pub(crate) fn send(&self, text: &str) {
        let _ = self.ws.send_with_str(text);
    }

    /// Starts the closing handshake.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        let _ = self.ws.close_with_code_and_reason(code, reason);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        if self.ws.ready_state() <= WebSocket::OPEN {
            self.close(NORMAL_CLOSURE, "client dropped");
        }
    }
}
