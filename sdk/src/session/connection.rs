//! The I/O of the subscription's lifecycle. The core's [`Subscriber`] decides when to
//! subscribe, renew (at 80 % of the lease), reconnect (with backoff) and close; this file only
//! performs its [`Action`]s — a POST, a WebSocket, closing it — and reports the results back,
//! tagged with the numbers the actions carried.
//!
//! [`Subscriber`]: fhircast_core::subscriber::Subscriber

use std::rc::Rc;

use fhircast_core::subscriber::{Action, StartFailure};
use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::calls::Then;
use super::{deferred, Session};
use crate::error::{http_error, SdkError};
use crate::http::{Reply, FORM};
use crate::js::{self, now};
use crate::socket::{Socket, NORMAL_CLOSURE};

impl Session {
    /// Performs one of the lifecycle's actions (the follower's outputs go to `dispatch`).
    pub(super) fn perform(self: &Rc<Self>, action: Action<SdkError>) {
        match action {
            Action::Subscribe { form, request } => {
                self.call("subscribe", "POST", self.hub_url.clone(), Some((FORM, form)), Then::Subscribe { request })
            }
            Action::Renew { form, request } => {
                self.call("subscribe", "POST", self.hub_url.clone(), Some((FORM, form)), Then::Renew { request })
            }
            Action::OpenSocket { endpoint, socket } => self.open_socket(&endpoint, socket),
            Action::DropSocket => drop(self.state.borrow_mut().socket.take()),
            Action::Unsubscribe { form } => {
                self.call("unsubscribe", "POST", self.hub_url.clone(), Some((FORM, form)), Then::Unsubscribe)
            }
            Action::CloseSocket => {
                if let Some((_, s)) = self.state.borrow_mut().socket.take() {
                    s.close(NORMAL_CLOSURE, "closed by the app");
                }
            }
            Action::Follower(out) => self.dispatch(out),
            Action::Started => {
                let (waiter, _keep_alive) = {
                    let mut st = self.state.borrow_mut();
                    (st.waiter.take(), st.keep_alive.take())
                };
                if let Some((resolve, _)) = waiter {
                    let _ = resolve.call1(&JsValue::UNDEFINED, &crate::client::FhircastClient::wrap(self.clone()));
                }
            }
            Action::StartFailed(failure) => {
                let e = match failure {
                    StartFailure::Shell(e) => e,
                    StartFailure::Denied(reason) => SdkError::Denied(reason),
                    StartFailure::ClosedEarly { code, reason } => SdkError::ClosedEarly { code, reason },
                    StartFailure::Closed => SdkError::ClientClosed,
                };
                let (waiter, socket, _keep_alive) = {
                    let mut st = self.state.borrow_mut();
                    st.core_timer = None;
                    // A `close()` under way keeps the session until its unsubscribe is answered.
                    let keep = if st.closing.is_none() { st.keep_alive.take() } else { None };
                    (st.waiter.take(), st.socket.take(), keep)
                };
                drop(socket);
                if let Some((_, reject)) = waiter {
                    let _ = reject.call1(&JsValue::UNDEFINED, &e.into_js());
                }
            }
            Action::Closed { problem } => {
                if let Some(e) = problem {
                    js::warn(&e.to_string(), &JsValue::UNDEFINED);
                }
                let (publishes, done, waiter, _keep_alive) = {
                    let mut st = self.state.borrow_mut();
                    st.core_timer = None;
                    (std::mem::take(&mut st.publishes), st.closing.take(), st.waiter.take(), st.keep_alive.take())
                };
                if let Some((_, reject)) = waiter {
                    let _ = reject.call1(&JsValue::UNDEFINED, &SdkError::ClientClosed.into_js());
                }
                for p in publishes {
                    let _ = p.reject.call1(&JsValue::UNDEFINED, &SdkError::ClientClosed.into_js());
                }
                if let Some(done) = done {
                    let _ = done.call0(&JsValue::UNDEFINED);
                }
            }
        }
    }

    /// The answer to a subscribe POST: the WebSocket endpoint (req 40), or why not.
    pub(super) fn subscribed(self: &Rc<Self>, request: u64, reply: Result<Reply, SdkError>) {
        let endpoint = reply.and_then(|r| {
            if !r.ok() {
                return Err(http_error("subscribe", r));
            }
            // Read with the browser's JSON.parse: one serde deserialiser less in the wasm.
            js::get(&js::from_json_text(&r.body), "hub.channel.endpoint").as_string().ok_or_else(|| SdkError::Http {
                what: "subscribe",
                status: r.status,
                message: "the answer has no hub.channel.endpoint (req 40)".into(),
                url: r.url,
            })
        });
        self.state.borrow_mut().sub.handle_subscribed(request, endpoint, now());
        self.pump();
    }

    /// The answer to a renewal (req 35, 57).
    pub(super) fn renewed(self: &Rc<Self>, request: u64, reply: Result<Reply, SdkError>) {
        let result = match reply {
            Ok(r) if r.ok() => Ok(()),
            Ok(r) => Err((r.status, http_error("renew", r))),
            Err(e) => Err((0, e)),
        };
        self.state.borrow_mut().sub.handle_renewed(request, result, now());
        self.pump();
    }

    fn open_socket(self: &Rc<Self>, endpoint: &str, tag: u64) {
        let (w1, w2) = (self.weak(), self.weak());
        let socket = Socket::open(
            endpoint,
            move |text| {
                if let Some(s) = w1.upgrade() {
                    s.on_text(tag, &text);
                }
            },
            move |code, reason| {
                if let Some(s) = w2.upgrade() {
                    s.on_close(tag, code, &reason);
                }
            },
        );
        match socket {
            Ok(socket) => self.state.borrow_mut().socket = Some((tag, socket)),
            Err(e) => {
                let e = SdkError::Network {
                    what: "opening the WebSocket",
                    url: endpoint.to_owned(),
                    message: crate::http::js_message(&e),
                };
                self.state.borrow_mut().sub.handle_socket_failed(tag, e, now());
                self.pump();
            }
        }
    }

    fn on_text(self: &Rc<Self>, tag: u64, text: &str) {
        let problem = self.state.borrow_mut().sub.handle_socket_text(tag, text, now()).err();
        if let Some(p) = problem {
            js::warn(&format!("ignored a message from the hub: {p}"), &JsValue::UNDEFINED);
        }
        self.pump();
    }

    fn on_close(self: &Rc<Self>, tag: u64, code: u16, reason: &str) {
        {
            let mut st = self.state.borrow_mut();
            if st.socket.as_ref().is_some_and(|(t, _)| *t == tag) {
                st.socket = None;
            }
            st.sub.handle_socket_closed(tag, code, reason, now());
        }
        self.pump();
    }

    /// Unsubscribes (req 49-50), closes the socket with 1000 and stops every timer.
    pub(crate) fn close(self: &Rc<Self>) -> Promise {
        if self.state.borrow().sub.is_closed() {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let (promise, done, _) = deferred();
        {
            let mut st = self.state.borrow_mut();
            st.closing = Some(done);
            st.keep_alive = Some(self.clone());
            st.sub.close(now());
        }
        self.pump();
        promise
    }

    /// The answer to the unsubscribe POST; the app is closed either way.
    pub(super) fn unsubscribed(self: &Rc<Self>, reply: Result<Reply, SdkError>) {
        let result = match reply {
            Ok(r) if r.ok() => Ok(()),
            Ok(r) => Err(http_error("unsubscribe", r)),
            Err(e) => Err(e),
        };
        self.state.borrow_mut().sub.handle_unsubscribed(result, now());
        self.pump();
    }
}
