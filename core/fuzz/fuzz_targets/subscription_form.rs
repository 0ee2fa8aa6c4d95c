//! libFuzzer entry for [`fhircast_core_fuzz::subscription_form`] (see the crate docs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fhircast_core_fuzz::run(fhircast_core_fuzz::subscription_form, data));
