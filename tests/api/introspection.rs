//! Introspection (RFC 7662): what is active, for whom, and every forged or
//! dead token answered with exactly `{"active": false}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestClient, claims_of, sign_raw, spawn_app, spawn_app_with, spec};

const API: &str = "https://api.example.com";

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
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
    async fn an_expired_access_token_is_inactive(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let token = app.access_token(&client).await;
        app.clock.advance(299);
        assert_eq!(app.introspect(&rs, &token).await["active"], true, "a second before exp");
        app.clock.advance(1);
        assert_inactive(&app.introspect(&rs, &token).await);
    }
}

both_backends! {
    async fn a_revoked_access_token_is_inactive(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let revoked = app.access_token(&client).await;
        let other = app.access_token(&client).await;
        assert_eq!(app.introspect(&rs, &revoked).await["active"], true);
        assert_eq!(app.revoke(&client, &revoked).await.status(), 200);
        assert_inactive(&app.introspect(&rs, &revoked).await);
        assert_eq!(app.introspect(&rs, &other).await["active"], true, "only that token");
    }
}

both_backends! {
    async fn a_cut_off_access_token_is_inactive(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let cut_off = app.access_token(&client).await;
        assert_eq!(app.introspect(&rs, &cut_off).await["active"], true);
        app.revoke_all(&client.id).await;
        assert_inactive(&app.introspect(&rs, &cut_off).await);
        let fresh = app.access_token(&client).await;
        assert_eq!(app.introspect(&rs, &fresh).await["active"], true, "new tokens work after a revoke-all");
    }
}

both_backends! {
    async fn a_deleted_clients_access_token_is_inactive(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let gone = app.create_client(spec("read", &[API])).await;
        let orphan = app.access_token(&gone).await;
        assert_eq!(app.introspect(&rs, &orphan).await["active"], true);
        app.delete_client(&gone.id).await;
        assert_inactive(&app.introspect(&rs, &orphan).await);
    }
}

both_backends! {
    async fn a_disabled_clients_access_token_is_inactive(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let off = app.create_client(spec("read", &[API])).await;
        let disabled = app.access_token(&off).await;
        assert_eq!(app.introspect(&rs, &disabled).await["active"], true);
        app.disable_client(&off.id).await;
        assert_inactive(&app.introspect(&rs, &disabled).await);
    }
}

/// Each forged-token case from security-checklist.md group (e), as its own
/// test: introspection must answer exactly `{"active": false}`.
macro_rules! forged {
    ($name:ident, |$app:ident, $client:ident, $token:ident| $forge:expr) => {
        forged!($name, settings: |_| {}, |$app, $client, $token| $forge);
    };
    ($name:ident, settings: $tweak:expr, |$app:ident, $client:ident, $token:ident| $forge:expr) => {
        both_backends! {
            async fn $name(backend) {
                let $app = spawn_app_with(&backend, $tweak).await;
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

/// `header.payload` of `token` re-signed with HS256 keyed by `key`: the
/// algorithm-confusion attack, where a verifier that lets the token pick the
/// algorithm uses the public key it holds as an HMAC secret.
fn hs256_with(token: &str, key: &[u8]) -> String {
    let (_, p, _) = parts(token);
    let header = header_of(token);
    let h = b64(
        json!({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]})
            .to_string()
            .as_bytes(),
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", b64(tag.as_ref()))
}

/// The server's published P-256 key as DER SubjectPublicKeyInfo, built from
/// its JWK: the fixed prefix for id-ecPublicKey on prime256v1, then the
/// uncompressed point.
async fn public_key_spki_der(app: &TestApp) -> Vec<u8> {
    let jwks = app.jwks().await;
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["crv"], "P-256");
    let coordinate = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect("coordinate"))
            .expect("base64url")
    };
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    der.extend(coordinate("x"));
    der.extend(coordinate("y"));
    der
}

forged!(
    hs256_keyed_with_the_public_jwk_text_is_inactive,
    |app, client, token| {
        let _ = &client;
        let jwks = app.jwks().await;
        hs256_with(&token, jwks["keys"][0].to_string().as_bytes())
    }
);

forged!(
    hs256_keyed_with_the_public_key_as_pem_is_inactive,
    |app, client, token| {
        let _ = &client;
        let der = public_key_spki_der(&app).await;
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ASCII"))
            .collect();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        );
        // The file as `openssl ec -pubout` writes it, and without its last
        // newline: either could be what a confused verifier keys with.
        assert_inactive(
            &app.introspect(
                &resource_server(&app).await,
                &hs256_with(&token, pem.trim_end().as_bytes()),
            )
            .await,
        );
        hs256_with(&token, pem.as_bytes())
    }
);

forged!(
    hs256_keyed_with_the_public_key_as_der_spki_is_inactive,
    |app, client, token| {
        let _ = &client;
        hs256_with(&token, &public_key_spki_der(&app).await)
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

/// A key of the attacker's own: its PKCS#8 document and public JWK.
fn attacker_key() -> (Vec<u8>, Value) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key");
    let point = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])});
    (pkcs8.as_ref().to_vec(), jwk)
}

/// A token signed by the attacker's key whose header points at a key set
/// on the attacker's server (`member` is `jku` or `x5u`). A listener stands
/// in for that server: introspection must answer inactive without anything
/// connecting to it.
async fn pointing_at_the_attackers_server(
    app: &TestApp,
    client: &TestClient,
    member: &str,
) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}/keys", listener.local_addr().expect("addr"));
    let (pkcs8, _) = attacker_key();
    let mut header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "attacker"});
    header[member] = json!(url);
    let forged = sign_raw(&pkcs8, &header.to_string(), &claims_json(app, &client.id));
    assert_inactive(&app.introspect(&resource_server(app).await, &forged).await);
    assert!(
        listener.accept().is_err(),
        "the server fetched the {member} URL"
    );
    forged
}

forged!(
    a_jku_header_is_never_fetched_or_trusted,
    |app, client, token| {
        let _ = &token;
        pointing_at_the_attackers_server(&app, &client, "jku").await
    }
);

forged!(
    an_x5u_header_is_never_fetched_or_trusted,
    |app, client, token| {
        let _ = &token;
        pointing_at_the_attackers_server(&app, &client, "x5u").await
    }
);

forged!(an_embedded_jwk_is_never_trusted, |app, client, token| {
    let _ = &token;
    // Under the server's own kid, so a verifier preferring the embedded key
    // over its own would accept the attacker's signature.
    let (kid, _) = app.signing_key();
    let (pkcs8, jwk) = attacker_key();
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "jwk": jwk});
    sign_raw(&pkcs8, &header.to_string(), &claims_json(&app, &client.id))
});

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

/// One forged-token test per flawed claim set: the server's own key signs
/// the claims a token issued now would carry, after `$flaw` has changed
/// them, so only the rule under test can refuse the token. The same claims
/// unchanged are checked active first.
macro_rules! forged_claims {
    ($name:ident, |$claims:ident, $app:ident| $flaw:expr) => {
        forged_claims!($name, settings: |_| {}, |$claims, $app| $flaw);
    };
    ($name:ident, settings: $tweak:expr, |$claims:ident, $app:ident| $flaw:expr) => {
        forged!($name, settings: $tweak, |$app, client, token| {
            let _ = &token;
            let (kid, pkcs8) = $app.signing_key();
            let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string();
            let good: Value = serde_json::from_str(&claims_json(&$app, &client.id)).expect("JSON");
            let unflawed = sign_raw(&pkcs8, &header, &good.to_string());
            assert_eq!(
                $app.introspect(&resource_server(&$app).await, &unflawed).await["active"],
                true,
                "the claims without the flaw"
            );
            #[allow(unused_mut)]
            let mut $claims = good;
            $flaw;
            sign_raw(&pkcs8, &header, &$claims.to_string())
        });
    };
}

fn without(claims: &mut Value, claim: &str) {
    claims.as_object_mut().expect("object").remove(claim);
}

forged_claims!(exp_as_a_string_is_inactive, |c, app| c["exp"] =
    json!("9999999999"));
forged_claims!(exp_as_1e308_is_inactive, |c, app| c["exp"] = json!(1e308));
forged_claims!(exp_as_a_fraction_is_inactive, |c, app| c["exp"] =
    json!(1.5));
forged_claims!(exp_as_a_boolean_is_inactive, |c, app| c["exp"] =
    json!(true));
forged_claims!(exp_as_null_is_inactive, |c, app| c["exp"] = Value::Null);
forged_claims!(nbf_as_a_string_is_inactive, |c, app| c["nbf"] = json!("0"));
forged_claims!(scope_as_an_array_is_inactive, |c, app| c["scope"] =
    json!(["read"]));

forged_claims!(a_missing_exp_is_inactive, |c, app| without(&mut c, "exp"));
forged_claims!(a_missing_iat_is_inactive, |c, app| without(&mut c, "iat"));
forged_claims!(a_missing_nbf_is_inactive, |c, app| without(&mut c, "nbf"));
forged_claims!(a_missing_jti_is_inactive, |c, app| without(&mut c, "jti"));
forged_claims!(a_missing_sub_is_inactive, |c, app| without(&mut c, "sub"));
forged_claims!(a_missing_client_id_is_inactive, |c, app| without(
    &mut c,
    "client_id"
));
forged_claims!(a_missing_iss_is_inactive, |c, app| without(&mut c, "iss"));
forged_claims!(a_missing_aud_is_inactive, |c, app| without(&mut c, "aud"));
forged_claims!(a_missing_scope_is_inactive, |c, app| without(
    &mut c, "scope"
));

forged_claims!(an_iss_of_another_host_is_inactive, |c, app| {
    c["iss"] = json!("https://evil.example.com")
});
forged_claims!(an_iss_with_a_trailing_slash_is_inactive, |c, app| {
    c["iss"] = json!(format!("{}/", app.issuer))
});

/// An issuer with letters in its host, so that case can differ.
fn named_issuer(s: &mut tessera::config::Settings) {
    s.issuer = Some("https://auth.example.com".to_owned());
}

forged_claims!(an_iss_with_an_upper_case_host_is_inactive, settings: named_issuer, |c, app| {
    assert_eq!(app.issuer, "https://auth.example.com");
    c["iss"] = json!("https://AUTH.example.com")
});
forged_claims!(an_iss_with_an_upper_case_scheme_is_inactive, settings: named_issuer, |c, app| {
    c["iss"] = json!("HTTPS://auth.example.com")
});

forged_claims!(an_nbf_one_second_past_the_leeway_is_inactive, |c, app| {
    c["nbf"] = json!(app.clock_now() + app.settings.clock_leeway + 1)
});
forged_claims!(an_iat_one_second_past_the_leeway_is_inactive, |c, app| {
    c["iat"] = json!(app.clock_now() + app.settings.clock_leeway + 1)
});

forged!(a_duplicate_sub_claim_is_inactive, |app, client, token| {
    let _ = &token;
    let (kid, pkcs8) = app.signing_key();
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string();
    let text = claims_json(&app, &client.id);
    let duplicate_sub = format!(r#"{},"sub":"someone-else"}}"#, &text[..text.len() - 1]);
    sign_raw(&pkcs8, &header, &duplicate_sub)
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
