//! Running seeds: one (traced on failure), a range (`cargo test`), a million on every core
//! (`make simulate`), and the non-vacuity tests.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering as AtOrd};
use std::sync::Mutex;
use std::time::Instant;

use super::*;

pub(super) fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok().filter(|s| !s.trim().is_empty())?;
    Some(v.trim().replace('_', "").parse().unwrap_or_else(|_| panic!("{name} is a number")))
}

/// The command that replays `seed` with the same switches.
pub(super) fn replay_line(seed: u64, opts: &Options) -> String {
    let mut env = format!("SIM_SEED={seed}");
    if opts.features != Features(DEFAULT_FEATURES) {
        env.push_str(&format!(" SIM_FEATURES={}", opts.features.names()));
    }
    if opts.action_steps != 150 {
        env.push_str(&format!(" SIM_STEPS={}", opts.action_steps));
    }
    format!("{env} cargo test -p fhircast-core --test simulator -- --nocapture")
}

/// Runs one seed; a panic in a state machine is a failure too.
fn run_once(seed: u64, opts: &Options) -> (Result<Stats, Failure>, usize, Option<Sim>) {
    let mut sim = None;
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut s = Sim::new(seed, opts.clone());
        let r = s.run();
        sim = Some(s);
        r
    }));
    match r {
        Ok(r) => {
            let step = sim.as_ref().map_or(0, |s| s.step);
            (r, step, sim)
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            (Err(Failure { kind: "panic", sig: String::new(), message: msg }), 0, None)
        }
    }
}

/// Runs a seed; on failure, runs it again traced (the same seed fails the same way at the same
/// step) and returns the report, ending with the line that replays it.
pub(super) fn run_seed(seed: u64, opts: Options) -> Result<Stats, String> {
    let (r, step, sim) = run_once(seed, &opts);
    match r {
        Ok(stats) => Ok(stats),
        Err(f) if opts.trace == Trace::Off && f.kind != "panic" => {
            let (kind, message) = (f.kind, f.message);
            let traced = run_seed(seed, Options { trace: Trace::Tail, ..opts.clone() });
            match traced {
                Err(e) if e.contains(&format!("violated at step #{step}:")) => Err(e),
                other => Err(format!(
                    "[{kind}] seed {seed}: {kind} violated at step #{step}: {message}\n(the traced rerun did not \
                     reproduce it: {other:?})\nreplay: {}",
                    replay_line(seed, &opts)
                )),
            }
        }
        Err(f) => {
            let trace: Vec<String> = match sim {
                Some(mut sim) => {
                    if !sim.line.is_empty() {
                        sim.end_step();
                    }
                    sim.trace.iter().cloned().collect()
                }
                None => Vec::new(),
            };
            Err(format!(
                "[{kind}] seed {seed}: {kind} violated at step #{step}: {}\n\nlast {} steps:\n{}\n\nreplay: {}",
                f.message,
                trace.len(),
                trace.join("\n"),
                replay_line(seed, &opts),
                kind = f.kind,
            ))
        }
    }
}

fn replay_seed() -> Option<u64> {
    env_number("SIM_SEED")
}

pub(super) fn run_range(seeds: std::ops::Range<u64>) {
    let features = Features::from_env();
    if let Some(seed) = replay_seed() {
        if seeds.start == 0 {
            match run_seed(seed, Options::new(features, Trace::Full)) {
                Ok(stats) => println!("seed {seed}: ok {stats:?}"),
                Err(e) => panic!("{e}"),
            }
        }
        return;
    }
    let started = Instant::now();
    let mut total = Stats::default();
    for seed in seeds.clone() {
        match run_seed(seed, Options::new(features, Trace::Off)) {
            Ok(s) => total.add(&s),
            Err(e) => panic!("{e}"),
        }
    }
    if std::env::var("SIM_STATS").is_ok() {
        println!("seeds {seeds:?} [{}]: {:?} in {:?}", features.names(), total, started.elapsed());
    }
    if seeds.end - seeds.start >= 1_000 {
        assert!(total.content_checks > 0, "the content invariant checked no shared content in {seeds:?}");
    }
}

/// Seeds per test (two tests, so that both cores work); `SIM_SEEDS=<n>` runs `n` seeds in all.
pub(super) fn seeds(half: u64) -> std::ops::Range<u64> {
    let n = env_number("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let mid = n / 2;
    if half == 0 {
        0..mid
    } else {
        mid..n
    }
}

/// A deliberately broken world is caught within 300 seeds by a failure `matches` accepts.
/// Failures it does not accept (defects of the core the world also finds) are skipped.
pub(super) fn expect_caught(opts: Options, what: &str, matches: impl Fn(&str) -> bool) {
    if replay_seed().is_some() {
        return;
    }
    let mut others = Vec::new();
    for seed in 0..300 {
        let (r, _, _) = run_once(seed, &opts);
        if let Err(f) = r {
            let e = format!("[{}] {}", f.kind, f.message);
            if matches(&e) {
                if std::env::var("SIM_STATS").is_ok() {
                    println!("{what}: caught at seed {seed}: {e}");
                }
                return;
            }
            others.push(format!("seed {seed}: {e}"));
        }
    }
    panic!("{what} went unnoticed for 300 seeds; other failures: {others:#?}");
}

thread_local! {
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Many seeds on every core, with progress; every violation is printed with the line that
/// replays it, and summed up by kind at the end.
pub(super) fn simulate_many() {
    let n = env_number("SIM_SEEDS").unwrap_or(1_000_000);
    let first = env_number("SIM_FIRST_SEED").unwrap_or(0);
    let threads = env_number("SIM_THREADS")
        .map(|t| t.max(1) as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |p| p.get()));
    let features = Features::from_env();
    let opts = Options::new(features, Trace::Off);
    let show = env_number("SIM_SHOW").unwrap_or(3);
    println!(
        "simulate: {n} scenarios from seed {first} on {threads} threads, features [{}], {} steps each",
        features.names(),
        opts.action_steps
    );
    // Panics are failures of a seed: note where, print nothing.
    std::panic::set_hook(Box::new(|info| {
        let loc = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        PANIC_AT.with(|p| *p.borrow_mut() = Some(loc));
    }));
    const CHUNK: u64 = 32;
    let next = AtomicU64::new(first);
    let done = AtomicU64::new(0);
    let end = first + n;
    let found: Mutex<Vec<(u64, String, String)>> = Mutex::new(Vec::new());
    let per_kind: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let total = Mutex::new(Stats::default());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let from = next.fetch_add(CHUNK, AtOrd::Relaxed);
                if from >= end {
                    break;
                }
                let mut stats = Stats::default();
                for seed in from..(from + CHUNK).min(end) {
                    let (r, step, _) = run_once(seed, &opts);
                    if let Ok(s) = &r {
                        stats.add(s);
                    }
                    if let Err(f) = r {
                        let mut msg = f.message.lines().next().unwrap_or("").to_owned();
                        if f.kind == "panic" {
                            msg.push_str(&PANIC_AT.with(|p| p.borrow_mut().take()).unwrap_or_default());
                        }
                        let cat = if f.sig.is_empty() { f.kind.to_owned() } else { format!("{}: {}", f.kind, f.sig) };
                        let mut k = per_kind.lock().unwrap();
                        let c = k.entry(cat.clone()).or_default();
                        *c += 1;
                        if *c <= show {
                            println!(
                                "VIOLATION [{}] seed {seed} step #{step}: {msg}\n  replay: {}",
                                f.kind,
                                replay_line(seed, &opts)
                            );
                        }
                        found.lock().unwrap().push((seed, cat, msg));
                    }
                    done.fetch_add(1, AtOrd::Relaxed);
                }
                total.lock().unwrap().add(&stats);
            });
        }
        let mut last = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let d = done.load(AtOrd::Relaxed);
            if d >= n || last.elapsed() >= Duration::from_secs(5) {
                last = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "simulate: {d}/{n} scenarios, {:.0}/s, {} violations",
                    d as f64 / secs.max(1e-9),
                    found.lock().unwrap().len()
                );
            }
            if d >= n {
                break;
            }
        }
    });
    let _ = std::panic::take_hook();
    let found = found.into_inner().unwrap();
    let per_kind = per_kind.into_inner().unwrap();
    println!("simulate: {n} scenarios in {:.1} s, {} violations", started.elapsed().as_secs_f64(), found.len());
    println!("  exercised (passing scenarios): {:?}", total.into_inner().unwrap());
    for (kind, count) in &per_kind {
        let mut seeds: Vec<u64> = found.iter().filter(|(_, k, _)| k == kind).map(|(s, _, _)| *s).collect();
        seeds.sort_unstable();
        seeds.truncate(5);
        println!("  [{kind}] {count}: seeds {seeds:?}; replay: {}", replay_line(seeds[0], &opts));
    }
    assert!(found.is_empty(), "{} of {n} scenarios violated an invariant (above)", found.len());
}
