//! Subscribing (req 24-43), the socket, lease renewal (req 57), reconnecting after a lost
//! connection or a denial (req 48), and closing (req 49-50).

use std::rc::Rc;

use fhircast_core::subscription::{Mode, SubscriptionRequest};
use fhircast_core::wire::Confirmation;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use super::calls::Then;
use super::{deferred, Phase, Session};
use crate::error::{hub_message, SdkError};
use crate::http::{Reply, FORM};
use crate::js::{self, now};
use crate::policy::{reconnect_delay_ms, renew_after_ms};
use crate::socket::{Socket, NORMAL_CLOSURE};
use crate::timer::Timer;

impl Session {
    /// Subscribes afresh (a new endpoint): the first connection and every reconnection.
    pub(super) fn connect_once(self: &Rc<Self>) {
        if self.phase() == Phase::Closed {
            return;
        }
        self.state.borrow_mut().follower.handle_connecting(now());
        self.pump();
        self.subscribe(None, Then::Subscribe { renewal: None });
    }

    /// POSTs the subscription form (req 24-32); with `endpoint`, a renewal of that
    /// subscription (req 35, 57).
    fn subscribe(self: &Rc<Self>, endpoint: Option<String>, then: Then) {
        let form = SubscriptionRequest {
            mode: Mode::Subscribe,
            topic: self.topic.clone(),
            events: self.events.clone(),
            lease_seconds: self.lease_seconds,
            endpoint,
            subscriber_name: self.subscriber_name.clone(),
        }
        .to_form();
        self.call("subscribe", "POST", self.hub_url.clone(), Some((FORM, form)), then);
    }

    /// The hub's answer to a new subscription: the WebSocket endpoint (req 40).
    pub(super) fn subscribed(self: &Rc<Self>, reply: Result<Reply, SdkError>) {
        let endpoint = reply.and_then(|r| {
            if !r.ok() {
                return Err(SdkError::Http { what: "subscribe", status: r.status, message: hub_message(&r.body) });
            }
            // Read with the browser's JSON.parse: one serde deserialiser less in the wasm.
            js::get(&js::from_json_text(&r.body), "hub.channel.endpoint").as_string().ok_or_else(|| SdkError::Http {
                what: "subscribe",
                status: r.status,
                message: "the answer has no hub.channel.endpoint (req 40)".into(),
            })
        });
        match endpoint {
            Ok(endpoint) => self.open_socket(endpoint),
            Err(e) => self.connection_failed(e),
        }
    }

    fn open_socket(self: &Rc<Self>, endpoint: String) {
        let generation = {
            let mut st = self.state.borrow_mut();
            if st.phase == Phase::Closed {
                return;
            }
            st.generation += 1;
            st.generation
        };
        let (w1, w2) = (self.weak(), self.weak());
        let socket = Socket::open(
            &endpoint,
            move |text| {
                if let Some(s) = w1.upgrade() {
                    s.on_text(generation, &text);
                }
            },
            move |code, reason| {
                if let Some(s) = w2.upgrade() {
                    s.on_close(generation, code, &reason);
                }
            },
        );
        match socket {
            Ok(socket) => {
                let mut st = self.state.borrow_mut();
                st.socket = Some(socket);
                st.endpoint = Some(endpoint);
            }
            Err(e) => self.connection_failed(SdkError::Network {
                what: "opening the WebSocket",
                message: crate::http::js_message(&e),
            }),
        }
    }

    fn on_text(self: &Rc<Self>, generation: u64, text: &str) {
        let (confirmed, problem) = {
            let mut st = self.state.borrow_mut();
            if st.generation != generation || st.phase == Phase::Closed {
                return;
            }
            let confirmed = Confirmation::parse(text).ok().filter(|c| c.mode == "subscribe").map(|c| c.lease_seconds);
            (confirmed, st.follower.handle_text(text, now()).err())
        };
        if let Some(p) = problem {
            js::warn(&format!("ignored a message from the hub: {p}"), &JsValue::UNDEFINED);
        }
        if let Some(lease) = confirmed {
            self.confirmed(lease);
        }
        self.pump();
    }

    /// A confirmation (req 43): the connection is good; renew before the lease ends (req 57).
    /// The first one resolves `connect()` with the client.
    fn confirmed(self: &Rc<Self>, lease_seconds: u64) {
        let (waiter, _keep_alive) = {
            let mut st = self.state.borrow_mut();
            st.attempt = 0;
            st.phase = Phase::Live;
            let (w, generation) = (self.weak(), st.generation);
            st.renew_timer = Some(Timer::after(renew_after_ms(lease_seconds), move || {
                if let Some(s) = w.upgrade() {
                    s.renew(generation);
                }
            }));
            (st.waiter.take(), st.keep_alive.take())
        };
        if let Some((resolve, _)) = waiter {
            let _ = resolve.call1(&JsValue::UNDEFINED, &crate::client::FhircastClient::wrap(self.clone()));
        }
    }

    /// Re-subscribes with the current endpoint: same socket, new lease (req 35, 57).
    fn renew(self: &Rc<Self>, generation: u64) {
        let endpoint = {
            let st = self.state.borrow();
            if st.generation != generation || st.phase != Phase::Live || st.socket.is_none() {
                return;
            }
            st.endpoint.clone()
        };
        // The hub confirms on the socket; that confirmation arms the next renewal.
        self.subscribe(endpoint, Then::Subscribe { renewal: Some(generation) });
    }

    pub(super) fn renewed(self: &Rc<Self>, generation: u64, reply: Result<Reply, SdkError>) {
        match reply {
            Ok(r) if r.ok() => {}
            Ok(r) if (400..500).contains(&r.status) => {
                // The subscription is gone (expired, unknown endpoint): start afresh (req 48).
                let why = format!("the hub refused to renew the subscription ({}: {})", r.status, hub_message(&r.body));
                self.abandon_socket(generation, &why);
            }
            _ => {
                // The hub is unreachable: try again shortly; the socket tells if it is lost.
                let w = self.weak();
                let mut st = self.state.borrow_mut();
                if st.generation == generation {
                    st.renew_timer = Some(Timer::after(5_000.0, move || {
                        if let Some(s) = w.upgrade() {
                            s.renew(generation);
                        }
                    }));
                }
            }
        }
    }

    fn on_close(self: &Rc<Self>, generation: u64, code: u16, reason: &str) {
        let phase = {
            let st = self.state.borrow();
            if st.generation != generation {
                return;
            }
            st.phase
        };
        match phase {
            Phase::Closed => {}
            Phase::Starting => self.fail_start(SdkError::ClosedEarly { code, reason: reason.to_owned() }),
            Phase::Live => {
                let mut why = format!("the connection to the hub was lost (WebSocket closed with code {code}");
                if !reason.is_empty() {
                    why.push_str(": ");
                    why.push_str(reason);
                }
                why.push(')');
                self.abandon_socket(generation, &why);
            }
        }
    }

    /// The hub denied or ended the subscription (req 46-48): subscribe again from scratch.
    pub(super) fn ended_by_hub(self: &Rc<Self>, reason: String) {
        if self.phase() == Phase::Starting {
            self.fail_start(SdkError::Denied(reason));
        } else {
            let generation = self.state.borrow().generation;
            self.abandon_socket(generation, &format!("the hub ended the subscription: {reason}"));
        }
    }

    /// Drops the socket of `generation`, tells the follower, and reconnects.
    fn abandon_socket(self: &Rc<Self>, generation: u64, why: &str) {
        let socket = {
            let mut st = self.state.borrow_mut();
            if st.generation != generation || st.phase == Phase::Closed {
                return;
            }
            st.generation += 1;
            st.renew_timer = None;
            st.follower.handle_disconnected(why, now());
            st.socket.take()
        };
        drop(socket);
        self.settle_accepted_publishes();
        self.pump();
        self.schedule_reconnect();
    }

    fn connection_failed(self: &Rc<Self>, e: SdkError) {
        if self.phase() == Phase::Starting {
            self.fail_start(e);
            return;
        }
        self.state.borrow_mut().follower.handle_disconnected(&e.to_string(), now());
        self.pump();
        self.schedule_reconnect();
    }

    /// The first connection failed: `connect()` rejects and the session ends.
    fn fail_start(self: &Rc<Self>, e: SdkError) {
        let (waiter, socket, _keep_alive) = {
            let mut st = self.state.borrow_mut();
            st.phase = Phase::Closed;
            st.generation += 1;
            st.core_timer = None;
            st.renew_timer = None;
            (st.waiter.take(), st.socket.take(), st.keep_alive.take())
        };
        drop(socket);
        if let Some((_, reject)) = waiter {
            let _ = reject.call1(&JsValue::UNDEFINED, &e.into_js());
        }
    }

    fn schedule_reconnect(self: &Rc<Self>) {
        let mut st = self.state.borrow_mut();
        if st.phase == Phase::Closed {
            return;
        }
        st.attempt += 1;
        let w = self.weak();
        st.retry_timer = Some(Timer::after(reconnect_delay_ms(st.attempt, js::random()), move || {
            if let Some(s) = w.upgrade() {
                s.connect_once();
            }
        }));
    }

    /// Unsubscribes (req 49-50), closes the socket with 1000 and stops every timer.
    pub(crate) fn close(self: &Rc<Self>) -> Promise {
        let (endpoint, waiter) = {
            let mut st = self.state.borrow_mut();
            if st.phase == Phase::Closed {
                return Promise::resolve(&JsValue::UNDEFINED);
            }
            st.phase = Phase::Closed;
            st.core_timer = None;
            st.renew_timer = None;
            st.retry_timer = None;
            st.keep_alive = Some(self.clone());
            (st.socket.as_ref().and(st.endpoint.clone()), st.waiter.take())
        };
        if let Some((_, reject)) = waiter {
            let _ = reject.call1(&JsValue::UNDEFINED, &SdkError::ClientClosed.into_js());
        }
        let (promise, done, _) = deferred();
        match endpoint {
            Some(endpoint) => {
                let form = SubscriptionRequest {
                    mode: Mode::Unsubscribe,
                    topic: self.topic.clone(),
                    events: Vec::new(),
                    lease_seconds: None,
                    endpoint: Some(endpoint),
                    subscriber_name: None,
                }
                .to_form();
                self.call("unsubscribe", "POST", self.hub_url.clone(), Some((FORM, form)), Then::Unsubscribe { done });
            }
            None => self.unsubscribed(Ok(Reply { status: 200, body: String::new() }), done),
        }
        promise
    }

    pub(super) fn unsubscribed(self: &Rc<Self>, reply: Result<Reply, SdkError>, done: Function) {
        let problem = match reply {
            Ok(r) if r.ok() => None,
            Ok(r) => Some(SdkError::Http { what: "unsubscribe", status: r.status, message: hub_message(&r.body) }),
            Err(e) => Some(e),
        };
        if let Some(e) = problem {
            js::warn(&e.to_string(), &JsValue::UNDEFINED);
        }
        let (socket, publishes, _keep_alive) = {
            let mut st = self.state.borrow_mut();
            st.generation += 1;
            st.follower.handle_disconnected("closed by the app", now());
            (st.socket.take(), std::mem::take(&mut st.publishes), st.keep_alive.take())
        };
        if let Some(s) = socket {
            s.close(NORMAL_CLOSURE, "closed by the app");
        }
        for p in publishes {
            let _ = p.reject.call1(&JsValue::UNDEFINED, &SdkError::ClientClosed.into_js());
        }
        self.pump();
        let _ = done.call0(&JsValue::UNDEFINED);
    }
}
