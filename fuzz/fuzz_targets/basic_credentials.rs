//! Client authentication's credential extraction: the `Authorization`
//! header (HTTP Basic, form-urlencoded id and secret), alone or beside body
//! credentials. Never a panic; a parsed id is never empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::client_auth::PresentedCredentials;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = PresentedCredentials::extract(Some(text), None, None) {
        assert!(!c.client_id.is_empty());
    }
    // The header and a body id, which must agree.
    let (header, body_id) = text.split_once('\n').unwrap_or((text, ""));
    let _ = PresentedCredentials::extract(Some(header), Some(body_id.to_owned()), None);
    // Body credentials only.
    let _ = PresentedCredentials::extract(None, Some(header.to_owned()), Some(body_id.to_owned()));
});
