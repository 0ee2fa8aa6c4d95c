//! # fhircast-edge-hub
//!
//! The FHIRcast Hub on Cloudflare Workers: a Worker that routes, checks sizes, CORS and bearer
//! tokens, and one Durable Object per topic ([`topic_object::TopicObject`]) that drives
//! `fhircast_core::hub::Topic`. The pure parts (routing, CORS, settings, token claims, error
//! bodies) are tested natively; the Worker and the object are tested running in workerd by
//! the conformance suite under `tests/`.
#![warn(missing_docs)]

pub mod claims;
pub mod config;
pub mod contract;
pub mod cors;
pub mod route;

#[cfg(target_arch = "wasm32")]
mod audit;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod metrics;
#[cfg(target_arch = "wasm32")]
mod respond;
#[cfg(target_arch = "wasm32")]
mod sockets;
#[cfg(target_arch = "wasm32")]
mod store;
#[cfg(target_arch = "wasm32")]
mod topic_object;
#[cfg(target_arch = "wasm32")]
mod webcrypto;
