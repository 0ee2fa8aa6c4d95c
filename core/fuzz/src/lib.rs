//! Fuzz targets for `fhircast-core`.
//!
//! Each target is a plain function over [`arbitrary::Unstructured`], so the same code runs
//! under two engines:
//!
//! - **libFuzzer** (coverage-guided): `cargo +nightly fuzz run <target>` from `core/` (or
//!   `make fuzz`), through the thin binaries in `fuzz_targets/` (feature `libfuzzer`);
//! - **a seeded generator** on stable Rust, in `cargo test` (`tests/seeded.rs`): a fixed-seed
//!   PRNG fills the byte buffers, so a run is reproducible and needs no nightly toolchain.
//!
//! Raw bytes alone rarely get past a JSON parser's first brace, so every target is
//! structure-aware: the input picks between raw text, a valid template from the spec's own
//! shapes, and a template damaged by a few grammar-aware mutations ([`gen`]). Targets check
//! more than "no panic": what parses must round-trip through the core's own writer, and the
//! topic state machine is checked against invariants after every input ([`topic`]).
//!
//! Inputs that ever crashed a target are kept in `regressions/<target>/` and replayed by the
//! test suite.
#![forbid(unsafe_code)]

pub mod gen;
mod parsers;
mod topic;

use arbitrary::Unstructured;

pub use parsers::{ack, event_json, subscription_form, update_bundle, wire_misc};
pub use topic::{topic_machine, ACCEPTED, NOTIFIED, REACHED, REFUSED, SUBSCRIBED};

/// A fuzz target: consumes what it needs from `u`, panics on a broken invariant.
pub type Target = fn(&mut Unstructured<'_>) -> arbitrary::Result<()>;

/// Every target, by the name of its libFuzzer binary and regression folder.
pub const TARGETS: [(&str, Target); 6] = [
    ("subscription_form", subscription_form),
    ("event_json", event_json),
    ("ack", ack),
    ("update_bundle", update_bundle),
    ("wire_misc", wire_misc),
    ("topic_machine", topic_machine),
];

/// Runs `target` on `data` (running out of bytes ends an input early; it is not a failure).
pub fn run(target: Target, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = target(&mut u);
}
