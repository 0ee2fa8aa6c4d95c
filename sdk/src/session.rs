//! One subscription's I/O around a [`Follower`]: the shell's engine.
//!
//! The follower decides everything; a [`Session`] only turns its outputs into I/O and the
//! results back into inputs. After every input it pumps [`Follower::poll_output`] and keeps
//! exactly one `setTimeout` armed at [`Follower::poll_timeout`].
//!
//! Re-entrancy: app callbacks run with no `RefCell` borrow held, so a handler may call any
//! client method (publish, decide, close). A pump started inside another pump returns at once;
//! the outer loop picks up what the inner call queued.
//!
//! Lifetimes: callbacks registered with the browser (socket, timers) hold a `Weak` reference;
//! the exported client holds the only lasting `Rc`. When the app drops the client, the
//! session drops its socket (closing it) and its timers.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use fhircast_core::catalog::EventName;
use fhircast_core::follower::{Decision, Follower, FollowerConfig, Output, SyncStatus};
use fhircast_core::subscription::{Mode, SubscriptionRequest};
use fhircast_core::wire::{Confirmation, ContextEntry, CurrentContext, SubscribeResponse};
use fhircast_core::{Event, Timestamp};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::error::{hub_message, SdkError};
use crate::http::{self, FORM, JSON};
use crate::js::{self, now};
use crate::options::{Listener, Options};
use crate::policy::{context_url, reconnect_delay_ms, renew_after_ms};
use crate::shapes::{parse_outcome, ContextView, StatusView, SyncErrorView};
use crate::socket::{Socket, NORMAL_CLOSURE};
use crate::timer::Timer;
use crate::token::Token;

/// Where the session is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `connect()` has not resolved yet: a failure rejects it instead of reconnecting.
    Starting,
    /// Confirmed once; from now on a lost connection is re-established.
    Live,
    /// `close()` was called, or the first connection failed.
    Closed,
}

/// A `publish()` waiting for the hub's answer and the echo.
struct Publish {
    id: String,
    accepted: bool,
    resolve: Function,
    reject: Function,
}

struct State {
    follower: Follower,
    phase: Phase,
    socket: Option<Socket>,
    endpoint: Option<String>,
    /// Bumped whenever a socket is abandoned: callbacks of older sockets are ignored.
    generation: u64,
    core_timer: Option<(Timestamp, Timer)>,
    renew_timer: Option<Timer>,
    retry_timer: Option<Timer>,
    /// Reconnect attempts since the last confirmation.
    attempt: u32,
    pumping: bool,
    publishes: Vec<Publish>,
    /// `connect()`'s resolve and reject, until the first confirmation.
    waiter: Option<(Function, Function)>,
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
    subscriber_name: Option<String>,
    lease_seconds: Option<u64>,
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
    s.follower.current().map_or(JsValue::NULL, |c| js::to_js(&ContextView::new(c)))
}

impl Session {
    pub(crate) fn new(o: Options) -> Rc<Session> {
        let follower = Follower::new(&o.topic, o.subscriber_name.clone(), FollowerConfig::default());
        let handlers = o.handlers.into_iter().map(|(n, f)| (handler_key(&n), f)).collect();
        Rc::new(Session {
            hub_url: o.hub_url,
            topic: o.topic,
            events: o.events,
            subscriber_name: o.subscriber_name,
            lease_seconds: o.lease_seconds,
            token: o.token,
            callbacks: RefCell::new(Callbacks { handlers, listeners: o.listeners }),
            state: RefCell::new(State {
                follower,
                phase: Phase::Starting,
                socket: None,
                endpoint: None,
                generation: 0,
                core_timer: None,
                renew_timer: None,
                retry_timer: None,
                attempt: 0,
                pumping: false,
                publishes: Vec::new(),
                waiter: None,
            }),
        })
    }

    /// Starts the first connection; the promise settles with the first confirmation (req 43)
    /// or the first failure.
    pub(crate) fn start(self: &Rc<Self>) -> Promise {
        let (promise, resolve, reject) = deferred();
        self.state.borrow_mut().waiter = Some((resolve, reject));
        self.connect_once();
        promise
    }

    fn weak(self: &Rc<Self>) -> Weak<Session> {
        Rc::downgrade(self)
    }

    fn closed(&self) -> bool {
        self.state.borrow().phase == Phase::Closed
    }

    // ---- the app's side -------------------------------------------------------------------

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn set_handler(&self, event: &str, handler: Option<Function>) -> Result<(), SdkError> {
        let key = handler_key(event);
        if key != "*" {
            let name = EventName::parse(event).map_err(|e| SdkError::Argument(format!("on(): {e}")))?;
            if handler.is_some() && !self.events.contains(&name) && name.kind() != fhircast_core::EventKind::SyncError {
                js::warn(
                    &format!("on({event:?}): this client did not subscribe to {name}, so the handler may never run"),
                    &JsValue::UNDEFINED,
                );
            }
        }
        let mut cb = self.callbacks.borrow_mut();
        cb.handlers.retain(|(k, _)| *k != key);
        if let Some(h) = handler {
            cb.handlers.push((key, h));
        }
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
        js::to_js(&StatusView::new(self.state.borrow().follower.status()))
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
            if st.phase == Phase::Closed {
                return Err(SdkError::ClientClosed);
            }
            let event =
                st.follower.prepare(name, context, &id, now()).map_err(|e| SdkError::Argument(e.to_string()))?;
            st.publishes.push(Publish { id, accepted: false, resolve, reject });
            event
        };
        self.post_event(event);
        Ok(promise)
    }

    /// Unsubscribes (req 49-50), closes the socket with 1000 and stops every timer.
    pub(crate) async fn close(self: Rc<Self>) {
        let (endpoint, waiter) = {
            let mut st = self.state.borrow_mut();
            if st.phase == Phase::Closed {
                return;
            }
            st.phase = Phase::Closed;
            st.core_timer = None;
            st.renew_timer = None;
            st.retry_timer = None;
            (st.socket.as_ref().and(st.endpoint.clone()), st.waiter.take())
        };
        if let Some((_, reject)) = waiter {
            let _ = reject.call1(&JsValue::UNDEFINED, &SdkError::ClientClosed.into_js());
        }
        if let Some(endpoint) = endpoint {
            let req = SubscriptionRequest {
                mode: Mode::Unsubscribe,
                topic: self.topic.clone(),
                events: Vec::new(),
                lease_seconds: None,
                endpoint: Some(endpoint),
                subscriber_name: None,
            };
            let res = match self.token.get().await {
                Ok(t) => {
                    http::request("unsubscribe", "POST", &self.hub_url, Some((FORM, &req.to_form())), t.as_deref())
                        .await
                        .and_then(|r| {
                            if r.ok() {
                                Ok(())
                            } else {
                                Err(SdkError::Http {
                                    what: "unsubscribe",
                                    status: r.status,
                                    message: hub_message(&r.body),
                                })
                            }
                        })
                }
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                js::warn(&e.to_string(), &JsValue::UNDEFINED);
            }
        }
        let socket = {
            let mut st = self.state.borrow_mut();
            st.generation += 1;
            st.follower.handle_disconnected("closed by the app", now());
            st.socket.take()
        };
        if let Some(s) = socket {
            s.close(NORMAL_CLOSURE, "closed by the app");
        }
        let publishes = std::mem::take(&mut self.state.borrow_mut().publishes);
        for p in publishes {
            let _ = p.reject.call1(&JsValue::UNDEFINED, &SdkError::ClientClosed.into_js());
        }
        self.pump();
    }

    // ---- connecting -----------------------------------------------------------------------

    fn connect_once(self: &Rc<Self>) {
        let s = self.clone();
        spawn_local(async move {
            if s.closed() {
                return;
            }
            s.state.borrow_mut().follower.handle_connecting(now());
            s.pump();
            match s.subscribe(None).await {
                Ok(endpoint) => s.open_socket(endpoint),
                Err(e) => s.connection_failed(e),
            }
        });
    }

    /// POSTs the subscription form (req 24-32); with `endpoint`, a renewal of that
    /// subscription (req 35, 57). Returns the WebSocket endpoint (req 40).
    async fn subscribe(&self, endpoint: Option<String>) -> Result<String, SdkError> {
        let token = self.token.get().await?;
        let req = SubscriptionRequest {
            mode: Mode::Subscribe,
            topic: self.topic.clone(),
            events: self.events.clone(),
            lease_seconds: self.lease_seconds,
            endpoint,
            subscriber_name: self.subscriber_name.clone(),
        };
        let r =
            http::request("subscribe", "POST", &self.hub_url, Some((FORM, &req.to_form())), token.as_deref()).await?;
        if !r.ok() {
            return Err(SdkError::Http { what: "subscribe", status: r.status, message: hub_message(&r.body) });
        }
        let answer: SubscribeResponse = serde_json::from_str(&r.body).map_err(|_| SdkError::Http {
            what: "subscribe",
            status: r.status,
            message: "the answer has no hub.channel.endpoint (req 40)".into(),
        })?;
        Ok(answer.endpoint)
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
                message: e.as_string().unwrap_or_else(|| format!("{e:?}")),
            }),
        }
    }

    fn on_text(self: &Rc<Self>, generation: u64, text: &str) {
        let (confirmed, problem) = {
            let mut st = self.state.borrow_mut();
            if st.generation != generation || st.phase == Phase::Closed {
                return;
            }
            let confirmed = serde_json::from_str::<Confirmation>(text)
                .ok()
                .filter(|c| c.mode == "subscribe")
                .map(|c| c.lease_seconds);
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
    fn confirmed(self: &Rc<Self>, lease_seconds: u64) {
        let waiter = {
            let mut st = self.state.borrow_mut();
            st.attempt = 0;
            st.phase = Phase::Live;
            let (w, generation) = (self.weak(), st.generation);
            st.renew_timer = Some(Timer::after(renew_after_ms(lease_seconds), move || {
                if let Some(s) = w.upgrade() {
                    s.renew(generation);
                }
            }));
            st.waiter.take()
        };
        if let Some((resolve, _)) = waiter {
            let _ = resolve.call0(&JsValue::UNDEFINED);
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
        let s = self.clone();
        spawn_local(async move {
            match s.subscribe(endpoint).await {
                // The hub confirms on the socket; that confirmation arms the next renewal.
                Ok(_) => {}
                Err(SdkError::Http { status, message, .. }) if (400..500).contains(&status) => {
                    // The subscription is gone (expired, unknown endpoint): start afresh (req 48).
                    s.abandon_socket(
                        generation,
                        &format!("the hub refused to renew the subscription ({status}: {message})"),
                    );
                }
                Err(_) => {
                    // The hub is unreachable: try again shortly; the socket tells if it is lost.
                    let w = s.weak();
                    let mut st = s.state.borrow_mut();
                    if st.generation == generation {
                        st.renew_timer = Some(Timer::after(5_000.0, move || {
                            if let Some(s) = w.upgrade() {
                                s.renew(generation);
                            }
                        }));
                    }
                }
            }
        });
    }

    fn on_close(self: &Rc<Self>, generation: u64, code: u16, reason: &str) {
        {
            let st = self.state.borrow();
            if st.generation != generation || st.phase == Phase::Closed {
                return;
            }
        }
        let why = if reason.is_empty() {
            format!("the connection to the hub was lost (WebSocket closed with code {code})")
        } else {
            format!("the connection to the hub was lost (WebSocket closed with code {code}: {reason})")
        };
        if self.state.borrow().phase == Phase::Starting {
            self.fail_start(SdkError::ClosedEarly { code, reason: reason.to_owned() });
            return;
        }
        self.abandon_socket(generation, &why);
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
        if self.state.borrow().phase == Phase::Starting {
            self.fail_start(e);
            return;
        }
        self.state.borrow_mut().follower.handle_disconnected(&e.to_string(), now());
        self.pump();
        self.schedule_reconnect();
    }

    /// The first connection failed: `connect()` rejects and the session ends.
    fn fail_start(self: &Rc<Self>, e: SdkError) {
        let (waiter, socket) = {
            let mut st = self.state.borrow_mut();
            st.phase = Phase::Closed;
            st.generation += 1;
            st.core_timer = None;
            st.renew_timer = None;
            (st.waiter.take(), st.socket.take())
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

    /// Own events the hub accepted whose echo can no longer come (the socket is gone): the hub
    /// has them, so their `publish()` resolves.
    fn settle_accepted_publishes(&self) {
        let done: Vec<Publish> = {
            let mut st = self.state.borrow_mut();
            let (done, keep) = std::mem::take(&mut st.publishes).into_iter().partition(|p| p.accepted);
            st.publishes = keep;
            done
        };
        for p in done {
            let _ = p.resolve.call1(&JsValue::UNDEFINED, &JsValue::from_str(&p.id));
        }
    }

    // ---- the pump -------------------------------------------------------------------------

    /// Runs every output the follower has, then re-arms the one core timer.
    fn pump(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            if st.pumping {
                return;
            }
            st.pumping = true;
        }
        loop {
            let out = self.state.borrow_mut().follower.poll_output();
            match out {
                Some(o) => self.dispatch(o),
                None => break,
            }
        }
        self.state.borrow_mut().pumping = false;
        self.arm_core_timer();
    }

    fn arm_core_timer(self: &Rc<Self>) {
        let mut st = self.state.borrow_mut();
        if st.phase == Phase::Closed {
            st.core_timer = None;
            return;
        }
        match st.follower.poll_timeout() {
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
            st.follower.handle_timeout(now());
        }
        self.pump();
    }

    fn dispatch(self: &Rc<Self>, out: Output) {
        match out {
            Output::Send(text) => {
                if let Some(s) = &self.state.borrow().socket {
                    s.send(&text);
                }
            }
            Output::Deliver(event) => self.deliver(event),
            Output::SyncError(n) => self.emit(Listener::SyncError, &js::to_js(&SyncErrorView::new(&n))),
            Output::Status(s) => self.emit_status(&s),
            Output::ContextChanged(_) => {
                let v = context_js(&self.state.borrow());
                self.emit(Listener::Context, &v);
            }
            Output::Post(event) => self.post_event(event),
            Output::FetchCurrentContext => self.fetch_snapshot(),
            Output::Resubscribe { reason } => {
                let generation = self.state.borrow().generation;
                if self.state.borrow().phase == Phase::Starting {
                    self.fail_start(SdkError::Denied(reason));
                } else {
                    self.abandon_socket(generation, &format!("the hub ended the subscription: {reason}"));
                }
            }
            Output::Published { id } => self.settle_publish(&id, Ok(())),
            Output::PublishFailed { id, status, message } => {
                let e = if status == 0 {
                    SdkError::Network { what: "publish", message }
                } else {
                    SdkError::Http { what: "publish", status, message }
                };
                self.settle_publish(&id, Err(e));
            }
        }
    }

    fn emit_status(&self, s: &SyncStatus) {
        self.emit(Listener::Status, &js::to_js(&StatusView::new(s)));
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
            // No handler: nothing in the app objects (brief: accepted).
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
            Ok(v) if js::is_thenable(&v) => {
                // The core answers 202 in time and refuses after 10 s if this never settles
                // (req 75); when it settles, that is the decision.
                let (w, id) = (self.weak(), event.id);
                spawn_local(async move {
                    let d = match JsFuture::from(Promise::resolve(&v)).await {
                        Ok(v) => decision_of(&v, &name),
                        Err(e) => {
                            js::warn(&format!("the {name} handler's promise rejected; refusing"), &e);
                            Decision::Fail
                        }
                    };
                    if let Some(s) = w.upgrade() {
                        s.decide(&id, d);
                        s.pump();
                    }
                });
            }
            Ok(v) => self.decide(&event.id, decision_of(&v, &name)),
        }
    }

    /// Passes a decision to the follower; tells `onContextChange` if what the app should
    /// show changed.
    fn decide(&self, id: &str, d: Decision) {
        let changed = {
            let mut st = self.state.borrow_mut();
            if st.phase == Phase::Closed {
                return;
            }
            let before = st.follower.current().cloned();
            st.follower.decide(id, d, now());
            (st.follower.current() != before.as_ref()).then(|| context_js(&st))
        };
        if let Some(v) = changed {
            self.emit(Listener::Context, &v);
        }
    }

    /// POSTs an event (an own event, a resend, or a SyncError) and reports the answer.
    fn post_event(self: &Rc<Self>, event: Event) {
        let s = self.clone();
        spawn_local(async move {
            let result = async {
                let token = s.token.get().await?;
                http::request("publish", "POST", &s.hub_url, Some((JSON, &event.to_json())), token.as_deref()).await
            }
            .await;
            let result = match result {
                Ok(r) if r.ok() => Ok(()),
                Ok(r) => Err((r.status, hub_message(&r.body))),
                Err(e) => Err((0, e.to_string())),
            };
            let resolve_now = {
                let mut st = s.state.borrow_mut();
                let connected = st.socket.is_some();
                st.follower.handle_post_result(&event.id, result.clone(), now());
                match st.publishes.iter_mut().find(|p| p.id == event.id) {
                    Some(p) if result.is_ok() => {
                        p.accepted = true;
                        !connected
                    }
                    _ => false,
                }
            };
            if resolve_now {
                s.settle_publish(&event.id, Ok(()));
            }
            s.pump();
        });
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

    /// `GET {hub}/{topic}` (req 100-106) into the follower.
    fn fetch_snapshot(self: &Rc<Self>) {
        let s = self.clone();
        spawn_local(async move {
            let url = context_url(&s.hub_url, &s.topic);
            let reply = async {
                let token = s.token.get().await?;
                http::request("get current context", "GET", &url, None, token.as_deref()).await
            }
            .await;
            {
                let mut st = s.state.borrow_mut();
                let now = now();
                match reply {
                    Ok(r) if r.ok() => match serde_json::from_str::<CurrentContext>(&r.body) {
                        Ok(c) => st.follower.handle_snapshot(&c, now),
                        Err(e) => st.follower.handle_snapshot_failed(&format!("unreadable current context: {e}"), now),
                    },
                    Ok(r) => st.follower.handle_snapshot_failed(
                        &format!("the hub answered {}: {}", r.status, hub_message(&r.body)),
                        now,
                    ),
                    Err(e) => st.follower.handle_snapshot_failed(&e.to_string(), now),
                }
            }
            s.pump();
        });
    }
}

/// Handlers are found by the lower-cased canonical event name (req 34), or `*`.
fn handler_key(event: &str) -> String {
    if event.trim() == "*" {
        return "*".into();
    }
    EventName::parse(event).map_or_else(|_| event.trim().to_ascii_lowercase(), |n| n.as_str().to_ascii_lowercase())
}
