//! The FHIRcast Hub on Cloudflare Workers: one Durable Object per topic over `fhircast_core::hub` (issue 3).
