//! A deterministic discrete-event simulator: one Hub [`Topic`] and 2-5 subscribers, each a
//! [`Follower`] driven by a simulated shell and app, over a simulated network, on a virtual
//! clock. Modelled on quinn-proto's `src/tests/util.rs` `Pair`: the state machines are driven
//! exactly as the real shells drive them (inputs with `now`, `poll_*` until empty, time jumps
//! to the earliest deadline), and everything random comes from one seeded PRNG, so a seed
//! replays bit for bit:
//!
//! ```text
//! SIM_SEED=<n> cargo test -p fhircast-core --test simulator -- --nocapture
//! ```
//!
//! # What is modelled
//!
//! - **WebSockets over TCP.** Each subscription has its own socket. Each direction is FIFO
//!   with a random per-message delay (delivery times are monotonic per direction). A socket
//!   can BREAK at any moment: every message in flight on it, both ways, is lost, and so is
//!   everything sent on it later; the Hub learns `handle_close(1006)` after its own random
//!   detection delay and the follower learns `handle_disconnected` after another. A Hub
//!   `Close` travels down the socket behind the messages sent before it.
//! - **HTTP** (subscribe, event POSTs, GET current context) travels independently of the
//!   sockets with its own random delays, so it reorders freely against WebSocket traffic. A
//!   request or its answer may be lost; the shell then sees a network error.
//! - **The shell** subscribes (`handle_connecting`, POST, `202` with a new endpoint, WebSocket
//!   upgrade, `handle_connect` at the Hub), reconnects with backoff after a disconnect or a
//!   [`Output::Resubscribe`], ignores messages of sockets it has given up, POSTs what the
//!   follower asks for and reports the answers, and runs GETs: the snapshot is taken with
//!   `Topic::current_context` when the request reaches the Hub and delivered later.
//! - **Apps** (one policy each): accept everything at once; accept everything after a
//!   random delay without deferring (an async handler); refuse (409) the events about a few
//!   anchors it dislikes; defer (202) then accept or refuse later; never decide (the
//!   follower's own timeouts answer 202, then refuse); or a zombie: a Hub-side subscription
//!   whose messages are delivered but never answered (it resubscribes when denied). Apps
//!   publish random context changes (`Patient-open/close` of 4 patients,
//!   `DiagnosticReport-open/update/close` of 3 reports, `Home-open`) through
//!   `Follower::prepare` and a POST whose answer goes to `handle_post_result`.
//! - Followers' clocks are skewed by up to ±2 s; leases are sometimes short (so they expire
//!   and the Hub denies); the Hub uses its default configuration (10 s ack timeout). Now and
//!   then the Hub's Durable Object is evicted: its `TopicState` goes through JSON and
//!   `Topic::restore` (sockets survive, as with the hibernation API).
//!
//! Each seed draws 2-5 nodes (the first always accepts everything), their policies, skews and
//! leases, a break rate and an HTTP loss rate; 15 % of the seeds are "clean" (only accepting
//! apps, no breaks, no loss). A scenario runs 150 steps of actions, then the quiet period.
//!
//! # The invariant (checked after every step)
//!
//! A step is one input to one state machine (a message delivered, a deadline, an app
//! decision, a scripted action), followed by pumping every output it causes.
//!
//! **Sync safety.** Let `H(s)` be the Hub's current anchor (`topic.state().current()`) after
//! step `s`. For every follower `F` whose `status()` is [`SyncStatus::InSync`] after step `n`:
//! - if one of `F`'s sockets is broken and `F` has not yet been told (`handle_disconnected`),
//!   nothing is required (F cannot know);
//! - if the last snapshot F received was taken at step `s_snap` and a WebSocket message the
//!   Hub produced before `s_snap` is still in flight to F, nothing is required either: F is
//!   applying older news over a newer snapshot, and nothing tells it so (a GET answer carries
//!   no ordering against WebSocket messages). Once those messages are delivered, F is back on
//!   the snapshot's state or later (the socket is FIFO), and the rule below applies again;
//! - otherwise let `s0` be the step at which the Hub produced the oldest message still in
//!   flight to `F`: a WebSocket message on F's current socket, or the answer to a GET (its
//!   snapshot is taken at that step). If nothing is in flight, `s0 = n + 1`. Then the anchor F
//!   shows (`current().map(|c| c.anchor)`) must be one the Hub held at some point from just
//!   before `s0` to now: `F.anchor ∈ { H(s) : s0 - 1 <= s <= n } ∪ R`, where `R` is empty
//!   unless the replay the Hub sent F on connecting (req 44) is still partly in flight; then
//!   `R` holds the anchors of that replay. (The replay carries the latest open of *every*
//!   anchor type, not only the current one, and a follower cannot tell it from live news, so
//!   it passes through those anchors; once the replay is delivered, `R` is empty again.)
//!
//! With nothing in flight and no undetected break this says exactly: an in-sync follower
//! shows the Hub's current anchor. With news in flight it may lag, but only by what is in
//! flight. A notification delivered to the app and not yet decided is not "in flight": the
//! follower has received it, so it must not claim to be in sync before the app followed it.
//!
//! Also checked after every step:
//! - (a) no follower ever shows an anchor the Hub never had open;
//! - (b) each follower applies context changes (opens, closes, Home-open: events that change
//!   what it shows) with non-decreasing timestamps (req 67); snapshots carry no timestamp;
//! - the Hub never sends on a socket it closed, and every deadline handled moves on.
//!
//! **Liveness**, at the end of each scenario, after a quiet period (no app actions, no breaks,
//! no lost HTTP) of 60 virtual seconds, extended while someone is still reconnecting: every
//! follower whose app accepts everything is connected and shows exactly the Hub's current
//! anchor, and is `InSync`, or out of sync only because a SyncError told it another app could
//! not follow (`SyncError`, `OwnEventNotFollowed`: those end only with the next context
//! change, by design). In "clean" scenarios (only accepting apps, no breaks, no lost HTTP)
//! every follower must be `InSync`.
//!
//! # Running
//!
//! The seeds run untraced (tracing costs most of the time); a failing seed is run again with
//! tracing to print its last 40 steps, then the panic names the seed to replay. `SIM_STATS=1`
//! prints what the seeds exercised (breaks, denials, SyncErrors, snapshots, ...). Rarer races
//! need more: `SIM_SEEDS=<n>` (seeds in all, default 2,000) and `SIM_STEPS=<n>` (action steps
//! per scenario, default 150), best with `--release`, e.g.
//! `SIM_SEEDS=100000 cargo test --release -p fhircast-core --test simulator` (about a minute);
//! replay a seed found that way with the same `SIM_STEPS`.
//! Not modelled: followers with `resync_with_get` off, subscriptions to different event sets
//! (derived events reaching some subscribers live), unsubscribing, re-subscribing on an
//! existing endpoint, several topics.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fhircast_core::follower::{Decision, Follower, FollowerConfig, OutOfSyncReason, Output, SyncStatus};
use fhircast_core::hub::{Auth, HubConfig, Outbound, Topic, TopicState};
use fhircast_core::subscription::{Mode, SubscriptionRequest};
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
}

// ---------------------------------------------------------------------------------------------
// Scenario.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// Accepts everything at once.
    Accept,
    /// Accepts everything after 0-7 s, without deferring (an async handler).
    SlowAccept,
    /// Refuses (409) events about the anchors it dislikes, accepts the rest.
    RefuseSome,
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

/// Knobs of one run, derived from the seed (and the test).
#[derive(Clone, Debug)]
struct Options {
    /// Steps before the quiet period.
    action_steps: usize,
    /// Make refusing followers lie: `InSync` after refusing (the non-vacuity test).
    lying_followers: bool,
    /// What to record of each step.
    trace: Trace,
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

const EVENTS: &str = "Patient-open,Patient-close,DiagnosticReport-open,DiagnosticReport-close,DiagnosticReport-update,Home-open,SyncError";
const PATIENTS: [&str; 4] = ["p1", "p2", "p3", "p4"];
const REPORTS: [&str; 3] = ["r1", "r2", "r3"];
const QUIET: Duration = Duration::from_secs(60);
const MAX_EXTENSION: Duration = Duration::from_secs(120);
const MAX_STEPS: usize = 20_000;

fn t0() -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000)
}

// ---------------------------------------------------------------------------------------------
// The world.

/// What travels, and where.
#[derive(Debug)]
enum Ev {
    /// A scripted action (publish, break, nothing).
    Act,
    /// Hub → follower on a socket.
    Down { sock: usize, msg: DownMsg, replay: bool },
    /// Follower → Hub on a socket.
    Up { sock: usize, text: String },
    /// The WebSocket upgrade reaches the Hub.
    WsOpen { sock: usize },
    /// The Hub notices a broken socket.
    HubDetects { sock: usize },
    /// The follower notices a broken socket.
    NodeDetects { sock: usize },
    /// An HTTP request reaches the Hub.
    ToHub { node: usize, req: Req },
    /// An HTTP answer reaches the shell.
    ToNode { node: usize, resp: Resp },
    /// The app decides about a delivered notification.
    Decide { node: usize, id: String, decision: Decision },
    /// The shell subscribes again.
    Reconnect { node: usize },
}

#[derive(Debug)]
enum DownMsg {
    Text(Arc<str>),
    Close(u16),
}

#[derive(Debug)]
enum Req {
    Subscribe(Box<SubscriptionRequest>),
    Post { id: String, json: String },
    Get,
}

#[derive(Debug)]
enum Resp {
    Subscribed(Result<String, String>),
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

struct Socket {
    node: usize,
    token: String,
    broken: bool,
    /// `handle_connect` succeeded and the Hub has neither closed it nor learnt it closed.
    hub_attached: bool,
    /// The Hub sent `Close` on it.
    hub_closed: bool,
    /// The follower has been told this socket is over (break detected, close received).
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    /// No connection; a reconnect is scheduled (or, for a zombie in the quiet period, not).
    Down,
    /// The subscribe POST is under way.
    Subscribing,
    /// The socket (upgrade under way or open).
    Sock(usize),
}

/// The follower as the app and the invariant see it. `lie` makes it a deliberately broken
/// follower: in sync right after refusing.
struct App {
    f: Follower,
    lie: bool,
}

impl App {
    fn in_sync(&self) -> bool {
        match self.f.status() {
            SyncStatus::InSync => true,
            SyncStatus::OutOfSync { reason: OutOfSyncReason::Refused { .. } } => self.lie,
            _ => false,
        }
    }

    /// What the app shows, as far as check (b) is concerned: the anchor and the event that set it.
    fn shown(&self) -> Shown {
        self.f.current().map(|c| (c.anchor.clone(), c.event_id.clone()))
    }
}

type Shown = Option<(ResourceKey, Option<String>)>;

struct Node {
    name: String,
    policy: Policy,
    app: Option<App>,
    skew_ns: i64,
    lease: Option<u64>,
    conn: Conn,
    reconnect_scheduled: bool,
    attempts: u32,
    next_id: u64,
    disliked: Vec<&'static str>,
    /// Notifications delivered to the app, by id (for decisions and check b).
    delivered: BTreeMap<String, Event>,
    /// Events this app published, by id.
    own: BTreeMap<String, Event>,
    /// GET answers in flight, by the Hub step that took them.
    gets_in_flight: Vec<usize>,
    /// Timestamp of the newest context change applied (check b).
    applied_ts: Option<Timestamp>,
    /// The Hub step of the last snapshot delivered to the follower.
    snapshot_step: Option<usize>,
}

impl Node {
    fn local(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_unix_nanos(now.unix_nanos() + self.skew_ns)
    }
    fn global(&self, local: Timestamp) -> Timestamp {
        Timestamp::from_unix_nanos(local.unix_nanos().saturating_sub(self.skew_ns))
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
    reconnects: usize,
    denials: usize,
    sync_errors: usize,
    lost_http: usize,
    snapshots: usize,
    in_sync_checks: usize,
    in_sync_lagging: usize,
}

impl Stats {
    fn add(&mut self, s: &Stats) {
        self.steps += s.steps;
        self.publishes += s.publishes;
        self.accepted += s.accepted;
        self.refused += s.refused;
        self.breaks += s.breaks;
        self.evictions += s.evictions;
        self.reconnects += s.reconnects;
        self.denials += s.denials;
        self.sync_errors += s.sync_errors;
        self.lost_http += s.lost_http;
        self.snapshots += s.snapshots;
        self.in_sync_checks += s.in_sync_checks;
        self.in_sync_lagging += s.in_sync_lagging;
    }
}

struct Failure {
    kind: &'static str,
    message: String,
}

struct Sim {
    opts: Options,
    rng: Rng,
    now: Timestamp,
    step: usize,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    hub: Topic,
    nodes: Vec<Node>,
    sockets: Vec<Socket>,
    token_sock: BTreeMap<String, usize>,
    next_token: u64,
    /// `(step, anchor)` each time the Hub's current anchor changed.
    hub_history: Vec<(usize, Option<ResourceKey>)>,
    ever_opened: BTreeSet<ResourceKey>,
    quiet: bool,
    clean: bool,
    /// The socket whose connection the Hub is handling: what it sends there is a replay.
    replaying: Option<usize>,
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

#[path = "simulator/checks.rs"]
mod checks;
#[path = "simulator/net.rs"]
mod net;
#[path = "simulator/text.rs"]
mod text;
#[path = "simulator/world.rs"]
mod world;

use text::*;

fn fail<T>(kind: &'static str, message: String) -> Res<T> {
    Err(Failure { kind, message })
}

// ---------------------------------------------------------------------------------------------
// Running.

fn run_seed(seed: u64, opts: Options) -> Result<Stats, String> {
    let mut sim = Sim::new(seed, opts.clone());
    match sim.run() {
        Ok(stats) => Ok(stats),
        Err(f) if opts.trace == Trace::Off => {
            // Run it again, traced: the same seed fails the same way at the same step.
            let (step, kind) = (sim.step, f.kind);
            let traced = run_seed(seed, Options { trace: Trace::Tail, ..opts });
            match traced {
                Err(e) if e.contains(&format!("violated at step #{step}:")) => Err(e),
                other => Err(format!(
                    "[{kind}] seed {seed}: {kind} violated at step #{step}: {}\n(the traced rerun did not reproduce it: {other:?})",
                    f.message
                )),
            }
        }
        Err(f) => {
            if !sim.line.is_empty() {
                sim.end_step();
            }
            let trace: Vec<String> = sim.trace.iter().cloned().collect();
            Err(format!(
                "[{kind}] seed {seed}: {kind} violated at step #{}: {}\n\nlast {} steps:\n{}\n\n\
                 replay: SIM_SEED={seed} cargo test -p fhircast-core --test simulator -- --nocapture",
                sim.step,
                f.message,
                trace.len(),
                trace.join("\n"),
                kind = f.kind,
            ))
        }
    }
}

fn replay_seed() -> Option<u64> {
    std::env::var("SIM_SEED").ok().map(|s| s.trim().parse().expect("SIM_SEED is a number"))
}

fn run_range(seeds: std::ops::Range<u64>) {
    if let Some(seed) = replay_seed() {
        if seeds.start == 0 {
            let opts = Options { action_steps: action_steps(), lying_followers: false, trace: Trace::Full };
            match run_seed(seed, opts) {
                Ok(stats) => println!("seed {seed}: ok {stats:?}"),
                Err(e) => panic!("{e}"),
            }
        }
        return;
    }
    let started = Instant::now();
    let mut total = Stats::default();
    for seed in seeds.clone() {
        let opts = Options { action_steps: action_steps(), lying_followers: false, trace: Trace::Off };
        match run_seed(seed, opts) {
            Ok(s) => total.add(&s),
            Err(e) => panic!("{e}"),
        }
    }
    if std::env::var("SIM_STATS").is_ok() {
        println!("seeds {seeds:?}: {:?} in {:?}", total, started.elapsed());
    }
}

/// Steps of actions per scenario before the quiet period; `SIM_STEPS=<n>` changes it (longer
/// scenarios see more lease expiries and reconnections).
fn action_steps() -> usize {
    std::env::var("SIM_STEPS").ok().map_or(150, |s| s.trim().parse().expect("SIM_STEPS is a number"))
}

/// Seeds per test (two tests, so that both cores work); `SIM_SEEDS=<n>` runs `n` seeds in all
/// instead, e.g. for a long exploratory run in release mode.
fn seeds(half: u64) -> std::ops::Range<u64> {
    let n = std::env::var("SIM_SEEDS").ok().map_or(2000, |s| s.trim().parse().expect("SIM_SEEDS is a number"));
    let mid = n / 2;
    if half == 0 {
        0..mid
    } else {
        mid..n
    }
}

#[test]
fn simulated_sessions_keep_the_sync_promise_first_half_of_the_seeds() {
    run_range(seeds(0));
}

#[test]
fn simulated_sessions_keep_the_sync_promise_second_half_of_the_seeds() {
    run_range(seeds(1));
}

/// The checker is not vacuous: followers that claim to be in sync right after refusing are
/// caught within the first seeds.
#[test]
fn a_follower_that_lies_about_being_in_sync_is_caught() {
    if replay_seed().is_some() {
        return;
    }
    for seed in 0..50 {
        let opts = Options { action_steps: action_steps(), lying_followers: true, trace: Trace::Off };
        if let Err(e) = run_seed(seed, opts) {
            assert!(e.starts_with("[sync safety]"), "caught, but by another check: {e}");
            if std::env::var("SIM_STATS").is_ok() {
                println!("the lie is caught at seed {seed}:\n{e}");
            }
            return;
        }
    }
    panic!("a follower that reports InSync after refusing went unnoticed for 50 seeds");
}
