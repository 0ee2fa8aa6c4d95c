//! # fhircast-sdk
//!
//! The browser subscriber SDK of FHIRcast 3.0.0 (STU3): a thin wasm-bindgen shell over
//! [`fhircast_core::follower::Follower`]. The follower decides everything a subscriber must
//! get right (answers, stale events, duplicates, versions, SyncErrors, the sync status); this
//! crate only moves bytes between it and the browser (`fetch`, `WebSocket`, `setTimeout`,
//! `crypto`) and calls the app's callbacks.
//!
//! ```text
//!  app ── FhircastClient (client.rs) ── Session (session.rs) ── Follower (core, sans-IO)
//!                                          │ http.rs  socket.rs  timer.rs  token.rs
//! ```
//!
//! The pure parts (the shapes the JavaScript API sees, update/select contexts, backoff and
//! renewal timing, options checks) are tested natively; the rest is tested in Chromium
//! against the hub in workerd (`tests/sdk`). The npm package around it lives in `npm/`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod content;
mod error;
mod http;
mod js;
mod options;
mod policy;
mod session;
mod shapes;
mod socket;
mod timer;
mod token;

pub use client::FhircastClient;
