//! HTTP calls and other promises the session waits for, continued by callbacks.
//!
//! Every wait is an entry in `State::waiting` holding the step to continue with and the two
//! callbacks given to `promise.then`; whichever runs removes the entry (dropping both) and
//! continues. All callbacks share one closure type, so this costs one wasm-bindgen shim,
//! where `async` blocks cost a state machine each plus an executor.

use std::rc::{Rc, Weak};

use fhircast_core::follower::Decision;
use fhircast_core::wire::CurrentContext;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use web_sys::Response;

use super::{decision_of, Session};
use crate::error::{hub_message, SdkError};
use crate::http::{self, js_message, Reply, JSON};
use crate::js::{self, now};
use crate::token::{read, token_error, Next};

/// What to do with an HTTP answer.
pub(super) enum Then {
    /// A subscription (the subscriber's request tag).
    Subscribe { request: u64 },
    /// A renewal of the lease (req 57).
    Renew { request: u64 },
    /// An own event, a resend or a SyncError was POSTed.
    Post { event_id: String },
    /// Get-current-context.
    Snapshot,
    /// `close()`'s unsubscribe.
    Unsubscribe,
}

/// An HTTP call: the token is read first (it may be a promise), then the request is sent.
pub(super) struct Call {
    what: &'static str,
    method: &'static str,
    url: String,
    body: Option<(&'static str, String)>,
    then: Then,
}

/// Where a wait continues.
pub(super) enum Step {
    Token(Call),
    Response(Call),
    Text(Call, u16),
    /// A handler's promise settled: its value is the decision about this event.
    Decision {
        event_id: String,
        name: String,
    },
}

pub(super) struct Waiting {
    id: u32,
    step: Step,
    _callbacks: [Closure<dyn FnMut(JsValue)>; 2],
}

fn resumer(w: Weak<Session>, id: u32, fulfilled: bool) -> Closure<dyn FnMut(JsValue)> {
    Closure::new(move |v: JsValue| {
        if let Some(s) = w.upgrade() {
            s.resume(id, if fulfilled { Ok(v) } else { Err(v) });
        }
    })
}

impl Session {
    /// Continues with `step` when `promise` settles.
    pub(super) fn wait(self: &Rc<Self>, promise: &Promise, step: Step) {
        let mut st = self.state.borrow_mut();
        let id = st.next_wait;
        st.next_wait = st.next_wait.wrapping_add(1);
        let callbacks = [resumer(self.weak(), id, true), resumer(self.weak(), id, false)];
        let _ = promise.then2(&callbacks[0], &callbacks[1]);
        st.waiting.push(Waiting { id, step, _callbacks: callbacks });
    }

    fn resume(self: &Rc<Self>, id: u32, result: Result<JsValue, JsValue>) {
        let waiting = {
            let mut st = self.state.borrow_mut();
            let Some(i) = st.waiting.iter().position(|w| w.id == id) else { return };
            st.waiting.swap_remove(i)
        };
        // The callbacks (one of them is running now) are dropped when this returns; the JS
        // glue defers freeing a closure until its invocation has ended.
        let Waiting { step, _callbacks, .. } = waiting;
        let net = |call: &Call, e: &JsValue| SdkError::Network {
            what: call.what,
            url: call.url.clone(),
            message: js_message(e),
        };
        match step {
            Step::Token(call) => match result.map_err(|e| token_error(&e)).and_then(|v| read(&v)) {
                Ok(token) => self.send(call, token),
                Err(e) => self.finish(call.then, Err(e)),
            },
            Step::Response(call) => match result {
                Ok(r) => {
                    let r: Response = r.unchecked_into();
                    let status = r.status();
                    match r.text() {
                        Ok(text) => self.wait(&text, Step::Text(call, status)),
                        Err(e) => {
                            let e = net(&call, &e);
                            self.finish(call.then, Err(e))
                        }
                    }
                }
                Err(e) => {
                    let e = net(&call, &e);
                    self.finish(call.then, Err(e))
                }
            },
            Step::Text(call, status) => match result {
                Ok(t) => {
                    let body = t.as_string().unwrap_or_default();
                    self.finish(call.then, Ok(Reply { status, body, url: call.url }))
                }
                Err(e) => {
                    let e = net(&call, &e);
                    self.finish(call.then, Err(e))
                }
            },
            Step::Decision { event_id, name } => {
                let d = match result {
                    Ok(v) => decision_of(&v, &name),
                    Err(e) => {
                        js::warn(&format!("the {name} handler's promise rejected; answering as failed"), &e);
                        Decision::Fail
                    }
                };
                self.decide(&event_id, d);
                self.pump();
            }
        }
    }

    /// Starts an HTTP call; its answer goes to `then`.
    pub(super) fn call(
        self: &Rc<Self>,
        what: &'static str,
        method: &'static str,
        url: String,
        body: Option<(&'static str, String)>,
        then: Then,
    ) {
        let call = Call { what, method, url, body, then };
        match self.token.next() {
            Ok(Next::Ready(token)) => self.send(call, token),
            Ok(Next::Later(p)) => self.wait(&p, Step::Token(call)),
            Err(e) => self.finish(call.then, Err(e)),
        }
    }

    fn send(self: &Rc<Self>, call: Call, token: Option<String>) {
        let body = call.body.as_ref().map(|(ct, b)| (*ct, b.as_str()));
        match http::fetch(call.method, &call.url, body, token.as_deref()) {
            Ok(p) => self.wait(&p, Step::Response(call)),
            Err(e) => self
                .finish(call.then, Err(SdkError::Network { what: call.what, url: call.url, message: js_message(&e) })),
        }
    }

    fn finish(self: &Rc<Self>, then: Then, reply: Result<Reply, SdkError>) {
        match then {
            Then::Subscribe { request } => self.subscribed(request, reply),
            Then::Renew { request } => self.renewed(request, reply),
            Then::Post { event_id } => self.posted(&event_id, reply),
            Then::Snapshot => self.snapshot(reply),
            Then::Unsubscribe => self.unsubscribed(reply),
        }
    }

    /// POSTs an event (an own event, a resend, or a SyncError) and reports the answer.
    pub(super) fn post_event(self: &Rc<Self>, event: fhircast_core::Event) {
        let then = Then::Post { event_id: event.id.clone() };
        self.call("publish", "POST", self.hub_url.clone(), Some((JSON, event.to_json())), then);
    }

    fn posted(self: &Rc<Self>, event_id: &str, reply: Result<Reply, SdkError>) {
        let result = match reply {
            Ok(r) if r.ok() => Ok(()),
            Ok(r) => Err((r.status, hub_message(&r.body))),
            Err(e) => Err((0, e.to_string())),
        };
        self.state.borrow_mut().sub.follower_mut().handle_post_result(event_id, result, now());
        self.pump();
    }

    /// `GET {hub}/{topic}` (req 100-106) into the follower.
    pub(super) fn fetch_snapshot(self: &Rc<Self>) {
        let url = crate::policy::context_url(&self.hub_url, &self.topic);
        self.call("get current context", "GET", url, None, Then::Snapshot);
    }

    fn snapshot(self: &Rc<Self>, reply: Result<Reply, SdkError>) {
        {
            let mut st = self.state.borrow_mut();
            let now = now();
            let f = st.sub.follower_mut();
            match reply {
                Ok(r) if r.ok() => match CurrentContext::parse(&r.body) {
                    Ok(c) => f.handle_snapshot(&c, now),
                    Err(e) => f.handle_snapshot_failed(&format!("unreadable current context: {e}"), now),
                },
                Ok(r) => {
                    f.handle_snapshot_failed(&format!("the hub answered {}: {}", r.status, hub_message(&r.body)), now)
                }
                Err(e) => f.handle_snapshot_failed(&e.to_string(), now),
            }
        }
        self.pump();
    }
}
