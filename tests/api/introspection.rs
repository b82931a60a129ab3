//! Introspection (RFC 7662): what is active, for whom, and every forged or
//! dead token answered with exactly `{"active": false}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestClient, claims_of, spawn_app, spec};

const API: &str = "https://api.example.com";

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Signs `header.payload` (given as raw JSON text, so duplicates and odd
/// types survive) with a P-256 key in PKCS#8.
fn sign_raw(pkcs8: &[u8], header: &str, payload: &str) -> String {
    let rng = ring::rand::SystemRandom::new();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).expect("key");
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = pair.sign(&rng, signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64(sig.as_ref()))
}

fn assert_inactive(answer: &Value) {
    assert_eq!(
        answer,
        &json!({"active": false}),
        "exactly {{\"active\": false}}"
    );
}

/// A resource server's client, allowed to introspect anything.
async fn resource_server(app: &TestApp) -> TestClient {
    let mut rs = spec("", &[]);
    rs.can_introspect = true;
    app.create_client(rs).await
}

/// Claims of a token as the server would issue them now, as JSON text.
fn claims_json(app: &TestApp, client: &str) -> String {
    let now = app.clock_now();
    json!({
        "iss": app.issuer, "sub": client, "aud": API, "exp": now + 300, "iat": now,
        "nbf": now, "jti": uuid::Uuid::new_v4().to_string(), "client_id": client, "scope": "read"
    })
    .to_string()
}

both_backends! {
    async fn an_active_access_token_is_described_by_its_claims(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read write", &[API])).await;
        let token = app.access_token(&client).await;
        let claims = claims_of(&token);
        let answer = app.introspect(&client, &token).await;
        assert_eq!(answer["active"], true);
        for member in ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"] {
            assert_eq!(answer[member], claims[member], "{member}");
        }
        assert_eq!(answer["token_type"], "Bearer");
    }
}

both_backends! {
    async fn an_active_refresh_token_is_described_too(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let body = app.token(&client, &[]).await;
        let rt = body["refresh_token"].as_str().expect("refresh_token");
        let answer = app.introspect(&client, rt).await;
        assert_eq!(answer["active"], true);
        assert_eq!(answer["token_type"], "refresh_token");
        assert_eq!(answer["client_id"], client.id.as_str());
        assert_eq!(answer["scope"], "read");
        assert_eq!(answer["aud"], API);
        assert!(answer["exp"].as_i64().expect("exp") > app.clock_now());
        // Once rotated, it is used up.
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
        assert_eq!(app.post_token(&form, Some((&client.id, &client.secret))).await.status(), 200);
        assert_inactive(&app.introspect(&client, rt).await);
    }
}

both_backends! {
    /// The introspection permission covers any token, as `--can-introspect`
    /// says: a resource server (or an operator's tool) sees other clients'
    /// refresh tokens too, as Hydra's and Keycloak's introspection
    /// endpoints do for a privileged caller. An ordinary client sees only
    /// its own.
    async fn a_resource_server_sees_any_refresh_token_an_ordinary_client_only_its_own(backend) {
        let app = spawn_app(&backend).await;
        let owner = app.create_client(spec("read", &[API])).await;
        let stranger = app.create_client(spec("read", &[API])).await;
        let rs = resource_server(&app).await;
        let rt = app.token(&owner, &[]).await["refresh_token"].as_str().expect("rt").to_owned();
        assert_inactive(&app.introspect(&stranger, &rt).await);
        let own = app.introspect(&owner, &rt).await;
        assert_eq!(own["active"], true);
        let seen = app.introspect(&rs, &rt).await;
        assert_eq!(seen, own, "the resource server sees what the owner sees");
        assert_eq!(seen["client_id"], owner.id.as_str());
        assert_eq!(seen["token_type"], "refresh_token");

        // Once used, inactive for everyone.
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
        assert_eq!(app.post_token(&form, Some((&owner.id, &owner.secret))).await.status(), 200);
        assert_inactive(&app.introspect(&rs, &rt).await);
        assert_inactive(&app.introspect(&owner, &rt).await);
    }
}

both_backends! {
    async fn only_the_owner_or_a_permitted_resource_server_sees_a_token(backend) {
        let app = spawn_app(&backend).await;
        let owner = app.create_client(spec("read", &[API])).await;
        let stranger = app.create_client(spec("read", &[API])).await;
        let rs = resource_server(&app).await;
        let token = app.access_token(&owner).await;
        assert_inactive(&app.introspect(&stranger, &token).await);
        assert_eq!(app.introspect(&rs, &token).await["active"], true);
        assert_eq!(app.introspect(&owner, &token).await["active"], true);
    }
}

both_backends! {
    async fn introspection_requires_client_authentication(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let token = app.access_token(&client).await;
        let none = app.post_form("/oauth2/introspect", &[("token", &token)], None).await;
        assert_eq!(none.status(), 401);
        let wrong = app
            .post_form("/oauth2/introspect", &[("token", &token)], Some((&client.id, "tsec_wrong")))
            .await;
        assert_eq!(wrong.status(), 401);
        assert_eq!(wrong.headers()["www-authenticate"], "Basic realm=\"tessera\"");
        let missing = app.post_form("/oauth2/introspect", &[], Some((&client.id, &client.secret))).await;
        assert_eq!(missing.status(), 400);
    }
}

both_backends! {
    async fn expired_revoked_cut_off_and_deleted_tokens_are_inactive(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;

        let revoked = app.access_token(&client).await;
        assert_eq!(app.revoke(&client, &revoked).await.status(), 200);
        assert_inactive(&app.introspect(&rs, &revoked).await);

        let cut_off = app.access_token(&client).await;
        app.revoke_all(&client.id).await;
        assert_inactive(&app.introspect(&rs, &cut_off).await);
        let fresh = app.access_token(&client).await;
        assert_eq!(app.introspect(&rs, &fresh).await["active"], true, "new tokens work after a revoke-all");

        app.clock.advance(301);
        assert_inactive(&app.introspect(&rs, &fresh).await);

        let gone = app.create_client(spec("read", &[API])).await;
        let orphan = app.access_token(&gone).await;
        app.delete_client(&gone.id).await;
        assert_inactive(&app.introspect(&rs, &orphan).await);

        let off = app.create_client(spec("read", &[API])).await;
        let disabled = app.access_token(&off).await;
        app.disable_client(&off.id).await;
        assert_inactive(&app.introspect(&rs, &disabled).await);
    }
}

/// Each forged-token case from security-checklist.md group (e), as its own
/// test: introspection must answer exactly `{"active": false}`.
macro_rules! forged {
    ($name:ident, |$app:ident, $client:ident, $token:ident| $forge:expr) => {
        both_backends! {
            async fn $name(backend) {
                let $app = spawn_app(&backend).await;
                let rs = resource_server(&$app).await;
                let $client = $app.create_client(spec("read", &[API])).await;
                let $token = $app.access_token(&$client).await;
                assert_eq!($app.introspect(&rs, &$token).await["active"], true, "the genuine token");
                let forged: String = $forge;
                assert_inactive(&$app.introspect(&rs, &forged).await);
            }
        }
    };
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.').map(str::to_owned);
    (
        it.next().expect("header"),
        it.next().expect("payload"),
        it.next().expect("signature"),
    )
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts(token).0).expect("b64")).expect("JSON")
}

forged!(garbage_is_inactive, |app, client, token| {
    let _ = (&app, &client, &token);
    "not a token at all".to_owned()
});

forged!(
    alg_none_in_every_casing_is_inactive,
    |app, client, token| {
        let _ = (&app, &client);
        let (_, p, _) = parts(&token);
        let kid = header_of(&token)["kid"].clone();
        // One case per run would need four tests; the last is checked by the
        // macro, the others here.
        for alg in ["none", "None", "NONE"] {
            let h = b64(json!({"alg": alg, "typ": "at+jwt", "kid": kid})
                .to_string()
                .as_bytes());
            let answer = app
                .introspect(&resource_server(&app).await, &format!("{h}.{p}."))
                .await;
            assert_inactive(&answer);
        }
        let h = b64(json!({"alg": "nOnE", "typ": "at+jwt", "kid": kid})
            .to_string()
            .as_bytes());
        format!("{h}.{p}.")
    }
);

forged!(a_modified_payload_is_inactive, |app, client, token| {
    let _ = (&app, &client);
    let (h, p, s) = parts(&token);
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("JSON");
    claims["scope"] = json!("read admin");
    format!("{h}.{}.{s}", b64(claims.to_string().as_bytes()))
});

forged!(
    a_truncated_or_missing_signature_is_inactive,
    |app, client, token| {
        let _ = (&app, &client);
        let (h, p, s) = parts(&token);
        let _ = s;
        format!("{h}.{p}.")
    }
);

forged!(
    the_all_zero_ecdsa_signature_is_inactive,
    |app, client, token| {
        let _ = (&app, &client);
        let (h, p, _) = parts(&token);
        format!("{h}.{p}.{}", b64(&[0u8; 64]))
    }
);

forged!(a_der_encoded_signature_is_inactive, |app, client, token| {
    let _ = (&app, &client);
    let (h, p, _) = parts(&token);
    // r = s = 0 in DER, the CVE-2022-21449 shape.
    format!("{h}.{p}.MAYCAQACAQA")
});

forged!(
    hs256_keyed_with_the_public_key_is_inactive,
    |app, client, token| {
        let _ = &client;
        let (_, p, _) = parts(&token);
        let header = header_of(&token);
        let jwks = app.jwks().await;
        let jwk = jwks["keys"][0].to_string();
        let h = b64(
            json!({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]})
                .to_string()
                .as_bytes(),
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwk.as_bytes());
        let tag = ring::hmac::sign(&key, format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", b64(tag.as_ref()))
    }
);

forged!(
    a_token_signed_by_a_foreign_key_is_inactive,
    |app, client, token| {
        let _ = &token;
        let rng = ring::rand::SystemRandom::new();
        let foreign =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        // Claiming our kid: the signature cannot verify.
        let (kid, _) = app.signing_key();
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string();
        sign_raw(foreign.as_ref(), &header, &claims_json(&app, &client.id))
    }
);

forged!(
    an_embedded_jwk_or_jku_is_never_trusted_or_fetched,
    |app, client, token| {
        let _ = &token;
        // A listener standing in for the attacker's server: nothing may connect.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let jku = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
        let rng = ring::rand::SystemRandom::new();
        let attacker =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, attacker.as_ref(), &rng)
                .expect("key");
        let point = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        let jwk =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])});
        let claims = claims_json(&app, &client.id);
        for header in [
            json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker", "jku": jku}),
            json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker", "x5u": jku}),
        ] {
            let forged = sign_raw(attacker.as_ref(), &header.to_string(), &claims);
            assert_inactive(&app.introspect(&resource_server(&app).await, &forged).await);
        }
        assert!(
            listener.accept().is_err(),
            "the verifier fetched an attacker URL"
        );
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker", "jwk": jwk});
        sign_raw(attacker.as_ref(), &header.to_string(), &claims)
    }
);

forged!(
    a_kid_with_traversal_or_injection_is_inactive,
    |app, client, token| {
        let _ = &token;
        let (_, pkcs8) = app.signing_key();
        let claims = claims_json(&app, &client.id);
        for kid in [
            "../../../../../../dev/null",
            "x' UNION SELECT '1';--",
            "|sleep 10",
            "",
        ] {
            let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string();
            assert_inactive(
                &app.introspect(
                    &resource_server(&app).await,
                    &sign_raw(&pkcs8, &header, &claims),
                )
                .await,
            );
        }
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": {"$ne": null}}).to_string();
        sign_raw(&pkcs8, &header, &claims)
    }
);

forged!(a_wrong_or_missing_typ_is_inactive, |app, client, token| {
    let _ = &token;
    let (kid, pkcs8) = app.signing_key();
    let claims = claims_json(&app, &client.id);
    for typ in ["JWT", "jwt", "dpop+jwt"] {
        let header = json!({"alg": "ES256", "typ": typ, "kid": kid}).to_string();
        assert_inactive(
            &app.introspect(
                &resource_server(&app).await,
                &sign_raw(&pkcs8, &header, &claims),
            )
            .await,
        );
    }
    // The accepted spellings of RFC 9068 §4, with the same key and claims.
    for typ in ["application/at+jwt", "AT+JWT"] {
        let header = json!({"alg": "ES256", "typ": typ, "kid": kid}).to_string();
        let answer = app
            .introspect(
                &resource_server(&app).await,
                &sign_raw(&pkcs8, &header, &claims),
            )
            .await;
        assert_eq!(answer["active"], true, "{typ}");
    }
    sign_raw(
        &pkcs8,
        &json!({"alg": "ES256", "kid": kid}).to_string(),
        &claims,
    )
});

forged!(
    crit_cty_and_duplicate_header_members_are_inactive,
    |app, client, token| {
        let _ = &token;
        let (kid, pkcs8) = app.signing_key();
        let claims = claims_json(&app, &client.id);
        for header in [
            json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": ["foo"], "foo": 1})
                .to_string(),
            json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "cty": "JWT"}).to_string(),
        ] {
            assert_inactive(
                &app.introspect(
                    &resource_server(&app).await,
                    &sign_raw(&pkcs8, &header, &claims),
                )
                .await,
            );
        }
        let duplicate = format!(r#"{{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"{kid}"}}"#);
        sign_raw(&pkcs8, &duplicate, &claims)
    }
);

forged!(
    claims_of_the_wrong_type_or_missing_are_inactive,
    |app, client, token| {
        let _ = &token;
        let (kid, pkcs8) = app.signing_key();
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string();
        let good: Value = serde_json::from_str(&claims_json(&app, &client.id)).expect("JSON");
        let mut variants: Vec<Value> = Vec::new();
        for (claim, value) in [
            ("exp", json!("9999999999")),
            ("exp", json!(1e308)),
            ("exp", json!(1.5)),
            ("exp", json!(true)),
            ("exp", Value::Null),
            ("nbf", json!("0")),
            ("scope", json!(["read"])),
            ("iss", json!("https://evil.example.com")),
        ] {
            let mut c = good.clone();
            c[claim] = value;
            variants.push(c);
        }
        for claim in ["exp", "iat", "jti", "sub", "client_id", "iss"] {
            let mut c = good.clone();
            c.as_object_mut().expect("object").remove(claim);
            variants.push(c);
        }
        for c in variants {
            let forged = sign_raw(&pkcs8, &header, &c.to_string());
            assert_inactive(&app.introspect(&resource_server(&app).await, &forged).await);
        }
        // The same claims untouched are active: the variants failed for their flaw.
        assert_eq!(
            app.introspect(
                &resource_server(&app).await,
                &sign_raw(&pkcs8, &header, &good.to_string())
            )
            .await["active"],
            true
        );
        let text = good.to_string();
        let duplicate_sub = format!(r#"{},"sub":"someone-else"}}"#, &text[..text.len() - 1]);
        sign_raw(&pkcs8, &header, &duplicate_sub)
    }
);

forged!(a_token_not_yet_valid_is_inactive, |app, client, token| {
    let _ = &token;
    let (kid, pkcs8) = app.signing_key();
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string();
    let mut c: Value = serde_json::from_str(&claims_json(&app, &client.id)).expect("JSON");
    c["nbf"] = json!(app.clock_now() + 3600);
    sign_raw(&pkcs8, &header, &c.to_string())
});

forged!(
    the_wrong_number_of_parts_or_padding_is_inactive,
    |app, client, token| {
        let _ = &client;
        let (h, p, s) = parts(&token);
        for bad in [
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.{s}"),
            format!("{h}.{p}.{s}.{s}.{s}"),
            format!(".{h}.{p}.{s}"),
            format!("{h}.{p}.{s}."),
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}.{s}=="),
            format!("{h}.{p} .{s}"),
            "x".repeat(10_000),
        ] {
            assert_inactive(&app.introspect(&resource_server(&app).await, &bad).await);
        }
        format!("{h}..{s}")
    }
);

forged!(
    an_algorithm_other_than_the_keys_is_inactive,
    |app, client, token| {
        let _ = &token;
        let (kid, pkcs8) = app.signing_key();
        let claims = claims_json(&app, &client.id);
        for alg in ["ES384", "RS256", "PS256"] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid}).to_string();
            assert_inactive(
                &app.introspect(
                    &resource_server(&app).await,
                    &sign_raw(&pkcs8, &header, &claims),
                )
                .await,
            );
        }
        sign_raw(
            &pkcs8,
            &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}).to_string(),
            &claims,
        )
    }
);

both_backends! {
    async fn a_high_s_twin_of_a_revoked_token_is_inactive_too(backend) {
        // ECDSA signatures are malleable: (r, n - s) verifies too. Revocation
        // is by jti, so the twin dies with the original (checklist D9).
        const N: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
        ];
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let token = app.access_token(&client).await;
        let (h, p, s) = parts(&token);
        let sig = URL_SAFE_NO_PAD.decode(s).expect("b64");
        let mut twin = sig[..32].to_vec();
        let mut borrow = 0i16;
        let mut s_twin = [0u8; 32];
        for i in (0..32).rev() {
            let d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
            borrow = i16::from(d < 0);
            s_twin[i] = (d + 256 * borrow) as u8;
        }
        twin.extend_from_slice(&s_twin);
        let twin = format!("{h}.{p}.{}", b64(&twin));
        assert_eq!(app.revoke(&client, &token).await.status(), 200);
        assert_inactive(&app.introspect(&rs, &token).await);
        assert_inactive(&app.introspect(&rs, &twin).await);
    }
}

both_backends! {
    async fn a_client_recreated_under_a_deleted_id_does_not_revive_old_tokens(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let mut named = spec("read", &[API]);
        named.id = Some("billing".to_owned());
        let old = app.create_client(named.clone()).await;
        let old_token = app.access_token(&old).await;
        app.delete_client("billing").await;
        app.clock.advance(1);
        let new = app.create_client(named).await;
        assert_inactive(&app.introspect(&rs, &old_token).await);
        let new_token = app.access_token(&new).await;
        assert_eq!(app.introspect(&rs, &new_token).await["active"], true);
    }
}
