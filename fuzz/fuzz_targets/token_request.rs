//! The token endpoint's body: form decoding, then the grant and the
//! revocation/introspection request built from it. Any input: an error or
//! a request, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::form::parse_pairs;
use tessera::oauth::request::{TokenOperationRequest, TokenRequest};

fuzz_target!(|data: &[u8]| {
    if let Some(params) = parse_pairs(data) {
        let _ = TokenRequest::from_params(params.clone());
        let _ = TokenOperationRequest::from_params(params);
    }
});
