//! # fhircast-core
//!
//! The FHIRcast 3.0.0 (STU3) protocol, with no I/O: no sockets, no clock, no async runtime, no
//! JavaScript. Two shells drive it: the Hub on Cloudflare Workers (one [`hub::Topic`] per
//! Durable Object) and the browser SDK (one [`follower::Follower`] per subscription).
//!
//! The state machines follow quinn-proto's shape: `handle_*` methods take inputs and the
//! current time, `poll_*` methods yield what to send, and `poll_timeout` says when to call
//! `handle_timeout` next. Requirement numbers (`req 80`, `neg 15`, `§5a-9`) refer to the
//! project's STU3 requirements digest; tests are named after them.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod bundle;
pub mod catalog;
pub mod event;
pub mod follower;
pub mod hub;
pub mod scope;
pub mod sharing;
pub mod subscriber;
pub mod subscription;
pub mod syncerror;
pub mod time;
mod vecmap;
pub mod view;
pub mod wellknown;
pub mod wire;

pub use catalog::{EventKind, EventName};
pub use event::{Event, EventError};
pub use time::Timestamp;
pub use wire::ResourceKey;
