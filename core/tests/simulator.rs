//! A deterministic discrete-event simulator: one Hub [`Topic`] and 2-5 subscribers, each the
//! core's [`Subscriber`] (the lifecycle around a [`Follower`], as the browser SDK runs it) whose
//! actions a simulated shell performs, with a simulated app, over a simulated network, on a
//! virtual clock. Modelled on quinn-proto's `src/tests/util.rs` `Pair`: the state machines are driven
//! exactly as the real shells drive them (inputs with `now`, `poll_*` until empty, time jumps
//! to the earliest deadline), and everything random comes from one seeded PRNG, so a seed
//! replays bit for bit:
//!
//! ```text
//! SIM_SEED=<n> cargo test -p fhircast-core --test simulator -- --nocapture
//! ```
//!
//! (with the same `SIM_FEATURES` and `SIM_STEPS` as the run that found it; the failure prints
//! the exact line).
//!
//! # What is modelled
//!
//! - **WebSockets over TCP.** Each subscription has its own socket. Each direction is FIFO
//!   with a random per-message delay (delivery times are monotonic per direction). A socket
//!   can BREAK at any moment: every message in flight on it, both ways, is lost, and so is
//!   everything sent on it later; the Hub learns `handle_close(1006)` after its own random
//!   detection delay and the subscriber learns `handle_socket_closed(1006)` after another. A
//!   Hub `Close` travels down the socket behind the messages sent before it; an app closing
//!   its socket (1000) travels up behind its acks.
//! - **HTTP** (subscribe, renew, event POSTs, GET current context) travels independently of
//!   the sockets with its own random delays, so it reorders freely against WebSocket traffic.
//!   A request or its answer may be lost; the shell then sees a network error.
//! - **The shell** keeps no policy of its own: it makes a [`Subscriber`] as the SDK does
//!   (`SubscriberPolicy::default()`, `FollowerConfig::default()`, an instance id of its own,
//!   the backoff's jitter seeded from the scenario's PRNG), calls `start` when the app
//!   connects, runs `handle_timeout` at `poll_timeout`, and performs what `poll_action` asks:
//!   `Subscribe` and `Renew` POST the subscriber's form over HTTP (the Hub's shell reads it with
//!   `SubscriptionRequest::from_form`; the answer, `202` with the endpoint's URL or the Hub's
//!   status, goes back tagged to `handle_subscribed` / `handle_renewed`), `OpenSocket` opens a
//!   WebSocket (upgrade, `handle_connect` at the Hub) whose messages and close go to
//!   `handle_socket_text` / `handle_socket_closed` with the socket's tag, `DropSocket` and
//!   `CloseSocket` close it (1000) and stop listening to it, `Unsubscribe` POSTs (no app
//!   calls `close()`, so none happen). The follower's outputs go on as before: acks onto the
//!   socket, POSTs whose answers go to `handle_post_result`, and GETs: the snapshot is taken
//!   with `Topic::current_context` (unfiltered: open auth) when the request reaches the Hub
//!   and delivered later. Subscribing, renewing at 80 % of the lease (again after 5 s when the
//!   Hub did not answer, a new subscription when it answered 4xx), reconnecting with jittered
//!   backoff after a lost connection, and subscribing again after a denial
//!   ([`Output::Resubscribe`]) are all the subscriber's decisions.
//! - **Apps** (one policy each): accept everything at once; accept everything after a
//!   random delay without deferring (an async handler); dislike a few anchors and refuse
//!   the events about them (409); defer (202) then accept or refuse later; never decide (the
//!   follower's own timers answer 202, then refuse); or a zombie: a subscription whose
//!   messages are delivered but never answered (its shell runs a subscriber, which subscribes
//!   again when denied, but passes none of its follower's outputs on, and does not subscribe
//!   again in the quiet period). When an app's first connection fails (`StartFailed`:
//!   `connect()` rejects) it connects again 0.1-1 s later with a fresh subscriber. Apps
//!   publish random context changes through `Follower::prepare` and a POST whose answer goes
//!   to `handle_post_result`: `Patient-open/close` of 4 patients, `DiagnosticReport-open/
//!   update/close` of 3 reports (each with its patient and study as full resources, so the
//!   Hub derives opens, req 97), `Home-open`. Closes and updates are about what the app
//!   shows; the Hub refuses those about anchors that are not open (409).
//! - Subscribers' clocks are skewed by up to ±2 s; leases are sometimes short (30-150 s:
//!   renewed, they expire when a renewal is lost or late, and the Hub denies); the Hub uses its
//!   default configuration (10 s ack timeout). Now and
//!   then the Hub's Durable Object is evicted: what it changed since the last eviction is
//!   written to a `MemoryStore` as the Durable Object's rows, the topic is read back from the
//!   rows and must equal the live one (sockets survive, as with the hibernation API).
//!
//! Each seed draws 2-5 nodes (the first always accepts everything), their policies, skews and
//! leases, a break rate and an HTTP loss rate; 15 % of the seeds are "clean" (only accepting
//! apps, no breaks, no loss, no refusers or restarts). A scenario runs 150 steps of actions,
//! then the quiet period.
//!
//! ## World features (`SIM_FEATURES`)
//!
//! The base world above has every app follow every event. These widen it; each feature that
//! is enabled is switched on per seed with probability 1/2 (the scenario's first trace line
//! lists the active ones):
//!
//! - `subsets`: apps follow different events (always open+close pairs, plus `SyncError`):
//!   patient-only, study-only, patient+study, report apps (`DiagnosticReport-open/close/
//!   update` + patient + study) and full apps, each following `Home-open` and/or
//!   `UserLogout` or not. Apps publish what they follow.
//! - `multitab`: opens of studies too, closes of non-current open anchors, updates of
//!   non-current open reports.
//! - `logout`: apps publish `UserLogout`, `UserHibernate` and `Home-open`, also apps that do
//!   not follow them.
//! - `refusers`: 3-5 apps, two or three of which dislike the SAME anchors and refuse them in
//!   different ways: 409, 500, 202-then-refuse, never deciding; or a zombie.
//! - `restarts`: the Hub restarts (its sockets are lost; state through JSON and
//!   `Topic::restore`, then `handle_close(1006)` for each subscription whose socket is gone,
//!   as edge-hub does on load); an app that refused reloads (a fresh subscriber; the page's
//!   socket closes with 1000) or reconnects (the same subscriber: the app closes its socket
//!   with 1000, and the subscriber, told of the close, subscribes again after its backoff).
//! - `renewals`: half the apps ask for short leases (20-90 s), so their subscribers renew
//!   often (on the open socket, at 80 % of the lease); renewals may be lost, so some leases
//!   still expire.
//! - `skew`: clocks skewed by up to ±30 s.
//! - `bogus-clock`: one app's clock is hours or years off, or in the year 2200.
//! - `max-open`: `HubConfig::max_open_contexts` is 4-8 and there are 10 patients, so the Hub
//!   evicts open contexts.
//! - `content`: more updates, of current and non-current reports; refusing apps also refuse
//!   or fail some updates (the next update shows them a version gap).
//!
//! Two further switches turn on checks: `told` and `own` (below). `SIM_FEATURES` is a comma
//! list read left to right: `all`, `none`, `default`, a name (add) or `-name` (remove); unset,
//! it is `default` ([`DEFAULT_FEATURES`]: all of them).
//!
//! # The invariants (checked after every step)
//!
//! A step is one input to one state machine (a message delivered, a deadline, an app
//! decision, a scripted action), followed by pumping every output it causes.
//!
//! **Sync safety.** An app's *view* `V_F(s)` after step `s` is what the Hub holds for the
//! events F follows: `topic.view_for(F's events).map(|v| v.anchor)` ([`fhircast_core::view`]:
//! the current anchor if F follows its open, else the most specific anchor the current context
//! implies among those F follows, else nothing; nothing when the Hub has no current context).
//! For every follower `F` whose `status()` is [`SyncStatus::InSync`] after step `n`:
//! - if one of `F`'s sockets is broken and `F` has not yet been told (its subscriber's
//!   `handle_socket_closed`), nothing is required (F cannot know);
//! - if the last snapshot F received was taken at step `s_snap` and a WebSocket message the
//!   Hub produced before `s_snap` is still in flight to F, nothing is required either: F is
//!   applying older news over a newer snapshot, and nothing tells it so (a GET answer carries
//!   no ordering against WebSocket messages). Once those messages are delivered, F is back on
//!   the snapshot's state or later (the socket is FIFO), and the rule below applies again;
//! - otherwise let `s0` be the step at which the Hub produced the oldest message still in
//!   flight to `F`: a WebSocket message on F's current socket, or the answer to a GET (its
//!   snapshot is taken at that step). If nothing is in flight, `s0 = n + 1`. Then the anchor F
//!   shows (`current().map(|c| c.anchor)`) must be one F's view had at some point from just
//!   before `s0` to now: `F.anchor ∈ { V_F(s) : s0 - 1 <= s <= n } ∪ R`, where `R` is empty
//!   unless the replay the Hub sent F on connecting (req 44) is still partly in flight; then
//!   `R` holds the anchors of that replay. (The replay carries the latest open of *every*
//!   anchor type F follows, not only the current one, and a follower cannot tell it from live
//!   news, so it passes through those anchors; once the replay is delivered, `R` is empty.)
//!
//! **Content** (issue 15). An in-sync follower that shows its view, with nothing in flight to it
//! and no undetected break, and that keeps content for the anchor it shows
//! (`Follower::shared_of`), keeps exactly the Hub's content of that anchor: its Bundles (a
//! snapshot's collection, then the updates it followed), applied in order with the core's own
//! `Content::apply`, equal `content_of` in the Hub's state. Counted as `content_checks`
//! (checks of non-empty content), which must not be zero over a thousand seeds.
//!
//! With nothing in flight and no undetected break this says exactly: an in-sync follower
//! shows its view of the Hub. With news in flight it may lag, but only by what is in flight.
//! A notification delivered to the app and not yet decided is not "in flight": the follower
//! has received it, so it must not claim to be in sync before the app followed it.
//!
//! **Told** (switch `told`). An *incident* is a subscription F failing to follow, as the Hub
//! learns it:
//! 1. an answer other than 2xx (409 refused, 500 failed, ...) reaches the Hub for a
//!    notification other than a SyncError that it sent F and still awaits;
//! 2. a SyncError F's follower POSTs after answering 202 (202-then-refuse or -fail, req 75)
//!    reaches the Hub;
//! 3. the Hub learns that F's connected socket closed abnormally (`handle_close(1006)`: a
//!    broken connection, or a Hub restart that lost it);
//! 4. the Hub drops F for not answering within its ack timeout (unless the lease ran out in
//!    the same instant: then it is a lease expiry).
//!
//! For each incident, in the step in which it happens, the Hub sends every *other*
//! subscription it then holds as connected (they all follow `SyncError` here) a SyncError of
//! its own naming F (`subscriber`) and the event: in 1 the refused event's id or, when the Hub
//! derived that event (req 97), the id of the POSTed event it was derived (minted or sent) for;
//! in 2 as posted (which the Hub must accept and broadcast: not refuse, not take for a
//! duplicate); in 4 one of the overdue events (or its source); in 3 any event: also when
//! nothing was owed and no context is current. SyncErrors are distinct: no SyncError id
//! the Hub sends names another (subscriber, event) than an earlier SyncError with that id.
//! At the followers: a SyncError delivered on a follower's current socket reaches its app
//! (`Output::SyncError`, same id and details), never swallowed as a duplicate.
//! Not required: subscriptions the Hub does not hold as connected (issued and not upgraded
//! yet, or already dropped) are not told (they cannot be: they learn the context by GET when
//! they connect); a SyncError lost with its socket or its POST (the network's doing) is not
//! re-sent; a normal close (1000: the app left, or the Hub's own close after a denial) and a
//! lease expiry (the app is told by its denial) are not incidents, nor is an app's refusal
//! after a 202 of an update (req 94: no SyncError for updates). A failed answer to a SyncError
//! is no incident either (no SyncError about a SyncError: §5a-15), but the Hub dropping F for
//! not answering one in time is (4: F no longer follows anything).
//!
//! How the simulator knows, independently of the Hub: it mirrors what the Hub awaits on each
//! socket from what the Hub sends and what reaches it (`Owed`), and the Hub's ack timeout;
//! it recognises derived events by the ids the Hub minted while handling a POST (`h-<n>`) and
//! those it sent while handling it. The trace lists what the Hub sends in each step
//! (`hub sends ...`), so a missing SyncError shows.
//!
//! **Own** (switch `own`). When a SyncError about an event app A published (or an event the
//! Hub derived from it) is delivered to A's follower within [`OWN_WINDOW`] of the Hub
//! accepting that event, A has not been reloaded (or connected afresh) since, and its follower
//! was not told that the POST failed (a lost answer), the notice says `own_event`.
//!
//! Also checked after every step:
//! - (a) no follower ever shows an anchor the Hub never had open;
//! - (b) each follower applies context changes (opens, closes, Home-open, logout: events that
//!   change what it shows) with non-decreasing timestamps (req 67); snapshots carry none;
//! - the Hub never sends on a socket it closed, and every deadline handled moves on; no state
//!   machine panics.
//!
//! **Liveness**, at the end of each scenario, after a quiet period (no app actions, no breaks,
//! no lost HTTP) of 60 virtual seconds, extended while someone is still reconnecting: every
//! follower whose app accepts everything is connected and shows exactly its view, and is
//! `InSync`, or out of sync only because a SyncError told it another app could not follow
//! (`SyncError`, `OwnEventNotFollowed`: those end only with the next context change, by
//! design). In "clean" scenarios every follower must be `InSync`.
//!
//! # Running
//!
//! `cargo test` runs [`DEFAULT_SEEDS`] seeds in two halves (one per core), about 7 CPU-seconds
//! per 1,000 in a debug build. The seeds run untraced (tracing costs most of the time); a
//! failing seed is run again with tracing to print its last 40 steps, then the panic names the
//! seed and the line to replay it. Violations print a signature (`[sync safety: Patient app
//! shows -, its view Patient]`) by which `make simulate` groups them.
//! `SIM_STATS=1` prints what the seeds exercised. `SIM_SEEDS=<n>` (seeds in all),
//! `SIM_STEPS=<n>` (action steps per scenario, default 150) and `SIM_FEATURES` change the run.
//! `make simulate` runs a million scenarios in release on every core (`simulate` below:
//! `SIM_SEEDS`, `SIM_THREADS`, `SIM_FEATURES`, `SIM_SHOW` violations printed per category,
//! default 3), printing progress every 5 s, a one-line replay command per violation and a
//! summary by category; about 900 scenarios per CPU-second (a million in 9 minutes on 2 cores).
//! Not modelled: followers with `resync_with_get` off, unsubscribing (no app calls `close()`),
//! sockets that fail to open (`handle_socket_failed`; a refused upgrade closes with 1006),
//! re-subscribing with other events on an existing endpoint, several topics, token scopes.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use fhircast_core::follower::{
    Decision, Follower, FollowerConfig, OutOfSyncReason, Output, SyncErrorNotice, SyncStatus,
};
use fhircast_core::hub::store::MemoryStore;
use fhircast_core::hub::{Auth, HubConfig, Outbound, Topic};
use fhircast_core::subscriber::{Subscriber, SubscriberConfig, SubscriberPolicy};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::wire::{ContextEntry, CurrentContext};
use fhircast_core::{Event, EventKind, EventName, ResourceKey, Timestamp};

// ---------------------------------------------------------------------------------------------
// Randomness: splitmix64, seeded per scenario.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
    /// A network delay: usually short, sometimes a long tail.
    fn delay(&mut self, lo: u64, hi: u64, tail: u64) -> Duration {
        if self.chance(0.05) {
            self.ms(hi, tail)
        } else {
            self.ms(lo, hi)
        }
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Feature switches.

/// A set of world features and checks (bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Features(u32);

impl Features {
    const SUBSETS: u32 = 1 << 0;
    const MULTITAB: u32 = 1 << 1;
    const LOGOUT: u32 = 1 << 2;
    const REFUSERS: u32 = 1 << 3;
    const RESTARTS: u32 = 1 << 4;
    const RENEWALS: u32 = 1 << 5;
    const SKEW: u32 = 1 << 6;
    const BOGUS_CLOCK: u32 = 1 << 7;
    const MAX_OPEN: u32 = 1 << 8;
    const CONTENT: u32 = 1 << 9;
    const TOLD: u32 = 1 << 16;
    const OWN: u32 = 1 << 17;
    /// The switches that are checks, on for every seed when enabled.
    const CHECKS: u32 = Self::TOLD | Self::OWN;

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    fn names(self) -> String {
        if self.0 == FEATURES.iter().fold(0, |a, (_, b, _)| a | b) {
            return "all".into();
        }
        let v: Vec<&str> = FEATURES.iter().filter(|(_, b, _)| self.has(*b)).map(|(n, _, _)| *n).collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(",")
        }
    }

    /// Reads a `SIM_FEATURES` list (see the module documentation).
    fn parse(list: &str) -> Result<Features, String> {
        let mut f = 0;
        for tok in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (remove, name) = match tok.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, tok.strip_prefix('+').unwrap_or(tok)),
            };
            let bits = match name {
                "all" => FEATURES.iter().fold(0, |a, (_, b, _)| a | b),
                "none" => 0,
                "default" => DEFAULT_FEATURES,
                _ => match FEATURES.iter().find(|(n, _, _)| *n == name) {
                    Some((_, b, _)) => *b,
                    None => {
                        let known: Vec<&str> = FEATURES.iter().map(|(n, _, _)| *n).collect();
                        return Err(format!("unknown SIM_FEATURES entry {name:?}; known: {}", known.join(", ")));
                    }
                },
            };
            if remove {
                f &= !bits;
            } else {
                f |= bits;
            }
        }
        Ok(Features(f))
    }

    fn from_env() -> Features {
        match std::env::var("SIM_FEATURES") {
            Ok(s) if !s.trim().is_empty() => Features::parse(&s).unwrap_or_else(|e| panic!("{e}")),
            _ => Features(DEFAULT_FEATURES),
        }
    }
}

/// Every switch: name, bit, what it adds.
const FEATURES: &[(&str, u32, &str)] = &[
    ("subsets", Features::SUBSETS, "apps follow different event subsets"),
    ("multitab", Features::MULTITAB, "study opens, closes and updates of non-current anchors"),
    ("logout", Features::LOGOUT, "apps publish UserLogout, UserHibernate, Home-open"),
    ("refusers", Features::REFUSERS, "two or three apps refuse the same anchors (409, 500, 202, silence)"),
    ("restarts", Features::RESTARTS, "Hub restarts losing its sockets; apps reload after refusing"),
    ("renewals", Features::RENEWALS, "short leases: many renewals, some lost"),
    ("skew", Features::SKEW, "clock skews up to ±30 s"),
    ("bogus-clock", Features::BOGUS_CLOCK, "one app's clock hours or years off, or in 2200"),
    ("max-open", Features::MAX_OPEN, "max_open_contexts 4-8 with 10 patients"),
    ("content", Features::CONTENT, "updates of current and non-current reports, refused updates"),
    ("told", Features::TOLD, "check: every failure reaches the others as a SyncError"),
    ("own", Features::OWN, "check: an app recognises SyncErrors about its own events"),
];

/// The switches on when `SIM_FEATURES` is unset: every one (the core passes them all; issue
/// 12's fixes are what made `subsets` and `told` pass).
const DEFAULT_FEATURES: u32 = Features::SUBSETS
    | Features::TOLD
    | Features::MULTITAB
    | Features::LOGOUT
    | Features::REFUSERS
    | Features::RESTARTS
    | Features::RENEWALS
    | Features::SKEW
    | Features::BOGUS_CLOCK
    | Features::MAX_OPEN
    | Features::CONTENT
    | Features::OWN;

// ---------------------------------------------------------------------------------------------
// Scenario.

/// How an app refuses the events about the anchors it dislikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// 409.
    Conflict,
    /// 500.
    Failure,
    /// 202, then a refusal (the follower POSTs a SyncError) after 0.2-8 s.
    DeferThenRefuse,
    /// Never decides about them: the follower answers 202 after 5 s and refuses after 10 s.
    Undecided,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// Accepts everything at once.
    Accept,
    /// Accepts everything after 0-7 s, without deferring (an async handler).
    SlowAccept,
    /// Refuses the events about the anchors it dislikes, accepts the rest.
    Dislike(Refusal),
    /// Defers (202), then accepts or refuses after 0.2-12 s.
    DeferThenDecide,
    /// Never decides.
    NeverDecide,
    /// A subscription whose shell never answers.
    Zombie,
}

impl Policy {
    fn accepts_everything(self) -> bool {
        matches!(self, Policy::Accept | Policy::SlowAccept)
    }
}

/// Which events an app follows (`subsets`); always with `SyncError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppKind {
    /// Everything: patients, studies, reports, Home-open, UserLogout, UserHibernate.
    Full,
    Patient,
    Study,
    PatientStudy,
    /// Reports (open, close, update), patients and studies.
    Report,
}

/// What a follower is made to lie about (the non-vacuity tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    None,
    /// Refusing followers report `InSync` right after refusing.
    InSyncAfterRefusing,
    /// Followers show a snapshot's anchor as it is, unfiltered by the events they follow.
    UnfilteredSnapshot,
}

/// Knobs of one run, derived from the seed (and the test).
#[derive(Clone, Debug)]
struct Options {
    /// Steps before the quiet period.
    action_steps: usize,
    /// The switches enabled (world features drawn per seed, checks always).
    features: Features,
    lie: Lie,
    /// The Hub's SyncErrors to the first node are dropped (the non-vacuity test of `told`).
    drop_sync_errors: bool,
    /// What to record of each step.
    trace: Trace,
}

impl Options {
    fn new(features: Features, trace: Trace) -> Options {
        Options { action_steps: action_steps(), features, lie: Lie::None, drop_sync_errors: false, trace }
    }
}

/// Tracing costs most of the run time, so seeds run untraced; a failing seed is run again,
/// traced (the simulator is deterministic), to show what led to the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trace {
    Off,
    /// Keep the last 40 steps.
    Tail,
    /// Print every step as it happens (a replay with `SIM_SEED`).
    Full,
}

const PATIENTS: [&str; 10] = ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10"];
const STUDIES: [&str; 4] = ["s1", "s2", "s3", "s4"];
const REPORTS: [&str; 3] = ["r1", "r2", "r3"];
const QUIET: Duration = Duration::from_secs(60);
const MAX_EXTENSION: Duration = Duration::from_secs(120);
const MAX_STEPS: usize = 20_000;
/// How long after the Hub accepted an event a SyncError about it must still be recognised by
/// the app that published it as its own: the Hub's ack timeout (10 s) plus a deferring app's
/// decision time (10 s) would be more; this is what an app can ask at least.
const OWN_WINDOW: Duration = Duration::from_secs(20);
/// Seeds `cargo test` runs (in two halves).
const DEFAULT_SEEDS: u64 = 10_000;

fn t0() -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000)
}

// ---------------------------------------------------------------------------------------------
// The world.

/// What travels, and where.
#[derive(Debug)]
enum Ev {
    /// A scripted action (publish, break, restart, nothing).
    Act,
    /// Hub → follower on a socket.
    Down { sock: usize, msg: DownMsg, replay: bool },
    /// Follower → Hub on a socket.
    Up { sock: usize, text: String },
    /// The app's shell closes its socket (1000); reaches the Hub behind its acks.
    UpClose { sock: usize },
    /// The WebSocket upgrade reaches the Hub.
    WsOpen { sock: usize },
    /// The Hub notices a broken socket.
    HubDetects { sock: usize },
    /// The follower notices a broken socket.
    NodeDetects { sock: usize },
    /// An HTTP request of app generation `gen` reaches the Hub.
    ToHub { node: usize, gen: u64, req: Req },
    /// An HTTP answer reaches the shell (of app generation `gen`: a reload drops older ones).
    ToNode { node: usize, gen: u64, resp: Resp },
    /// The app decides about a delivered notification.
    Decide { node: usize, id: String, decision: Decision },
    /// The app of generation `gen` calls `connect()`: its subscriber starts.
    Start { node: usize, gen: u64 },
    /// The app reloads (`fresh`: a new subscriber) or reconnects.
    Reload { node: usize, fresh: bool },
}

#[derive(Debug)]
enum DownMsg {
    Text(Arc<str>),
    Close(u16),
}

/// An HTTP request; the subscription forms are the subscriber's, tagged with its `request`.
#[derive(Debug)]
enum Req {
    Subscribe { request: u64, form: String },
    Renew { request: u64, form: String },
    Unsubscribe { form: String },
    Post { id: String, json: String },
    Get,
}

#[derive(Debug)]
enum Resp {
    /// The endpoint's URL, or the Hub's status and message (or a network error).
    Subscribed {
        request: u64,
        result: Result<String, String>,
    },
    /// The status and message of a refusal, `0` for a network error.
    Renewed {
        request: u64,
        result: Result<(), (u16, String)>,
    },
    Unsubscribed(Result<(), String>),
    Posted {
        id: String,
        result: Result<(), (u16, String)>,
    },
    /// The snapshot's JSON and the step at which the Hub took it.
    Snapshot {
        result: Result<String, String>,
        step: usize,
    },
}

struct Scheduled {
    at: Timestamp,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest comes first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A notification the Hub sent on a socket and awaits an answer to (as far as the simulator
/// can tell: it mirrors the Hub's pending acks, for `told`).
struct Owed {
    id: String,
    sync_error: bool,
    sent: Timestamp,
}

struct Socket {
    node: usize,
    /// The app generation whose subscriber opened it, and the tag it gave it.
    gen: u64,
    tag: u64,
    token: String,
    broken: bool,
    /// `handle_connect` succeeded and the Hub has neither closed it nor learnt it closed.
    hub_attached: bool,
    /// The Hub sent `Close` on it.
    hub_closed: bool,
    /// The follower has been told this socket is over (break detected, close received), or
    /// its shell closed or dropped it.
    node_knows_end: bool,
    /// Delivery time of the last message each way (FIFO).
    down_last: Timestamp,
    up_last: Timestamp,
    /// Hub steps of the messages in flight down this socket, oldest first.
    down_in_flight: VecDeque<usize>,
    /// Anchors of the opens the Hub replayed on connecting (req 44), and how many messages of
    /// that batch are still in flight.
    replayed: Vec<Option<ResourceKey>>,
    replay_in_flight: usize,
    /// Notifications the Hub awaits answers to (only tracked with `told`).
    owed: Vec<Owed>,
}

/// The shell's errors (network, HTTP statuses), as the subscriber gets them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ShellError(String);

impl std::fmt::Display for ShellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subscriber as a shell makes it: the SDK's policy and follower settings; `instance` is
/// unique to it (the SDK draws a UUID) and `seed` (the backoff's jitter) comes from the
/// scenario's PRNG.
fn subscriber(name: &str, events: &[EventName], lease: Option<u64>, gen: u64, seed: u64) -> Subscriber<ShellError> {
    let config = SubscriberConfig {
        topic: "T1".into(),
        events: events.to_vec(),
        subscriber_name: Some(name.to_owned()),
        lease_seconds: lease,
        follower: FollowerConfig::default(),
        policy: SubscriberPolicy::default(),
    };
    Subscriber::new(config, &format!("{name}i{gen}"), seed)
}

/// The app as the invariant sees it (a zombie has none). `lie` makes its follower a
/// deliberately broken one.
struct App {
    lie: Lie,
    /// With [`Lie::UnfilteredSnapshot`]: the anchor of the last snapshot as it came, while the
    /// follower still shows what it showed right after applying it.
    raw_snapshot: Option<(Option<ResourceKey>, Shown)>,
}

type Shown = Option<(ResourceKey, Option<String>)>;

struct Node {
    name: String,
    policy: Policy,
    kind: AppKind,
    /// The events it subscribes to (all granted: open auth).
    events: Vec<EventName>,
    /// The subscription's lifecycle and its follower: a zombie has one too, whose outputs its
    /// shell never passes on.
    sub: Subscriber<ShellError>,
    app: Option<App>,
    skew_ns: i64,
    lease: Option<u64>,
    /// The socket the shell has open for the subscriber (from `OpenSocket` until it closes or
    /// the subscriber drops it).
    sock: Option<usize>,
    next_id: u64,
    disliked: Vec<&'static str>,
    /// Also refuses some updates (`content`).
    refuses_updates: bool,
    /// Reloads of the app (each with a fresh subscriber): HTTP answers and socket events of an
    /// older generation are dropped.
    gen: u64,
    /// Notifications delivered to the app, by id (for decisions and check b).
    delivered: BTreeMap<String, Event>,
    /// Own events whose POST the follower was told failed (`own`).
    post_failed: BTreeSet<String>,
    /// GET answers in flight, by the Hub step that took them.
    gets_in_flight: Vec<usize>,
    /// HTTP requests whose answer has not reached the shell yet (each gets exactly one).
    http_in_flight: usize,
    /// Timestamp of the newest context change applied (check b).
    applied_ts: Option<Timestamp>,
    /// The Hub step of the last snapshot delivered to the follower.
    snapshot_step: Option<usize>,
    /// `(step, view)` each time the app's view of the Hub changed.
    views: Vec<(usize, Option<ResourceKey>)>,
}

impl Node {
    fn local(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_unix_nanos(now.unix_nanos() + self.skew_ns)
    }
    fn global(&self, local: Timestamp) -> Timestamp {
        Timestamp::from_unix_nanos(local.unix_nanos().saturating_sub(self.skew_ns))
    }
    fn follows(&self, name: &str) -> bool {
        self.events.iter().any(|e| e.as_str() == name)
    }

    fn f(&self) -> &Follower {
        self.sub.follower()
    }

    fn f_mut(&mut self) -> &mut Follower {
        self.sub.follower_mut()
    }

    fn in_sync(&self) -> bool {
        match self.f().status() {
            SyncStatus::InSync => true,
            SyncStatus::OutOfSync { reason: OutOfSyncReason::Refused { .. } } => {
                self.app.as_ref().is_some_and(|a| a.lie == Lie::InSyncAfterRefusing)
            }
            _ => false,
        }
    }

    /// The anchor the app shows (as the invariant sees it).
    fn anchor(&self) -> Option<ResourceKey> {
        if let Some((raw, at)) = self.app.as_ref().and_then(|a| a.raw_snapshot.as_ref()) {
            if *at == self.shown() {
                return raw.clone();
            }
        }
        self.f().current().map(|c| c.anchor.clone())
    }

    /// What the app shows, as far as check (b) is concerned: the anchor and the event that set it.
    fn shown(&self) -> Shown {
        self.f().current().map(|c| (c.anchor.clone(), c.event_id.clone()))
    }

    /// The app reloads, or connects again after its first connection failed: a fresh
    /// subscriber, and nothing of the old one survives.
    fn fresh(&mut self, seed: u64) {
        self.gen += 1;
        self.sub = subscriber(&self.name, &self.events, self.lease, self.gen, seed);
        if let Some(app) = self.app.as_mut() {
            app.raw_snapshot = None;
        }
        self.sock = None;
        self.delivered.clear();
        self.post_failed.clear();
        self.applied_ts = None;
        self.snapshot_step = None;
        self.gets_in_flight.clear();
    }
}

#[derive(Default, Debug, Clone)]
struct Stats {
    steps: usize,
    publishes: usize,
    accepted: usize,
    refused: usize,
    breaks: usize,
    evictions: usize,
    restarts: usize,
    reloads: usize,
    /// First connections that failed (`StartFailed`: the app connects again, afresh).
    start_failures: usize,
    renewals: usize,
    reconnects: usize,
    denials: usize,
    sync_errors: usize,
    lost_http: usize,
    snapshots: usize,
    in_sync_checks: usize,
    in_sync_lagging: usize,
    incidents: usize,
    told_checked: usize,
    own_checked: usize,
    version_gaps: usize,
    /// Content checks (an in-sync follower's shared resources against the Hub's) of non-empty
    /// content: that the content invariant is not vacuous.
    content_checks: usize,
    /// Changes of the Hub's state after which it held `max_open_contexts` open contexts.
    open_contexts_full: usize,
}

impl Stats {
    fn add(&mut self, s: &Stats) {
        self.steps += s.steps;
        self.publishes += s.publishes;
        self.accepted += s.accepted;
        self.refused += s.refused;
        self.breaks += s.breaks;
        self.evictions += s.evictions;
        self.restarts += s.restarts;
        self.reloads += s.reloads;
        self.start_failures += s.start_failures;
        self.renewals += s.renewals;
        self.reconnects += s.reconnects;
        self.denials += s.denials;
        self.sync_errors += s.sync_errors;
        self.lost_http += s.lost_http;
        self.snapshots += s.snapshots;
        self.in_sync_checks += s.in_sync_checks;
        self.in_sync_lagging += s.in_sync_lagging;
        self.incidents += s.incidents;
        self.told_checked += s.told_checked;
        self.own_checked += s.own_checked;
        self.version_gaps += s.version_gaps;
        self.content_checks += s.content_checks;
        self.open_contexts_full += s.open_contexts_full;
    }
}

struct Failure {
    kind: &'static str,
    /// A finer category, for `make simulate`'s summary (may be empty).
    sig: String,
    message: String,
}

/// A subscription failing to follow, as the Hub learns it (`told`).
#[derive(Debug)]
struct Incident {
    node: usize,
    /// The failing subscription's socket.
    sock: Option<usize>,
    what: IncidentKind,
    /// The events a SyncError about it may name (empty: any).
    events: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IncidentKind {
    Answered(u16),
    PostedSyncError,
    Lost,
    Timeout,
    /// A timeout with only SyncErrors unanswered.
    TimeoutOnSyncError,
}

struct Sim {
    opts: Options,
    /// The switches active in this seed.
    active: Features,
    rng: Rng,
    now: Timestamp,
    step: usize,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    hub: Topic,
    /// The hub's stored rows, written at each eviction and restart.
    store: MemoryStore,
    hub_config: HubConfig,
    nodes: Vec<Node>,
    sockets: Vec<Socket>,
    token_sock: BTreeMap<String, usize>,
    next_token: u64,
    /// `(step, anchor)` each time the Hub's current anchor changed.
    hub_history: Vec<(usize, Option<ResourceKey>)>,
    /// What the views were computed from: the current anchor and the Hub's minted count.
    view_key: (Option<ResourceKey>, u64),
    ever_opened: BTreeSet<ResourceKey>,
    quiet: bool,
    clean: bool,
    /// The socket whose connection the Hub is handling: what it sends there is a replay.
    replaying: Option<usize>,
    /// The id of the POSTed event the Hub is handling: other events it sends are derived.
    routing_post: Option<String>,
    /// Hub-minted id → the POSTed events it was minted or sent for (a derived event: its
    /// source; the Hub may send a derived open it recorded earlier again for a later event).
    derived_from: HashMap<String, Vec<String>>,
    /// Event id → the node that published it, its app generation, when the Hub accepted it.
    published: HashMap<String, (usize, u64, Timestamp)>,
    /// The SyncErrors the Hub sent in this step, by socket (`told`).
    step_sync_errors: Vec<(usize, String, fhircast_core::syncerror::SyncErrorDetails)>,
    /// The denials the Hub sent in this step, by socket.
    step_denials: Vec<(usize, String)>,
    /// Sockets whose SyncErrors were dropped in this step (the non-vacuity test of `told`).
    step_dropped: Vec<usize>,
    incidents: Vec<Incident>,
    /// SyncError id → (subscriber, event) it named.
    sync_error_ids: HashMap<String, (String, String)>,
    /// SyncError notices the app got in the current delivery.
    notices: Vec<SyncErrorNotice>,
    break_chance: f64,
    loss_chance: f64,
    trace: VecDeque<String>,
    line: String,
    stats: Stats,
}

type Res<T = ()> = Result<T, Failure>;

/// Appends a line to the current step's trace entry (formatted first, so the arguments may
/// borrow the simulator).
macro_rules! log {
    ($sim:expr, $($arg:tt)*) => {{
        if $sim.opts.trace != Trace::Off {
            let line = format!($($arg)*);
            $sim.push_line(line);
        }
    }};
}

#[path = "simulator/apps.rs"]
mod apps;
#[path = "simulator/checks.rs"]
mod checks;
#[path = "simulator/net.rs"]
mod net;
#[path = "simulator/run.rs"]
mod run;
#[path = "simulator/text.rs"]
mod text;
#[path = "simulator/told.rs"]
mod told;
#[path = "simulator/world.rs"]
mod world;

use run::*;
use text::*;

fn fail<T>(kind: &'static str, message: String) -> Res<T> {
    Err(Failure { kind, sig: String::new(), message })
}

fn fail_sig<T>(kind: &'static str, sig: String, message: String) -> Res<T> {
    Err(Failure { kind, sig, message })
}

/// `Patient`, `-` for nothing: what a signature says of an anchor.
fn type_of(k: &Option<ResourceKey>) -> &str {
    k.as_ref().map_or("-", |k| k.resource_type.as_str())
}

/// Steps of actions per scenario before the quiet period; `SIM_STEPS=<n>` changes it (longer
/// scenarios see more lease expiries and reconnections).
fn action_steps() -> usize {
    env_number("SIM_STEPS").map_or(150, |n| n as usize)
}

#[test]
fn simulated_sessions_keep_their_promises_first_half_of_the_seeds() {
    run_range(seeds(0));
}

#[test]
fn simulated_sessions_keep_their_promises_second_half_of_the_seeds() {
    run_range(seeds(1));
}

/// The checker is not vacuous: followers that claim to be in sync right after refusing are
/// caught within the first seeds.
#[test]
fn a_follower_that_lies_about_being_in_sync_is_caught() {
    let opts = Options { lie: Lie::InSyncAfterRefusing, ..Options::new(Features(0), Trace::Off) };
    expect_caught(opts, "a follower that reports InSync after refusing", |e| e.starts_with("[sync safety]"));
}

/// Followers that show a snapshot's report although they do not follow reports, and say they
/// are in sync, are caught (apps following different events: `subsets`).
#[test]
fn a_follower_in_sync_on_a_filtered_out_report_is_caught() {
    let opts = Options { lie: Lie::UnfilteredSnapshot, ..Options::new(Features(Features::SUBSETS), Trace::Off) };
    expect_caught(opts, "a follower in sync on a report it does not follow", |e| {
        e.starts_with("[sync safety]") && e.contains("InSync showing Some(\"DiagnosticReport/")
    });
}

/// A Hub whose SyncErrors to one subscriber are lost on its way out is caught by `told`.
#[test]
fn a_hub_that_drops_a_sync_error_is_caught() {
    let opts = Options { drop_sync_errors: true, ..Options::new(Features(Features::TOLD), Trace::Off) };
    expect_caught(opts, "a Hub that drops the SyncErrors to one subscriber", |e| {
        e.starts_with("[told") && e.contains("(one was dropped on its way)")
    });
}

/// `make simulate`: `SIM_SEEDS` (default 1,000,000) scenarios on `SIM_THREADS` threads.
#[test]
#[ignore = "long: run by `make simulate`"]
fn simulate() {
    simulate_many();
}
