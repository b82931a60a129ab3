//! Checklist group (e) through `tessera::verifier`: each forged token is
//! refused with the exact `Rejection` of the rule meant to catch it. Where a
//! rule sits behind the signature check, the token is signed with the
//! issuer's real key (`TestApp::signing_key`), so a refusal cannot come from
//! the signature instead; each table also passes an untouched token signed
//! the same way, so the variants fail for their flaw alone.

use std::time::Duration;

use actix_web::{App, HttpResponse, test as atest, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use tessera::token::verify::VerifyError;
use tessera::verifier::{BearerToken, Rejection, Verifier};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestClient, sign_raw, spawn_app, spec};

const API: &str = "https://api.example.com";

/// The order n of the P-256 group.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn invalid(e: VerifyError) -> Result<(), Rejection> {
    Err(Rejection::Invalid(e))
}

fn hs256(key: &[u8], header: &Value, payload: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.as_bytes())
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.').map(str::to_owned);
    (
        it.next().expect("header"),
        it.next().expect("payload"),
        it.next().expect("signature"),
    )
}

/// A running issuer, a verifier for `API`, a client's genuine token, and the
/// issuer's signing key for tokens the verifier must refuse despite a valid
/// signature.
struct Forgery {
    app: TestApp,
    client: TestClient,
    verifier: Verifier,
    token: String,
    kid: String,
    pkcs8: Vec<u8>,
}

async fn forgery(backend: &Backend) -> Forgery {
    let app = spawn_app(backend).await;
    let client = app.create_client(spec("read", &[API])).await;
    let verifier = Verifier::builder(app.issuer.clone(), API)
        .clock(app.clock.clone())
        .discover()
        .await
        .expect("discovery");
    let token = app.access_token(&client).await;
    let (kid, pkcs8) = app.signing_key();
    Forgery {
        app,
        client,
        verifier,
        token,
        kid,
        pkcs8,
    }
}

impl Forgery {
    /// Claims as the issuer would mint them now.
    fn claims(&self) -> Value {
        let now = self.app.clock_now();
        json!({
            "iss": self.app.issuer, "sub": self.client.id, "aud": API, "exp": now + 300,
            "iat": now, "nbf": now, "jti": uuid::Uuid::new_v4().to_string(),
            "client_id": self.client.id, "scope": "read"
        })
    }

    fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid})
    }

    /// Signed with the issuer's real key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        sign_raw(&self.pkcs8, &header.to_string(), &claims.to_string())
    }

    fn sign_text(&self, header: &str, payload: &str) -> String {
        sign_raw(&self.pkcs8, header, payload)
    }

    fn with_claim(&self, name: &str, value: Value) -> String {
        let mut claims = self.claims();
        claims[name] = value;
        self.sign(&self.header(), &claims)
    }

    fn without_claim(&self, name: &str) -> String {
        let mut claims = self.claims();
        claims.as_object_mut().expect("object").remove(name);
        self.sign(&self.header(), &claims)
    }

    async fn check(
        &self,
        verifier: &Verifier,
        name: &str,
        token: &str,
        want: Result<(), Rejection>,
    ) {
        let got = verifier
            .verify(token, verifier.expectations())
            .await
            .map(|_| ());
        assert_eq!(got, want, "{name}");
    }

    async fn expect(&self, name: &str, token: &str, want: Result<(), Rejection>) {
        self.check(&self.verifier, name, token, want).await;
    }

    /// The genuine token and an untouched self-signed one both pass.
    async fn baseline(&self) {
        self.expect("the genuine token", &self.token, Ok(())).await;
        let own = self.sign(&self.header(), &self.claims());
        self.expect("a token signed with the issuer's key", &own, Ok(()))
            .await;
    }
}

both_backends! {
    async fn forged_signatures_and_algorithms_fail_with_the_exact_error(backend) {
        let f = forgery(&backend).await;
        f.baseline().await;
        let (h, p, s) = parts(&f.token);
        let sig = URL_SAFE_NO_PAD.decode(&s).expect("b64");

        // E1: alg none in every casing, empty signature.
        for alg in ["none", "None", "NONE", "nOnE"] {
            let h = b64(json!({"alg": alg, "typ": "at+jwt", "kid": f.kid}).to_string().as_bytes());
            f.expect(&format!("alg {alg}"), &format!("{h}.{p}."), invalid(VerifyError::Header)).await;
        }

        // E3/E4: HS256 keyed with our public key in every form, and with
        // guessable secrets.
        let jwks = f.app.jwks().await;
        let jwk = jwks["keys"].as_array().expect("keys").iter()
            .find(|k| k["kid"] == f.kid.as_str()).expect("our key is published").clone();
        let mut point = vec![0x04];
        point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().expect("x")).expect("b64"));
        point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().expect("y")).expect("b64"));
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&point);
        let body = STANDARD.encode(&der);
        let lines: Vec<&str> = body.as_bytes().chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----", lines.join("\n"));
        let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": f.kid});
        let payload = f.claims().to_string();
        for (name, key) in [
            ("the JWK", jwk.to_string().into_bytes()),
            ("PEM", pem.clone().into_bytes()),
            ("PEM with a newline", format!("{pem}\n").into_bytes()),
            ("DER", der.clone()),
            ("the raw point", point.clone()),
            ("an empty key", Vec::new()),
            ("\"secret\"", b"secret".to_vec()),
        ] {
            f.expect(&format!("HS256 keyed with {name}"), &hs256(&key, &hs_header, &payload), invalid(VerifyError::Header)).await;
        }

        // E5: another algorithm claimed for our key, with a signature that
        // verifies under the key's real one.
        for alg in ["ES384", "ES512", "RS256", "RS512", "PS256", "EdDSA", "es256"] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": f.kid});
            f.expect(&format!("alg {alg}"), &f.sign(&header, &f.claims()), invalid(VerifyError::Header)).await;
        }

        // E2, E6, E7: signatures that must not verify.
        let with_sig = |bytes: &[u8]| format!("{h}.{p}.{}", b64(bytes));
        let mut r_is_n = N.to_vec();
        r_is_n.extend_from_slice(&sig[32..]);
        let mut s_is_n = sig[..32].to_vec();
        s_is_n.extend_from_slice(&N);
        let mut flipped = sig.clone();
        flipped[10] ^= 0x01;
        for (name, forged) in [
            ("all-zero r and s", with_sig(&[0u8; 64])),
            ("r = s = 0 in DER", format!("{h}.{p}.MAYCAQACAQA")),
            ("r = n", with_sig(&r_is_n)),
            ("s = n", with_sig(&s_is_n)),
            ("r and s above n", with_sig(&[0xff; 64])),
            ("one bit flipped", with_sig(&flipped)),
            ("four bytes cut", with_sig(&sig[..60])),
            ("random bytes", with_sig(&uuid::Uuid::new_v4().as_bytes().repeat(4))),
        ] {
            f.expect(name, &forged, invalid(VerifyError::Signature)).await;
        }
        f.expect("an empty signature", &format!("{h}.{p}."), invalid(VerifyError::Malformed)).await;

        // E2: a payload changed after signing.
        let mut claims = crate::helpers::claims_of(&f.token);
        claims["scope"] = json!("read admin");
        f.expect("a modified payload", &format!("{h}.{}.{s}", b64(claims.to_string().as_bytes())), invalid(VerifyError::Signature)).await;

        // A foreign key claiming our kid.
        let rng = ring::rand::SystemRandom::new();
        let foreign = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let forged = sign_raw(foreign.as_ref(), &f.header().to_string(), &f.claims().to_string());
        f.expect("a foreign key under our kid", &forged, invalid(VerifyError::Signature)).await;
    }
}

both_backends! {
    /// E7: ECDSA is malleable, and ring accepts the high-S twin (r, n - s)
    /// of a signature. The verifier accepts it as the same token (same
    /// `jti`), so revoking the token revokes its twin (checklist D9).
    async fn a_high_s_twin_is_the_same_token_and_dies_with_it(backend) {
        let f = forgery(&backend).await;
        let mut rs = spec("", &[]);
        rs.can_introspect = true;
        let rs = f.app.create_client(rs).await;
        let following = Verifier::builder(f.app.issuer.clone(), API)
            .clock(f.app.clock.clone())
            .follow_revocations(rs.id.clone(), rs.secret.clone(), Duration::from_secs(3600))
            .discover()
            .await
            .expect("discovery");
        let (h, p, s) = parts(&f.token);
        let sig = URL_SAFE_NO_PAD.decode(&s).expect("b64");
        let mut twin = sig[..32].to_vec();
        let mut borrow = 0i16;
        let mut s_twin = [0u8; 32];
        for i in (0..32).rev() {
            let d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
            borrow = i16::from(d < 0);
            s_twin[i] = u8::try_from(d + 256 * borrow).expect("a byte");
        }
        twin.extend_from_slice(&s_twin);
        let twin = format!("{h}.{p}.{}", b64(&twin));
        assert_ne!(twin, f.token);
        let original = following.verify(&f.token, following.expectations()).await.expect("valid");
        let claims = following.verify(&twin, following.expectations()).await.expect("the twin verifies");
        assert_eq!(claims.jti, original.jti);

        assert_eq!(f.app.revoke(&f.client, &f.token).await.status(), 200);
        following.poll_revocations().await.expect("the feed");
        f.check(&following, "the revoked token", &f.token, Err(Rejection::Revoked)).await;
        f.check(&following, "its high-S twin", &twin, Err(Rejection::Revoked)).await;
    }
}

both_backends! {
    async fn forged_headers_fail_with_the_exact_error_and_fetch_nothing(backend) {
        let f = forgery(&backend).await;
        f.baseline().await;
        let claims = f.claims();
        let payload = claims.to_string();

        // E8, E9: keys and key URLs in the header are refused, never
        // fetched. A listener stands in for the attacker's server.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
        let rng = ring::rand::SystemRandom::new();
        let attacker = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, attacker.as_ref(), &rng).expect("key");
        let point = pair.public_key().as_ref().to_vec();
        let attacker_jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])});
        let fetches = f.verifier.jwks_fetches();
        for (member, value) in [
            ("jku", json!(url)),
            ("x5u", json!(url)),
            ("jwk", attacker_jwk.clone()),
            ("x5c", json!([STANDARD.encode(b"not really a certificate")])),
        ] {
            let mut header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker"});
            header[member] = value.clone();
            let forged = sign_raw(attacker.as_ref(), &header.to_string(), &payload);
            f.expect(&format!("{member} with the attacker's key"), &forged, invalid(VerifyError::Header)).await;
            // Refused even beside our kid and a signature by our key.
            let mut ours = f.header();
            ours[member] = value;
            f.expect(&format!("{member} beside our kid"), &f.sign(&ours, &claims), invalid(VerifyError::Header)).await;
        }
        assert!(listener.accept().is_err(), "the verifier connected to a URL from a token");
        assert_eq!(f.verifier.jwks_fetches(), fetches, "nor did it fetch its own JWKS again");

        // E10: kid injection. The kid is looked up in a map, nothing else;
        // the HS256 variants carry the "expected" secret of each attack.
        for (kid, secret) in [
            ("../../../../../../dev/null", &b""[..]),
            ("/dev/null", b""),
            ("x' UNION SELECT '1';--", b"1"),
            ("|sleep 10", b""),
            ("", b""),
        ] {
            let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
            f.expect(&format!("kid {kid:?}"), &f.sign(&header, &claims), invalid(VerifyError::UnknownKey)).await;
            let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
            f.expect(&format!("HS256 kid {kid:?}"), &hs256(secret, &header, &payload), invalid(VerifyError::UnknownKey)).await;
        }
        for (name, header) in [
            ("kid {\"$ne\": null}", json!({"alg": "ES256", "typ": "at+jwt", "kid": {"$ne": null}})),
            ("kid a number", json!({"alg": "ES256", "typ": "at+jwt", "kid": 7})),
            ("no kid", json!({"alg": "ES256", "typ": "at+jwt"})),
        ] {
            f.expect(name, &f.sign(&header, &claims), invalid(VerifyError::Header)).await;
        }

        // E12: typ.
        for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
            let header = json!({"alg": "ES256", "typ": typ, "kid": f.kid});
            f.expect(&format!("typ {typ}"), &f.sign(&header, &claims), Ok(())).await;
        }
        for typ in [json!("JWT"), json!("jwt"), json!("dpop+jwt"), json!("at+jwt "), json!(""), json!(null), json!(["at+jwt"])] {
            let header = json!({"alg": "ES256", "typ": typ, "kid": f.kid});
            f.expect(&format!("typ {typ}"), &f.sign(&header, &claims), invalid(VerifyError::Header)).await;
        }
        let untyped = json!({"alg": "ES256", "kid": f.kid});
        f.expect("no typ", &f.sign(&untyped, &claims), invalid(VerifyError::Header)).await;

        // E13, E14: crit and nesting.
        for (name, extra) in [
            ("crit []", json!({"crit": []})),
            ("crit with an unknown extension", json!({"crit": ["foo"], "foo": 1})),
            ("crit naming an absent member", json!({"crit": ["exp"]})),
            ("cty JWT", json!({"cty": "JWT"})),
        ] {
            let mut header = f.header();
            for (k, v) in extra.as_object().expect("object") {
                header[k] = v.clone();
            }
            f.expect(name, &f.sign(&header, &claims), invalid(VerifyError::Header)).await;
        }

        // E19, E20: duplicate members and headers that are no JSON object.
        let duplicate = format!(r#"{{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"{}"}}"#, f.kid);
        f.expect("a duplicate alg", &f.sign_text(&duplicate, &payload), invalid(VerifyError::Header)).await;
        for header in ["[]", "\"ES256\"", "null", "{\"alg\":\"ES256\""] {
            f.expect(&format!("header {header}"), &f.sign_text(header, &payload), invalid(VerifyError::Header)).await;
        }
    }
}

both_backends! {
    async fn forged_claims_fail_with_the_exact_error(backend) {
        let f = forgery(&backend).await;
        f.baseline().await;
        let now = f.app.clock_now();
        let other = "https://api.b.example";

        // E15: iss exactly.
        let https = f.app.issuer.replacen("http://", "https://", 1);
        for iss in [format!("{}/", f.app.issuer), f.app.issuer.to_uppercase(), https] {
            f.expect(&format!("iss {iss}"), &f.with_claim("iss", json!(iss)), invalid(VerifyError::Issuer)).await;
        }
        f.expect("iss a number", &f.with_claim("iss", json!(42)), invalid(VerifyError::Claims)).await;
        f.expect("no iss", &f.without_claim("iss"), invalid(VerifyError::Claims)).await;

        // E16: aud must contain our audience.
        for aud in [json!(""), json!(["*"]), json!(other), json!([other]), json!([]), json!("*")] {
            f.expect(&format!("aud {aud}"), &f.with_claim("aud", aud.clone()), invalid(VerifyError::Audience)).await;
        }
        for aud in [json!(null), json!(1), json!({"aud": API})] {
            f.expect(&format!("aud {aud}"), &f.with_claim("aud", aud.clone()), invalid(VerifyError::Claims)).await;
        }
        f.expect("no aud", &f.without_claim("aud"), invalid(VerifyError::Claims)).await;
        f.expect("aud listing us among others", &f.with_claim("aud", json!([other, API])), Ok(())).await;

        // E17: exp required, an integer; the type checks are reached
        // because the signature is valid.
        for exp in [json!("9999999999"), json!(1e308), json!(1.5), json!(true), json!(null), json!(9_223_372_036_854_775_808u64)] {
            f.expect(&format!("exp {exp}"), &f.with_claim("exp", exp.clone()), invalid(VerifyError::Claims)).await;
        }
        // A date before 1970 is refused as a claim jsonwebtoken cannot read
        // as a NumericDate, before any expiry is computed.
        f.expect("exp -1", &f.with_claim("exp", json!(-1)), invalid(VerifyError::Claims)).await;
        f.expect("exp an hour ago", &f.with_claim("exp", json!(now - 3600)), invalid(VerifyError::Expired)).await;
        f.expect("no exp", &f.without_claim("exp"), invalid(VerifyError::Claims)).await;

        // E18: nbf and iat honoured and required.
        f.expect("nbf \"0\"", &f.with_claim("nbf", json!("0")), invalid(VerifyError::Claims)).await;
        f.expect("nbf in an hour", &f.with_claim("nbf", json!(now + 3600)), invalid(VerifyError::NotYetValid)).await;
        f.expect("iat in an hour", &f.with_claim("iat", json!(now + 3600)), invalid(VerifyError::NotYetValid)).await;
        for claim in ["nbf", "iat", "jti", "sub", "client_id", "scope"] {
            f.expect(&format!("no {claim}"), &f.without_claim(claim), invalid(VerifyError::Claims)).await;
        }
        f.expect("an empty jti", &f.with_claim("jti", json!("")), invalid(VerifyError::Claims)).await;

        // E22: scope is a space-delimited string, nothing else.
        for scope in [json!(["read"]), json!(1), json!(null)] {
            f.expect(&format!("scope {scope}"), &f.with_claim("scope", scope.clone()), invalid(VerifyError::Claims)).await;
        }
        f.expect("an unknown claim", &f.with_claim("admin", json!(true)), invalid(VerifyError::Claims)).await;

        // E19: a duplicate claim is refused, not resolved either way.
        let text = f.claims().to_string();
        let header = f.header().to_string();
        for (claim, value) in [("sub", "\"someone-else\""), ("scope", "\"read admin\""), ("aud", "\"https://api.b.example\"")] {
            let duplicate = format!(r#"{},"{claim}":{value}}}"#, &text[..text.len() - 1]);
            f.expect(&format!("a duplicate {claim}"), &f.sign_text(&header, &duplicate), invalid(VerifyError::Claims)).await;
        }
        for payload in ["[]", "null", "\"claims\""] {
            f.expect(&format!("payload {payload}"), &f.sign_text(&header, payload), invalid(VerifyError::Claims)).await;
        }
    }
}

both_backends! {
    /// E14, E20, E21: the compact form and its encoding.
    async fn malformed_tokens_fail_with_the_exact_error(backend) {
        let f = forgery(&backend).await;
        let (h, p, s) = parts(&f.token);
        let rt = f.app.token(&f.client, &[]).await["refresh_token"].as_str().expect("rt").to_owned();
        for (name, forged) in [
            ("two parts", format!("{h}.{p}")),
            ("four parts", format!("{h}.{p}.{s}.{s}")),
            ("five parts, a JWE", format!("{h}.{p}.{s}.{s}.{s}")),
            ("a leading dot", format!(".{h}.{p}.{s}")),
            ("a trailing dot", format!("{h}.{p}.{s}.")),
            ("padding on the header", format!("{h}=.{p}.{s}")),
            ("padding on the signature", format!("{h}.{p}.{s}==")),
            ("over 8 KiB", format!("{h}.{}.{s}", "A".repeat(9000))),
            ("garbage", "not a token at all".to_owned()),
            ("a refresh token", rt),
            ("nothing", String::new()),
        ] {
            f.expect(name, &forged, invalid(VerifyError::Malformed)).await;
        }
        // An empty payload is malformed whatever the signature says.
        f.expect("an empty payload", &format!("{h}..{s}"), invalid(VerifyError::Malformed)).await;
    }
}

both_backends! {
    /// A configured leeway, at its boundaries, for `exp`, `nbf` and `iat`:
    /// the clock is the issuer's manual one, so the seconds are exact.
    async fn a_configured_leeway_is_honoured_to_the_second(backend) {
        let f = forgery(&backend).await;
        let now = f.app.clock_now();
        let with_leeway = |leeway: Duration| {
            Verifier::builder(f.app.issuer.clone(), API)
                .clock(f.app.clock.clone())
                .leeway(leeway)
                .discover()
        };
        let ten = with_leeway(Duration::from_secs(10)).await.expect("discovery");
        for (name, claim, value, want) in [
            ("exp 10 s ago", "exp", now - 10, invalid(VerifyError::Expired)),
            ("exp 9 s ago", "exp", now - 9, Ok(())),
            ("nbf in 10 s", "nbf", now + 10, Ok(())),
            ("nbf in 11 s", "nbf", now + 11, invalid(VerifyError::NotYetValid)),
            ("iat in 10 s", "iat", now + 10, Ok(())),
            ("iat in 11 s", "iat", now + 11, invalid(VerifyError::NotYetValid)),
        ] {
            f.check(&ten, &format!("leeway 10 s, {name}"), &f.with_claim(claim, json!(value)), want).await;
        }

        let zero = with_leeway(Duration::ZERO).await.expect("discovery");
        for (name, claim, value, want) in [
            ("exp now", "exp", now, invalid(VerifyError::Expired)),
            ("exp in 1 s", "exp", now + 1, Ok(())),
            ("nbf now", "nbf", now, Ok(())),
            ("nbf in 1 s", "nbf", now + 1, invalid(VerifyError::NotYetValid)),
        ] {
            f.check(&zero, &format!("no leeway, {name}"), &f.with_claim(claim, json!(value)), want).await;
        }

        // More than five minutes is capped at five.
        let huge = with_leeway(Duration::from_secs(3600)).await.expect("discovery");
        for (name, value, want) in [
            ("exp 300 s ago", now - 300, invalid(VerifyError::Expired)),
            ("exp 299 s ago", now - 299, Ok(())),
        ] {
            f.check(&huge, &format!("leeway capped, {name}"), &f.with_claim("exp", json!(value)), want).await;
        }
    }
}

async fn any_token(_token: BearerToken) -> HttpResponse {
    HttpResponse::Ok().finish()
}

both_backends! {
    /// RFC 9068 §4 and RFC 6750 §3.1: at the resource server, a forged
    /// token is a 401 with error="invalid_token", whatever its flaw.
    async fn the_extractor_answers_invalid_token_to_forged_tokens(backend) {
        let f = forgery(&backend).await;
        let rs = atest::init_service(
            App::new()
                .app_data(web::Data::new(f.verifier.clone()))
                .route("/", web::get().to(any_token)),
        )
        .await;
        let (h, p, _) = parts(&f.token);
        let none = b64(json!({"alg": "none", "typ": "at+jwt", "kid": f.kid}).to_string().as_bytes());
        let mut jku = f.header();
        jku["jku"] = json!("http://127.0.0.1:9/jwks.json");
        let now = f.app.clock_now();
        for (name, forged, status) in [
            ("the genuine token", f.token.clone(), 200),
            ("alg none", format!("{none}.{p}."), 401),
            ("a zero signature", format!("{h}.{p}.{}", b64(&[0u8; 64])), 401),
            ("typ JWT", f.sign(&json!({"alg": "ES256", "typ": "JWT", "kid": f.kid}), &f.claims()), 401),
            ("jku", f.sign(&jku, &f.claims()), 401),
            ("an unknown kid", f.sign(&json!({"alg": "ES256", "typ": "at+jwt", "kid": "nobody"}), &f.claims()), 401),
            ("another audience", f.with_claim("aud", json!("https://api.b.example")), 401),
            ("expired", f.with_claim("exp", json!(now - 3600)), 401),
            ("exp a string", f.with_claim("exp", json!("9999999999")), 401),
        ] {
            let resp = atest::call_service(
                &rs,
                atest::TestRequest::get().uri("/").insert_header(("authorization", format!("Bearer {forged}"))).to_request(),
            )
            .await;
            assert_eq!(resp.status(), status, "{name}");
            if status == 401 {
                let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
                assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""), "{name}: {challenge}");
            }
        }
    }
}
