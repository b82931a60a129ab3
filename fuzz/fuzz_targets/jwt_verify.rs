//! The JWT verification used by introspection, revocation, the admin API
//! and the verifier library (`token::verify`), with keys of every
//! algorithm Tessera signs with.
//!
//! The first byte picks how the rest is used:
//! - raw: the bytes are the token;
//! - header, claims or signature: that segment of a valid token is
//!   replaced by the bytes (base64url-encoded);
//! - signed: the bytes are the claims JSON of a token signed with a real
//!   key, so claim checks run on well-signed input.
//!
//! Never a panic; whatever verifies carries the expected issuer, a known
//! `kid` and an unexpired `exp`.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tessera::crypto::signing::{self, PreparedKey, SigningAlgorithm};
use tessera::token::verify::{Expectations, VerificationKey, VerificationKeys, verify};

const ISSUER: &str = "https://auth.example.com";
const NOW: i64 = 1_900_000_000;

struct Fixture {
    keys: VerificationKeys,
    signers: Vec<(SigningAlgorithm, String, PreparedKey)>,
    valid: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut keys = VerificationKeys::new();
        let mut signers = Vec::new();
        for (alg, kid) in [
            (SigningAlgorithm::Es256, "es"),
            (SigningAlgorithm::EdDsa, "ed"),
        ] {
            let pkcs8 = signing::generate_pkcs8(alg).expect("key");
            let key = signing::public_key(alg, &pkcs8).expect("public key");
            keys.insert(kid.to_owned(), VerificationKey { alg, key });
            signers.push((
                alg,
                kid.to_owned(),
                PreparedKey::from_pkcs8(alg, &pkcs8).expect("key"),
            ));
        }
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "svc", "aud": "https://api.example.com",
            "exp": NOW + 300, "iat": NOW, "nbf": NOW, "jti": "j-1",
            "client_id": "svc", "scope": "read",
        });
        let valid = sign(&signers[0], &serde_json::to_vec(&claims).expect("JSON"));
        Fixture {
            keys,
            signers,
            valid,
        }
    })
}

fn sign((alg, kid, key): &(SigningAlgorithm, String, PreparedKey), claims: &[u8]) -> String {
    let header = serde_json::json!({"alg": alg.jws_name(), "typ": "at+jwt", "kid": kid});
    let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("JSON"));
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims));
    let signature = key.sign(token.as_bytes()).expect("sign");
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let parts: Vec<&str> = f.valid.split('.').collect();
    let token = match mode % 5 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(rest), parts[1], parts[2]),
        2 => format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(rest), parts[2]),
        3 => format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(rest)),
        _ => sign(&f.signers[usize::from(mode / 5) % f.signers.len()], rest),
    };
    let expect = Expectations {
        issuer: ISSUER,
        audience: None,
        now: NOW,
        expiry_leeway: 0,
        not_before_leeway: 60,
    };
    if let Ok(claims) = verify(&token, &f.keys, &expect) {
        assert_eq!(claims.iss, ISSUER);
        assert!(claims.exp > NOW);
    }
});
