//! One subscription's I/O around a [`Follower`]: the shell's engine.
//!
//! The core decides everything: the [`Subscriber`] the lifecycle (subscribe, renew at 80 %,
//! reconnect with backoff, close), its [`fhircast_core::follower::Follower`] the
//! notifications. A [`Session`] only turns their actions into I/O and the results back into
//! inputs. After every input it pumps [`Subscriber::poll_action`] and keeps exactly one
//! `setTimeout` armed at [`Subscriber::poll_timeout`].
//!
//! - `mod.rs`: state, the app's side (handlers, listeners, publish, decide) and the pump;
//! - `connection.rs`: the lifecycle's I/O: subscribe and renew POSTs, the socket, closing;
//! - `calls.rs`: HTTP calls and other promises, continued by callbacks (no async runtime:
//!   futures cost more wasm than the few continuations they would replace).
//!
//! Re-entrancy: app callbacks run with no `RefCell` borrow held, so a handler may call any
//! client method (publish, decide, close). A pump started inside another pump returns at once;
//! the outer loop picks up what the inner call queued.
//!
//! Lifetimes: callbacks registered with the browser (socket, timers, promises) hold a `Weak`
//! reference; the exported client holds the lasting `Rc`, and the session holds itself only
//! while `connect()` or `close()` is under way. When the app drops the client, the session
//! drops its socket (closing it) and its timers.

mod calls;
mod connection;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use fhircast_core::catalog::EventName;
use fhircast_core::follower::{Decision, FollowerConfig, Output};
use fhircast_core::subscriber::{Subscriber, SubscriberConfig, SubscriberPolicy};
use fhircast_core::wire::ContextEntry;
use fhircast_core::{Event, EventKind, Timestamp};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use crate::error::SdkError;
use crate::js::{self, now};
use crate::options::{Listener, Options};
use crate::shapes::{context_json, parse_outcome, status_json, sync_error_json};
use crate::socket::Socket;
use crate::timer::Timer;
use crate::token::Token;

use calls::{Step, Waiting};

/// A `publish()` waiting for the hub's answer and the echo.
struct Publish {
    id: String,
    resolve: Function,
    reject: Function,
}

struct State {
    sub: Subscriber<SdkError>,
    /// The socket and the tag the subscriber gave it.
    socket: Option<(u64, Socket)>,
    core_timer: Option<(Timestamp, Timer)>,
    pumping: bool,
    publishes: Vec<Publish>,
    /// `connect()`'s resolve and reject, until the first confirmation.
    waiter: Option<(Function, Function)>,
    /// `close()`'s resolve, until the unsubscribe is answered.
    closing: Option<Function>,
    /// Promises the session waits for, with their callbacks.
    waiting: Vec<Waiting>,
    next_wait: u32,
    /// The session itself, while `connect()` or `close()` is under way and nobody else holds it.
    keep_alive: Option<Rc<Session>>,
}

#[derive(Default)]
struct Callbacks {
    /// Event handlers by lower-case canonical name, or `*`.
    handlers: Vec<(String, Function)>,
    listeners: Vec<(Listener, Function)>,
}

/// One subscription, its socket and its follower.
pub(crate) struct Session {
    hub_url: String,
    topic: String,
    events: Vec<EventName>,
    token: Token,
    callbacks: RefCell<Callbacks>,
    state: RefCell<State>,
}

/// A promise with its resolve and reject functions.
pub(crate) fn deferred() -> (Promise, Function, Function) {
    let mut slots = None;
    let promise = Promise::new(&mut |resolve, reject| slots = Some((resolve, reject)));
    let (resolve, reject) = slots.expect("the executor runs synchronously");
    (promise, resolve, reject)
}

/// The app's answer as returned by a handler (req 71): `undefined`/`true`/`'accept'` accept,
/// `false`/`'refuse'` refuse, `'defer'` defers, `'fail'` fails; anything else is a bug in the
/// app, answered as a failure (500) with a warning.
fn decision_of(v: &JsValue, event: &str) -> Decision {
    if v.is_undefined() || v.is_null() {
        return Decision::Accept;
    }
    if let Some(b) = v.as_bool() {
        return if b { Decision::Accept } else { Decision::Refuse };
    }
    if let Some(d) = v.as_string().as_deref().and_then(parse_outcome) {
        return d;
    }
    js::warn(
        &format!("the {event} handler returned something other than undefined, a boolean or 'accept' | 'refuse' | 'defer' | 'fail'; answering 500"),
        v,
    );
    Decision::Fail
}

fn context_js(s: &State) -> JsValue {
    let f = s.sub.follower();
    f.current().map_or(JsValue::NULL, |c| js::from_json_text(&context_json(c, f.shared_of(&c.anchor))))
}

/// A handler for an event this client did not subscribe to would never run: say so.
fn warn_unsubscribed(events: &[EventName], event: &str, name: &EventName) {
    if !events.contains(name) && name.kind() != EventKind::SyncError {
        js::warn(
            &format!("on({event:?}): this client did not subscribe to {name}, so the handler may never run"),
            &JsValue::UNDEFINED,
        );
    }
}

/// Handlers are found by the lower-cased canonical event name (req 34), or `*`.
fn handler_key(event: &str) -> String {
    if event.trim() == "*" {
        return "*".into();
    }
    EventName::parse(event).map_or_else(|_| event.trim().to_ascii_lowercase(), |n| n.as_str().to_ascii_lowercase())
}

impl Session {
    pub(crate) fn new(o: Options) -> Rc<Session> {
        let config = SubscriberConfig {
            topic: o.topic.clone(),
            events: o.events.clone(),
            subscriber_name: o.subscriber_name,
            lease_seconds: o.lease_seconds,
            follower: FollowerConfig::default(),
            policy: SubscriberPolicy::default(),
        };
        let seed = (js::random() * 9_007_199_254_740_992.0) as u64;
        let sub = Subscriber::new(config, &js::uuid(), seed);
        for (n, _) in &o.handlers {
            if let Ok(name) = EventName::parse(n) {
                warn_unsubscribed(&o.events, n, &name);
            }
        }
        let handlers = o.handlers.into_iter().map(|(n, f)| (handler_key(&n), f)).collect();
        Rc::new(Session {
            hub_url: o.hub_url,
            topic: o.topic,
            events: o.events,
            token: o.token,
            callbacks: RefCell::new(Callbacks { handlers, listeners: o.listeners }),
            state: RefCell::new(State {
                sub,
                socket: None,
                core_timer: None,
                pumping: false,
                publishes: Vec::new(),
                waiter: None,
                closing: None,
                waiting: Vec::new(),
                next_wait: 0,
                keep_alive: None,
            }),
        })
    }

    /// Starts the first connection; the promise resolves with the exported client at the first
    /// confirmation (req 43), or rejects at the first failure.
    pub(crate) fn start(self: &Rc<Self>) -> Promise {
        let (promise, resolve, reject) = deferred();
        {
            let mut st = self.state.borrow_mut();
            st.waiter = Some((resolve, reject));
            st.keep_alive = Some(self.clone());
            st.sub.start(now());
        }
        self.pump();
        promise
    }

    fn weak(self: &Rc<Self>) -> Weak<Session> {
        Rc::downgrade(self)
    }

    // ---- the app's side -------------------------------------------------------------------

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn set_handler(&self, event: &str, handler: Function) -> Result<(), SdkError> {
        let key = handler_key(event);
        if key != "*" {
            let name =
                EventName::parse(event).map_err(|e| SdkError::Argument(format!("on({event:?}, handler): {e}")))?;
            warn_unsubscribed(&self.events, event, &name);
        }
        let mut cb = self.callbacks.borrow_mut();
        cb.handlers.retain(|(k, _)| *k != key);
        cb.handlers.push((key, handler));
        Ok(())
    }

    pub(crate) fn remove_handler(&self, event: &str, handler: &Function) {
        let key = handler_key(event);
        self.callbacks.borrow_mut().handlers.retain(|(k, f)| !(*k == key && f == handler));
    }

    pub(crate) fn add_listener(&self, kind: Listener, f: Function) {
        self.callbacks.borrow_mut().listeners.push((kind, f));
    }

    pub(crate) fn remove_listener(&self, kind: Listener, f: &Function) {
        self.callbacks.borrow_mut().listeners.retain(|(k, g)| !(*k == kind && g == f));
    }

    pub(crate) fn status_js(&self) -> JsValue {
        js::from_json_text(&status_json(self.state.borrow().sub.follower().status()))
    }

    /// The anchor of what the app shows, if any.
    pub(crate) fn current_anchor(&self) -> Option<fhircast_core::ResourceKey> {
        self.state.borrow().sub.follower().current().map(|c| c.anchor.clone())
    }

    pub(crate) fn current_js(&self) -> JsValue {
        context_js(&self.state.borrow())
    }

    /// The app decides about an event it deferred (or re-decides one still pending).
    pub(crate) fn decide_later(self: &Rc<Self>, event_id: &str, outcome: &JsValue) -> Result<(), SdkError> {
        let d = outcome.as_string().as_deref().and_then(parse_outcome).ok_or_else(|| {
            SdkError::Argument("decide(eventId, outcome): outcome must be 'accept', 'refuse', 'defer' or 'fail'".into())
        })?;
        self.decide(event_id, d);
        self.pump();
        Ok(())
    }

    /// Sends an own event (req 76); the promise resolves with its id once the hub accepted it
    /// and its echo arrived (req 80).
    pub(crate) fn publish(self: &Rc<Self>, name: EventName, context: Vec<ContextEntry>) -> Result<Promise, SdkError> {
        let id = js::uuid();
        let (promise, resolve, reject) = deferred();
        let event = {
            let mut st = self.state.borrow_mut();
            if st.sub.is_closed() {
                return Err(SdkError::ClientClosed);
            }
            let event = st
                .sub
                .follower_mut()
                .prepare(name, context, &id, now())
                .map_err(|e| SdkError::Argument(e.to_string()))?;
            st.publishes.push(Publish { id, resolve, reject });
            event
        };
        self.post_event(event);
        Ok(promise)
    }

    // ---- the pump -------------------------------------------------------------------------

    /// Runs every action the subscriber has, then re-arms the one core timer.
    fn pump(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            if st.pumping {
                return;
            }
            st.pumping = true;
        }
        loop {
            let action = self.state.borrow_mut().sub.poll_action(now());
            match action {
                Some(a) => self.perform(a),
                None => break,
            }
        }
        self.state.borrow_mut().pumping = false;
        self.arm_core_timer();
    }

    fn arm_core_timer(self: &Rc<Self>) {
        let mut st = self.state.borrow_mut();
        match st.sub.poll_timeout() {
            None => st.core_timer = None,
            Some(at) if st.core_timer.as_ref().is_some_and(|(t, _)| *t == at) => {}
            Some(at) => {
                let w = self.weak();
                let delay = at.since(now()).as_millis() as f64 + 1.0;
                st.core_timer = Some((
                    at,
                    Timer::after(delay, move || {
                        if let Some(s) = w.upgrade() {
                            s.on_core_timer();
                        }
                    }),
                ));
            }
        }
    }

    fn on_core_timer(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            st.core_timer = None;
            st.sub.handle_timeout(now());
        }
        self.pump();
    }

    fn dispatch(self: &Rc<Self>, out: Output) {
        match out {
            Output::Send(text) => {
                if let Some((_, s)) = &self.state.borrow().socket {
                    s.send(&text);
                }
            }
            Output::Deliver(event) => self.deliver(event),
            Output::SyncError(n) => self.emit(Listener::SyncError, &js::from_json_text(&sync_error_json(&n))),
            Output::Status(s) => self.emit(Listener::Status, &js::from_json_text(&status_json(&s))),
            Output::ContextChanged(_) => {
                let v = context_js(&self.state.borrow());
                self.emit(Listener::Context, &v);
            }
            Output::Post(event) => self.post_event(event),
            Output::FetchCurrentContext => self.fetch_snapshot(),
            // Handled by the subscriber (a denial: reconnect); never reaches the shell.
            Output::Resubscribe { .. } => {}
            Output::Published { id } => self.settle_publish(&id, Ok(())),
            Output::PublishFailed { id, status, message } => {
                let e = if status == 0 {
                    SdkError::Network { what: "publish", url: self.hub_url.clone(), message }
                } else {
                    SdkError::Http { what: "publish", url: self.hub_url.clone(), status, message }
                };
                self.settle_publish(&id, Err(e));
            }
        }
    }

    /// Calls every listener of `kind` with `value`; a listener that throws is reported, not
    /// propagated.
    fn emit(&self, kind: Listener, value: &JsValue) {
        let fs: Vec<Function> =
            self.callbacks.borrow().listeners.iter().filter(|(k, _)| *k == kind).map(|(_, f)| f.clone()).collect();
        for f in fs {
            if let Err(e) = f.call1(&JsValue::UNDEFINED, value) {
                js::warn("a listener threw", &e);
            }
        }
    }

    /// Hands a notification to its handler; the handler's result is the decision (req 71).
    fn deliver(self: &Rc<Self>, event: Event) {
        let key = event.name.as_str().to_ascii_lowercase();
        let handler = {
            let cb = self.callbacks.borrow();
            let find = |k: &str| cb.handlers.iter().find(|(n, _)| n == k).map(|(_, f)| f.clone());
            find(&key).or_else(|| find("*"))
        };
        let Some(handler) = handler else {
            // No handler: nothing in the app objects.
            self.decide(&event.id, Decision::Accept);
            return;
        };
        let name = event.name.to_string();
        let arg = js::from_json_text(&event.to_json());
        match handler.call1(&JsValue::UNDEFINED, &arg) {
            Err(e) => {
                js::warn(&format!("the {name} handler threw; answering 500"), &e);
                self.decide(&event.id, Decision::Fail);
            }
            // The core answers 202 in time and refuses after 10 s if this never settles
            // (req 75); when it settles, that is the decision.
            Ok(v) if js::is_thenable(&v) => {
                self.wait(&Promise::resolve(&v), Step::Decision { event_id: event.id, name });
            }
            Ok(v) => self.decide(&event.id, decision_of(&v, &name)),
        }
    }

    /// Passes a decision to the follower; tells `onContextChange` if what the app should
    /// show changed.
    fn decide(&self, id: &str, d: Decision) {
        let changed = {
            let mut st = self.state.borrow_mut();
            if st.sub.is_closed() {
                return;
            }
            let before = st.sub.follower().current().cloned();
            st.sub.follower_mut().decide(id, d, now());
            (st.sub.follower().current() != before.as_ref()).then(|| context_js(&st))
        };
        if let Some(v) = changed {
            self.emit(Listener::Context, &v);
        }
    }

    fn settle_publish(&self, id: &str, result: Result<(), SdkError>) {
        let p = {
            let mut st = self.state.borrow_mut();
            let Some(i) = st.publishes.iter().position(|p| p.id == id) else { return };
            st.publishes.remove(i)
        };
        let _ = match result {
            Ok(()) => p.resolve.call1(&JsValue::UNDEFINED, &JsValue::from_str(id)),
            Err(e) => p.reject.call1(&JsValue::UNDEFINED, &e.into_js()),
        };
    }
}
