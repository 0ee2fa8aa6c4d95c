//! The subscriber's whole lifecycle, sans-IO: subscribing, the socket, renewing the lease at
//! 80 %, reconnecting with backoff after a lost connection or a denial (req 48, 57), closing
//! (req 49-50), around the [`Follower`] that decides everything about notifications.
//!
//! The browser SDK runs it (`sdk/src/session`), and so does the simulator
//! (`core/tests/simulator.rs`): both get the same policy and numbers. A shell only performs
//! the [`Action`]s (an HTTP POST, a WebSocket, a timer at [`Subscriber::poll_timeout`]) and
//! reports their results; socket events and HTTP answers are tagged with the number the
//! action carried, so answers to abandoned attempts are ignored here, not in the shell.
//!
//! The shell's own errors (network failures, token providers, HTTP statuses) are its type `E`,
//! handed back in [`StartFailure::Shell`] when the first connection fails.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::catalog::EventName;
use crate::follower::{Follower, FollowerConfig, Output, SyncStatus};
use crate::subscription::{Mode, SubscriptionRequest};
use crate::time::Timestamp;
use crate::wire::Confirmation;

/// The lifecycle's numbers; the defaults are what the SDK runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriberPolicy {
    /// First reconnect delay, before jitter.
    pub backoff_base: Duration,
    /// Longest reconnect delay.
    pub backoff_cap: Duration,
    /// The lease is renewed after this fraction of it (req 57: before it ends).
    pub renew_at: f64,
    /// After a renewal the Hub did not answer (network, 5xx), try again this much later.
    pub renew_retry: Duration,
}

impl Default for SubscriberPolicy {
    fn default() -> Self {
        SubscriberPolicy {
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            renew_at: 0.8,
            renew_retry: Duration::from_secs(5),
        }
    }
}

impl SubscriberPolicy {
    /// The delay before reconnect attempt `attempt` (1, 2, ...): exponential from
    /// `backoff_base`, capped at `backoff_cap`, with "equal jitter" (between half and all of
    /// it) so that the apps of a restarted Hub do not all come back in the same millisecond.
    /// `random` is in `[0, 1)`.
    pub fn reconnect_delay(&self, attempt: u32, random: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(16) as i32;
        let full = (self.backoff_base.as_millis() as f64 * 2f64.powi(exp)).min(self.backoff_cap.as_millis() as f64);
        millis(full / 2.0 + full / 2.0 * random.clamp(0.0, 1.0))
    }

    /// When to renew a lease of `lease_seconds`, after it was confirmed.
    pub fn renew_after(&self, lease_seconds: u64) -> Duration {
        millis(lease_seconds as f64 * 1000.0 * self.renew_at.clamp(0.1, 0.95))
    }
}

/// Whole milliseconds (the values above are finite and non-negative): `Duration::from_secs_f64`
/// would link its panic messages into the browser SDK.
fn millis(ms: f64) -> Duration {
    Duration::from_millis(ms as u64)
}

/// What one subscription is: the topic, the events and the subscriber's name.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriberConfig {
    /// `hub.topic`.
    pub topic: String,
    /// `hub.events`.
    pub events: Vec<EventName>,
    /// `subscriber.name`.
    pub subscriber_name: Option<String>,
    /// `hub.lease_seconds` asked for, if any.
    pub lease_seconds: Option<u64>,
    /// The follower's settings.
    pub follower: FollowerConfig,
    /// The lifecycle's numbers.
    pub policy: SubscriberPolicy,
}

/// Why the first connection failed (then the subscriber is closed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFailure<E> {
    /// The shell's error (network, HTTP status, token).
    Shell(E),
    /// The Hub denied the subscription (req 46-47).
    Denied(String),
    /// The WebSocket closed before the Hub confirmed the subscription.
    ClosedEarly {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// `close()` was called first.
    Closed,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action<E> {
    /// POST this subscription form to the Hub; answer with [`Subscriber::handle_subscribed`]
    /// and this `request`.
    Subscribe {
        /// The form (`application/x-www-form-urlencoded`).
        form: String,
        /// Tags the answer.
        request: u64,
    },
    /// POST this form to renew the lease on the same endpoint (req 35, 57); answer with
    /// [`Subscriber::handle_renewed`].
    Renew {
        /// The form.
        form: String,
        /// Tags the answer.
        request: u64,
    },
    /// Open a WebSocket to `endpoint`; report its messages and its close with `socket`.
    OpenSocket {
        /// The `hub.channel.endpoint`.
        endpoint: String,
        /// Tags the socket's events.
        socket: u64,
    },
    /// Drop the current socket (it is abandoned: no close handshake is owed).
    DropSocket,
    /// POST this unsubscribe form (req 49-50); answer with [`Subscriber::handle_unsubscribed`].
    Unsubscribe {
        /// The form.
        form: String,
    },
    /// Close the socket with 1000 (after unsubscribing).
    CloseSocket,
    /// What the follower asks for (acks, deliveries, posts, snapshots, status, …).
    Follower(Output),
    /// The Hub confirmed the first subscription and the follower is past
    /// [`SyncStatus::Connecting`]: the current context is known (the snapshot applied, the
    /// replayed change delivered and decided or under decision) or the connection was lost
    /// again. `connect()` resolves here, so an app that reads `currentContext()` next sees
    /// what it shows, and its handlers have already run for the replay.
    Started,
    /// The first connection failed: the subscriber is closed.
    StartFailed(StartFailure<E>),
    /// `close()` has finished.
    Closed {
        /// The unsubscribe's problem, if it failed (the app closed anyway).
        problem: Option<E>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The first connection is under way: a failure ends the subscriber.
    Starting,
    /// Confirmed once: a lost connection is re-established.
    Live,
    /// Closing (unsubscribe under way) or closed.
    Closed,
}

/// One subscription's lifecycle around its [`Follower`].
#[derive(Debug)]
pub struct Subscriber<E> {
    config: SubscriberConfig,
    follower: Follower,
    phase: Phase,
    /// The socket being used (its tag) and its endpoint, if any.
    socket: Option<(u64, String)>,
    /// The socket's confirmation has arrived.
    confirmed: bool,
    /// The first confirmation arrived and [`Action::Started`] waits for the current context.
    starting_context: bool,
    next_tag: u64,
    /// The subscribe POST under way (its tag), if any.
    subscribing: Option<u64>,
    /// The renewal POST under way (its tag), if any.
    renewing: Option<u64>,
    /// Reconnect attempts since the last confirmation.
    attempt: u32,
    renew_at: Option<Timestamp>,
    reconnect_at: Option<Timestamp>,
    /// xorshift state for the backoff's jitter (seeded by the shell).
    rng: u64,
    actions: VecDeque<Action<E>>,
}

impl<E: Clone + fmt::Display> Subscriber<E> {
    /// A subscriber; `instance` is a random string (SyncError ids, see
    /// [`Follower::with_instance_id`]), `seed` a random number (the backoff's jitter).
    pub fn new(config: SubscriberConfig, instance: &str, seed: u64) -> Self {
        let follower = Follower::new(&config.topic, config.subscriber_name.clone(), config.follower.clone())
            .with_instance_id(instance);
        Subscriber {
            config,
            follower,
            phase: Phase::Starting,
            socket: None,
            confirmed: false,
            starting_context: false,
            next_tag: 0,
            subscribing: None,
            renewing: None,
            attempt: 0,
            renew_at: None,
            reconnect_at: None,
            rng: seed | 1,
            actions: VecDeque::new(),
        }
    }

    /// The follower (status, current context, versions).
    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    /// The follower, for the app's inputs (decisions, own events, snapshots, post results).
    pub fn follower_mut(&mut self) -> &mut Follower {
        &mut self.follower
    }

    /// The configuration.
    pub fn config(&self) -> &SubscriberConfig {
        &self.config
    }

    /// Whether `close()` was called or the first connection failed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether a socket is open and confirmed (an accepted own event's echo can arrive).
    pub fn is_connected(&self) -> bool {
        self.socket.is_some() && self.confirmed
    }

    /// The next thing to do: the subscriber's own actions first, then the follower's outputs.
    /// A denial the follower reports ([`Output::Resubscribe`]) is handled here (reconnect).
    pub fn poll_action(&mut self, now: Timestamp) -> Option<Action<E>> {
        loop {
            if let Some(a) = self.actions.pop_front() {
                return Some(a);
            }
            match self.follower.poll_output() {
                Some(Output::Resubscribe { reason }) => self.ended_by_hub(reason, now),
                Some(o) => return Some(Action::Follower(o)),
                // Started once every output before it is out (the replay delivered, the
                // context changed) and the follower knows where it stands.
                None if self.starting_context
                    && self.phase == Phase::Live
                    && !matches!(self.follower.status(), SyncStatus::Connecting) =>
                {
                    self.starting_context = false;
                    return Some(Action::Started);
                }
                None => return None,
            }
        }
    }

    /// When [`Subscriber::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        [self.follower.poll_timeout(), self.renew_at, self.reconnect_at].into_iter().flatten().min()
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    fn form(&self, mode: Mode, endpoint: Option<String>) -> String {
        let subscribe = mode == Mode::Subscribe;
        SubscriptionRequest {
            mode,
            topic: self.config.topic.clone(),
            events: if subscribe { self.config.events.clone() } else { Vec::new() },
            lease_seconds: if subscribe { self.config.lease_seconds } else { None },
            endpoint,
            subscriber_name: if subscribe { self.config.subscriber_name.clone() } else { None },
        }
        .to_form()
    }

    /// Starts the first connection (`connect()`).
    pub fn start(&mut self, now: Timestamp) {
        self.connect(now);
    }

    /// Subscribes afresh (a new endpoint): the first connection and every reconnection.
    fn connect(&mut self, now: Timestamp) {
        self.reconnect_at = None;
        if self.phase == Phase::Closed {
            return;
        }
        self.follower.handle_connecting(now);
        let request = self.tag();
        self.subscribing = Some(request);
        let form = self.form(Mode::Subscribe, None);
        self.actions.push_back(Action::Subscribe { form, request });
    }

    /// The Hub's answer to a subscribe POST: the endpoint (req 40), or the shell's error.
    pub fn handle_subscribed(&mut self, request: u64, result: Result<String, E>, now: Timestamp) {
        if self.subscribing != Some(request) || self.phase == Phase::Closed {
            return;
        }
        self.subscribing = None;
        match result {
            Ok(endpoint) => {
                let socket = self.tag();
                self.socket = Some((socket, endpoint.clone()));
                self.confirmed = false;
                self.actions.push_back(Action::OpenSocket { endpoint, socket });
            }
            Err(e) => self.connection_failed(e, now),
        }
    }

    /// The socket could not even be opened.
    pub fn handle_socket_failed(&mut self, socket: u64, error: E, now: Timestamp) {
        if self.socket.as_ref().map(|s| s.0) != Some(socket) {
            return;
        }
        self.socket = None;
        self.connection_failed(error, now);
    }

    /// A text message on socket `socket`.
    pub fn handle_socket_text(&mut self, socket: u64, text: &str, now: Timestamp) -> Result<(), String> {
        if self.socket.as_ref().map(|s| s.0) != Some(socket) || self.phase == Phase::Closed {
            return Ok(());
        }
        let lease = Confirmation::parse(text).ok().filter(|c| c.mode == "subscribe").map(|c| c.lease_seconds);
        let result = self.follower.handle_text(text, now);
        if let Some(lease) = lease {
            self.confirmed = true;
            self.attempt = 0;
            self.renew_at = Some(now.add(self.config.policy.renew_after(lease)));
            if self.phase == Phase::Starting {
                self.phase = Phase::Live;
                self.starting_context = true;
            }
        }
        result
    }

    /// Socket `socket` closed (or failed) with `code`.
    pub fn handle_socket_closed(&mut self, socket: u64, code: u16, reason: &str, now: Timestamp) {
        if self.socket.as_ref().map(|s| s.0) != Some(socket) {
            return;
        }
        match self.phase {
            Phase::Closed => {}
            Phase::Starting => {
                self.socket = None;
                self.fail_start(StartFailure::ClosedEarly { code, reason: reason.to_owned() });
            }
            Phase::Live => {
                let mut why = format!("the connection to the hub was lost (WebSocket closed with code {code}");
                if !reason.is_empty() {
                    why.push_str(": ");
                    why.push_str(reason);
                }
                why.push(')');
                self.abandon_socket(&why, now);
            }
        }
    }

    /// The Hub denied or ended the subscription (req 46-48): subscribe again from scratch.
    fn ended_by_hub(&mut self, reason: String, now: Timestamp) {
        if self.phase == Phase::Starting {
            self.socket = None;
            self.actions.push_back(Action::DropSocket);
            self.fail_start(StartFailure::Denied(reason));
        } else {
            self.abandon_socket(&format!("the hub ended the subscription: {reason}"), now);
        }
    }

    /// Drops the current socket, tells the follower, and reconnects after a backoff.
    fn abandon_socket(&mut self, why: &str, now: Timestamp) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.socket.take().is_some() {
            self.actions.push_back(Action::DropSocket);
        }
        self.confirmed = false;
        self.renew_at = None;
        self.renewing = None;
        self.follower.handle_disconnected(why, now);
        self.schedule_reconnect(now);
    }

    fn connection_failed(&mut self, error: E, now: Timestamp) {
        if self.phase == Phase::Closed {
            // Closing: the unsubscribe's answer ends it; nothing to reconnect.
            return;
        }
        if self.phase == Phase::Starting {
            self.fail_start(StartFailure::Shell(error));
            return;
        }
        self.follower.handle_disconnected(&error.to_string(), now);
        self.schedule_reconnect(now);
    }

    fn fail_start(&mut self, failure: StartFailure<E>) {
        self.phase = Phase::Closed;
        self.renew_at = None;
        self.reconnect_at = None;
        self.subscribing = None;
        self.actions.push_back(Action::StartFailed(failure));
    }

    fn schedule_reconnect(&mut self, now: Timestamp) {
        self.attempt += 1;
        let random = self.random();
        let delay = self.config.policy.reconnect_delay(self.attempt, random);
        self.reconnect_at = Some(now.add(delay));
    }

    /// A number in `[0, 1)` (xorshift64*).
    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64) / ((1u64 << 53) as f64)
    }

    /// The Hub's answer to a renewal: accepted (its confirmation on the socket arms the next
    /// renewal), refused (the subscription is gone: start afresh, req 48), or no answer (try
    /// again shortly; the socket tells if it is lost).
    pub fn handle_renewed(&mut self, request: u64, result: Result<(), (u16, E)>, now: Timestamp) {
        if self.renewing != Some(request) {
            return;
        }
        self.renewing = None;
        match result {
            Ok(()) => {}
            Err((status, e)) if (400..500).contains(&status) => {
                self.abandon_socket(&format!("the hub refused to renew the subscription ({status}: {e})"), now);
            }
            Err(_) => self.renew_at = Some(now.add(self.config.policy.renew_retry)),
        }
    }

    /// Runs what is due: the follower's deadlines, a renewal, a reconnection.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.follower.handle_timeout(now);
        if self.renew_at.is_some_and(|t| t <= now) {
            self.renew_at = None;
            if self.phase == Phase::Live && self.confirmed {
                if let Some((_, endpoint)) = self.socket.clone() {
                    let request = self.tag();
                    self.renewing = Some(request);
                    let form = self.form(Mode::Subscribe, Some(endpoint));
                    self.actions.push_back(Action::Renew { form, request });
                }
            }
        }
        if self.reconnect_at.is_some_and(|t| t <= now) {
            self.connect(now);
        }
    }

    /// `close()`: unsubscribes (req 49-50) if connected, then closes the socket with 1000.
    /// Ends with [`Action::Closed`].
    pub fn close(&mut self, now: Timestamp) {
        if self.phase == Phase::Closed {
            return;
        }
        let was_starting = self.phase == Phase::Starting;
        self.phase = Phase::Closed;
        self.renew_at = None;
        self.reconnect_at = None;
        self.subscribing = None;
        self.renewing = None;
        if was_starting {
            self.actions.push_back(Action::StartFailed(StartFailure::Closed));
        }
        match self.socket.as_ref().map(|s| s.1.clone()) {
            Some(endpoint) => {
                let form = self.form(Mode::Unsubscribe, Some(endpoint));
                self.actions.push_back(Action::Unsubscribe { form });
            }
            None => self.handle_unsubscribed(Ok(()), now),
        }
    }

    /// The answer to the unsubscribe POST (or none was needed).
    pub fn handle_unsubscribed(&mut self, result: Result<(), E>, now: Timestamp) {
        if self.socket.take().is_some() {
            self.actions.push_back(Action::CloseSocket);
        }
        self.confirmed = false;
        self.follower.handle_disconnected("closed by the app", now);
        self.actions.push_back(Action::Closed { problem: result.err() });
    }
}

#[cfg(test)]
mod tests;
