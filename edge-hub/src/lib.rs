//! The FHIRcast Hub on Cloudflare Workers: one Durable Object per topic over
//! `fhircast_core::hub::Topic`.
#![warn(missing_docs)]

pub mod claims;
pub mod config;
pub mod cors;
pub mod route;
