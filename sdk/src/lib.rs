//! # fhircast-sdk
//!
//! The browser subscriber SDK of FHIRcast 3.0.0 (STU3): a thin wasm-bindgen shell over
//! [`fhircast_core::follower::Follower`]. The follower decides everything a subscriber must
//! get right (answers, stale events, duplicates, versions, SyncErrors, the sync status); this
//! crate only moves bytes between it and the browser (`fetch`, `WebSocket`, `setTimeout`,
//! `crypto`) and calls the app's callbacks.
//!
//! ```text
//!  app ── FhircastClient (client.rs) ── Session (session/) ── Follower (core, sans-IO)
//!                                          │ http.rs  socket.rs  timer.rs  token.rs
//! ```
//!
//! The pure parts (the shapes the JavaScript API sees, URLs, options checks) are tested
//! natively; the protocol's decisions are the core's (`fhircast_core::subscriber`,
//! `follower`, `sharing`); the rest is tested in Chromium
//! against the hub in workerd (`tests/sdk`). The npm package around it lives in `npm/`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod client;
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

/// The allocator: lol_alloc's free list (first fit, neighbours merged on free) in place of
/// Rust's default dlmalloc, which is ~3 KB gzipped of the SDK's download on its own. The SDK
/// holds little at a time (the follower's state, one message being handled), so a list walk
/// per allocation costs nothing measurable; `LockedAllocator` rather than
/// `AssumeSingleThreaded` keeps this crate free of `unsafe`.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
