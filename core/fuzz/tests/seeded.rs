//! The fuzz targets on stable Rust: each runs over inputs from a fixed-seed PRNG (so every run
//! is the same and a failure names the seed that replays it), after replaying every kept
//! regression input in `regressions/<target>/`.
//!
//! ```text
//! FUZZ_ITERS=100000 cargo test --release -p fhircast-core-fuzz      # a longer run
//! FUZZ_SEED=123 cargo test -p fhircast-core-fuzz -- topic_machine    # one other seed stream
//! ```
//!
//! The defaults (10,000 inputs per parser target, 1,000 sequences of up to 64 inputs for the
//! topic state machine) keep this to about 15-20 s in a debug build.

use std::path::Path;
use std::time::Instant;

use std::sync::atomic::Ordering;

use fhircast_core_fuzz::{run, Target, ACCEPTED, NOTIFIED, REACHED, REFUSED, SUBSCRIBED, TARGETS};

/// xorshift64*: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn replay_regressions(name: &str, target: Target) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("a readable regressions folder").path();
        let data = std::fs::read(&path).expect("a readable regression input");
        eprintln!("{name}: replaying {}", path.display());
        run(target, &data);
        n += 1;
    }
    n
}

fn fuzz(name: &str) {
    let (_, target) = TARGETS.iter().find(|(n, _)| *n == name).expect("a known target");
    let kept = replay_regressions(name, *target);
    let iters = env("FUZZ_ITERS", if name == "topic_machine" { 1_000 } else { 10_000 });
    let seed = env("FUZZ_SEED", 0x5eed) ^ (name.len() as u64 * 0x9e37_79b9);
    let max_len: u64 = if name == "topic_machine" { 8192 } else { 2048 };
    let mut rng = Rng(seed | 1);
    let mut buf = Vec::new();
    let t0 = Instant::now();
    for i in 0..iters {
        let input_seed = rng.next();
        let mut r = Rng(input_seed | 1);
        buf.clear();
        let len = (r.next() % max_len) as usize;
        buf.extend((0..len).map(|_| r.next() as u8));
        let result = std::panic::catch_unwind(|| run(*target, &buf));
        if result.is_err() {
            let path = std::env::temp_dir().join(format!("fuzz-{name}-{input_seed:016x}"));
            std::fs::write(&path, &buf).expect("writing the failing input");
            panic!(
                "{name}: input {i} (seed {input_seed:#x}) failed; saved to {} — keep it in regressions/{name}/",
                path.display()
            );
        }
    }
    eprintln!("{name}: {kept} regression inputs, {iters} seeded inputs in {:.2?}", t0.elapsed());
}

#[test]
fn subscription_form() {
    fuzz("subscription_form");
}

#[test]
fn event_json() {
    fuzz("event_json");
}

#[test]
fn ack() {
    fuzz("ack");
}

#[test]
fn update_bundle() {
    fuzz("update_bundle");
}

#[test]
fn wire_misc() {
    fuzz("wire_misc");
}

#[test]
fn topic_machine() {
    fuzz("topic_machine");
    let n = |i: usize| REACHED[i].load(Ordering::Relaxed);
    eprintln!(
        "topic_machine reached: {} subscriptions, {} events accepted, {} refused, {} notifications",
        n(SUBSCRIBED),
        n(ACCEPTED),
        n(REFUSED),
        n(NOTIFIED)
    );
    assert!(n(ACCEPTED) > 100 && n(NOTIFIED) > 100, "the generated inputs no longer reach the state machine");
}
