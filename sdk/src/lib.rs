//! The browser subscriber SDK: wasm-bindgen bindings over `fhircast_core::follower` (issue 4).
