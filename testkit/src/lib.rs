//! # fhircast-testkit
//!
//! The hub behind `fhircast-sdk/testing` (issue 15): the very state machine the Hub on
//! Cloudflare runs ([`fhircast_core::hub::Topic`]), one per topic, driven in-process by the
//! JavaScript around it (`npm/src/testing.js`), which stands in for HTTP and WebSockets. An
//! app tested against it meets the Hub's real decisions — acks, SyncErrors, derived events,
//! versions, leases — not a mock's idea of them.
//!
//! Everything crosses the boundary as text (form bodies, event JSON, JSON answers), so the
//! JavaScript side needs no bindings beyond strings and numbers. Time is passed in as
//! milliseconds since the epoch: the JavaScript side reads `Date.now()`, so a test's fake
//! timers move the hub's clock too.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod hub;

pub use hub::{operation_outcome, sync_error_outcome, well_known, TestHub};
