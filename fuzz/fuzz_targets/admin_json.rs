//! The admin API's JSON bodies: a new client (then every check a client
//! gets before it is stored), a client change, a secret rotation's grace.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::http::admin::{client_update, new_client_spec, rotation_grace};

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = new_client_spec(data, 300) {
        let _ = spec.validate();
    }
    let _ = client_update(data);
    let _ = rotation_grace(data);
});
