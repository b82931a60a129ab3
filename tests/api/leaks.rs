//! Errors and logs leak nothing (issue #11, item 5): every endpoint is
//! provoked into its error answers, with secrets in every place a careless
//! caller puts them (a wrong secret, a secret as a client id, in a scope, a
//! resource, a query string, a path, a JSON body, a bearer header), and no
//! response body or header, and no line of the server's trace-level log for
//! the whole run, may contain any secret of the run: client secrets (the
//! rotated and created ones too), access and refresh tokens, admin tokens,
//! `Authorization` header values, the key-encryption key, the private
//! signing key, and the wrong secrets the caller itself presented.
//!
//! A handler that panics answers a generic JSON 500 that says nothing of
//! the panic: `discovery::a_panicking_handler_becomes_a_generic_json_500`
//! proves it, with the middleware the server wraps every route in.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, RequestBuilder};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, ProcessConfig, TestClient, basic_header, claims_of, encode_form, spawn_app_with, spec,
    start_binary_logging,
};

const API: &str = "https://api.example.com";
const FORM: &str = "application/x-www-form-urlencoded";

/// Every secret of the run, with what it is (the failure message names
/// that, not the secret).
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: impl Into<String>, secret: impl Into<String>) {
        let (what, secret) = (what.into(), secret.into());
        // A JWT's signature is its unforgeable part: leaked alone, it is
        // still a leak (the header and claims are no secret).
        if let Some(signature) = secret
            .strip_prefix("eyJ")
            .and_then(|t| t.rsplit('.').next())
        {
            self.0
                .push((format!("the signature of {what}"), signature.to_owned()));
        }
        self.0.push((what, secret));
    }

    fn add_bytes(&mut self, what: &str, bytes: &[u8]) {
        self.add(format!("{what} (base64url)"), URL_SAFE_NO_PAD.encode(bytes));
        self.add(format!("{what} (base64)"), STANDARD.encode(bytes));
        self.add(
            format!("{what} (hex)"),
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        );
    }

    /// What of `text` is a secret.
    fn found_in(&self, text: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, s)| text.contains(s.as_str()))
            .map(|(what, _)| what.as_str())
            .collect()
    }
}

/// One provoked answer.
struct Seen {
    label: String,
    expected: u16,
    status: u16,
    /// Every header, as `name: value` lines.
    headers: String,
    body: String,
}

/// Builds requests to the server.
struct Requests {
    http: reqwest::Client,
    base: String,
}

impl Requests {
    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A form POST with an optional `Authorization` value.
    fn form(&self, path: &str, auth: Option<String>, body: String) -> RequestBuilder {
        let mut req = self
            .req(Method::POST, path)
            .header("content-type", FORM)
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req
    }
}

/// Sends provocations and keeps what they were answered.
#[derive(Default)]
struct Prober {
    seen: Vec<Seen>,
}

impl Prober {
    async fn probe(&mut self, label: &str, expected: u16, req: RequestBuilder) {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let body = String::from_utf8_lossy(&resp.bytes().await.expect("body")).into_owned();
        self.seen.push(Seen {
            label: label.to_owned(),
            expected,
            status,
            headers,
            body,
        });
    }
}

/// A JSON answer that must be 2xx: the run's successful calls.
async fn ok_json(req: RequestBuilder) -> Value {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON");
    assert!(status.is_success(), "{status}: {body}");
    body
}

fn field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {body}"))
        .to_owned()
}

/// Signs `claims` with the server's own key: a token whose only fault is
/// the one the caller put in its claims.
fn sign(pkcs8: &[u8], kid: &str, claims: &Value) -> String {
    let rng = ring::rand::SystemRandom::new();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).expect("key");
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = pair.sign(&rng, input.as_bytes()).expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// The private scalar inside a PKCS#8 P-256 key: the 32-byte OCTET STRING
/// after the ECPrivateKey version (`02 01 01 04 20`).
fn private_scalar(pkcs8: &[u8]) -> Vec<u8> {
    let at = pkcs8
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("an ECPrivateKey in the PKCS#8 document");
    pkcs8[at + 5..at + 5 + 32].to_vec()
}

fn random_secret(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(tessera::crypto::random::bytes::<32>().expect("random"))
    )
}

/// The clients of the run, and the wrong values a careless caller sends.
struct Cast {
    client: TestClient,
    other: TestClient,
    /// No refresh tokens.
    plain: TestClient,
    /// May introspect and read the feed.
    rs: TestClient,
    admin: TestClient,
    /// The admin scope, with tokens for another audience.
    admin_elsewhere: TestClient,
    /// Tokens for this issuer (the admin API's audience), without the
    /// admin scope.
    reader: TestClient,
    wrong_secret: String,
    wrong_refresh: String,
    wrong_bearer: String,
}

/// The tokens of the run, good and spoiled.
struct Tokens {
    at: String,
    /// `at`'s refresh token, rotated once: this is the live successor.
    rt: String,
    other_at: String,
    other_rt: String,
    admin: String,
    elsewhere: String,
    reader: String,
    revoked_admin: String,
    expired_admin: String,
    reused: String,
    of_revoked_family: String,
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(c: &TestClient) -> Option<String> {
    Some(basic_header(&c.id, &c.secret))
}

const CC: &str = "grant_type=client_credentials";

fn refresh_form(token: &str) -> String {
    encode_form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
}

async fn access_token(r: &Requests, c: &TestClient) -> Value {
    ok_json(r.form("/oauth2/token", basic(c), CC.to_owned())).await
}

/// The run's successful calls: every token and secret they hand out joins
/// `secrets`.
async fn good_calls(
    r: &Requests,
    c: &Cast,
    kid: &str,
    pkcs8: &[u8],
    secrets: &mut Secrets,
) -> Tokens {
    let issued = access_token(r, &c.client).await;
    let refreshed = ok_json(r.form(
        "/oauth2/token",
        basic(&c.client),
        refresh_form(&field(&issued, "refresh_token")),
    ))
    .await;
    let others = access_token(r, &c.other).await;
    let admin = field(&access_token(r, &c.admin).await, "access_token");
    let revoked_admin = field(&access_token(r, &c.admin).await, "access_token");
    let revoked = r
        .form(
            "/oauth2/revoke",
            basic(&c.admin),
            encode_form(&[("token", &revoked_admin)]),
        )
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    // The admin token's own claims, signed again by the server's key: once
    // as they are (the control), once expired.
    let now = tessera::clock::Clock::now(&tessera::clock::SystemClock);
    let mut claims = claims_of(&admin);
    claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let forged = sign(pkcs8, kid, &claims);
    let control = r
        .req(Method::GET, "/admin/clients")
        .header("authorization", bearer(&forged))
        .send()
        .await
        .expect("admin");
    assert_eq!(
        control.status(),
        200,
        "the re-signed admin token is good but for its times"
    );
    for (claim, value) in [
        ("iat", now - 7200),
        ("nbf", now - 7200),
        ("exp", now - 3600),
    ] {
        claims[claim] = json!(value);
    }
    claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let expired_admin = sign(pkcs8, kid, &claims);
    // Secrets made through the admin API.
    let created = ok_json(
        r.req(Method::POST, "/admin/clients")
            .header("authorization", bearer(&admin))
            .json(&json!({"name": "made", "scope": "read", "audiences": [API]})),
    )
    .await;
    let rotated = ok_json(
        r.req(
            Method::POST,
            &format!("/admin/clients/{}/rotate-secret", c.plain.id),
        )
        .header("authorization", bearer(&admin))
        .json(&json!({"grace_seconds": 3600})),
    )
    .await;
    secrets.add(
        "a secret the admin API created",
        field(&created, "client_secret"),
    );
    secrets.add(
        "a secret the admin API rotated",
        field(&rotated, "client_secret"),
    );
    // A family whose first token is presented again after its rotation.
    let stolen = access_token(r, &c.client).await;
    let thief = ok_json(r.form(
        "/oauth2/token",
        basic(&c.client),
        refresh_form(&field(&stolen, "refresh_token")),
    ))
    .await;

    let tokens = Tokens {
        at: field(&issued, "access_token"),
        rt: field(&refreshed, "refresh_token"),
        other_at: field(&others, "access_token"),
        other_rt: field(&others, "refresh_token"),
        admin,
        elsewhere: field(&access_token(r, &c.admin_elsewhere).await, "access_token"),
        reader: field(&access_token(r, &c.reader).await, "access_token"),
        revoked_admin,
        expired_admin,
        reused: field(&stolen, "refresh_token"),
        of_revoked_family: field(&thief, "refresh_token"),
    };
    for (what, token) in [
        ("an access token", field(&issued, "access_token")),
        ("a refresh token", field(&issued, "refresh_token")),
        (
            "a refreshed access token",
            field(&refreshed, "access_token"),
        ),
        ("a refreshed refresh token", tokens.rt.clone()),
        ("another client's access token", tokens.other_at.clone()),
        ("another client's refresh token", tokens.other_rt.clone()),
        ("an admin token", tokens.admin.clone()),
        (
            "an admin token for another audience",
            tokens.elsewhere.clone(),
        ),
        ("a token without the admin scope", tokens.reader.clone()),
        ("a revoked admin token", tokens.revoked_admin.clone()),
        ("a re-signed admin token", forged),
        ("an expired admin token", tokens.expired_admin.clone()),
        ("a refresh token later reused", tokens.reused.clone()),
        (
            "the access token of a reused family",
            field(&stolen, "access_token"),
        ),
        (
            "the successor of a reused token",
            tokens.of_revoked_family.clone(),
        ),
        (
            "the successor's access token",
            field(&thief, "access_token"),
        ),
    ] {
        secrets.add(format!("a bearer header with {what}"), bearer(&token));
        secrets.add(what, token);
    }
    tokens
}

/// `POST /oauth2/token`, every way it can be wrong.
async fn provoke_token(r: &Requests, p: &mut Prober, c: &Cast, t: &Tokens) {
    let (client, wrong) = (&c.client, &c.wrong_secret);
    let token = |auth: Option<String>, body: String| r.form("/oauth2/token", auth, body);
    let cc = || CC.to_owned();
    let cases = [
        (
            "wrong secret (Basic)",
            401,
            token(Some(basic_header(&client.id, wrong)), cc()),
        ),
        (
            "wrong secret (body)",
            401,
            token(
                None,
                encode_form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client.id),
                    ("client_secret", wrong),
                ]),
            ),
        ),
        (
            "unknown client",
            401,
            token(Some(basic_header("no-such-client", &client.secret)), cc()),
        ),
        (
            "a secret as the client id",
            401,
            token(Some(basic_header(&client.secret, &client.id)), cc()),
        ),
        (
            "a secret as the client id (body)",
            401,
            token(
                None,
                encode_form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client.secret),
                ]),
            ),
        ),
        ("no credentials", 401, token(None, cc())),
        (
            "a bearer token instead of credentials",
            401,
            token(Some(bearer(&t.at)), cc()),
        ),
        (
            "malformed Basic",
            401,
            token(Some(format!("Basic {wrong}")), cc()),
        ),
        (
            "a secret as the grant type",
            400,
            token(basic(client), encode_form(&[("grant_type", wrong)])),
        ),
        ("no grant type", 400, token(basic(client), String::new())),
        (
            "a repeated parameter",
            400,
            token(basic(client), format!("{CC}&{CC}&scope={wrong}")),
        ),
        (
            "an unknown refresh token",
            400,
            token(basic(client), refresh_form(&c.wrong_refresh)),
        ),
        (
            "a secret as the refresh token",
            400,
            token(basic(client), refresh_form(&client.secret)),
        ),
        (
            "an access token as the refresh token",
            400,
            token(basic(client), refresh_form(&t.at)),
        ),
        (
            "another client's refresh token",
            400,
            token(basic(client), refresh_form(&t.other_rt)),
        ),
        (
            "refresh for a client without refresh tokens",
            400,
            token(basic(&c.plain), refresh_form(&t.rt)),
        ),
        (
            "a reused refresh token",
            400,
            token(basic(client), refresh_form(&t.reused)),
        ),
        (
            "a refresh token of a revoked family",
            400,
            token(basic(client), refresh_form(&t.of_revoked_family)),
        ),
        (
            "a secret in the scope",
            400,
            token(
                basic(client),
                encode_form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", &format!("read {wrong}")),
                ]),
            ),
        ),
        (
            "a secret in the refresh scope",
            400,
            token(
                basic(client),
                format!("{}&scope={wrong}", refresh_form(&t.rt)),
            ),
        ),
        (
            "a secret in the resource",
            400,
            token(
                basic(client),
                encode_form(&[
                    ("grant_type", "client_credentials"),
                    ("resource", &format!("https://evil.example/{wrong}")),
                ]),
            ),
        ),
        (
            "a malformed body",
            400,
            token(basic(client), format!("{CC}&scope=%ZZ&x={wrong}")),
        ),
        (
            "a body not UTF-8",
            400,
            token(basic(client), format!("{CC}&scope=%FF{wrong}")),
        ),
        (
            "a JSON body",
            400,
            r.req(Method::POST, "/oauth2/token")
                .header("authorization", basic_header(&client.id, &client.secret))
                .json(&json!({"grant_type": "client_credentials", "client_secret": wrong})),
        ),
        (
            "an oversized body",
            413,
            token(basic(client), format!("{CC}&pad={}", wrong.repeat(4000))),
        ),
        (
            "credentials in the query string",
            400,
            r.form(
                &format!(
                    "/oauth2/token?client_id={}&client_secret={wrong}",
                    client.id
                ),
                None,
                cc(),
            ),
        ),
        (
            "credentials twice",
            400,
            token(
                basic(client),
                encode_form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client.id),
                    ("client_secret", &client.secret),
                ]),
            ),
        ),
        (
            "GET with a secret in the query",
            405,
            r.req(
                Method::GET,
                &format!(
                    "/oauth2/token?grant_type=client_credentials&client_secret={}",
                    client.secret
                ),
            ),
        ),
        (
            "PUT",
            405,
            r.req(Method::PUT, "/oauth2/token")
                .header("authorization", basic_header(&client.id, &client.secret))
                .body(cc()),
        ),
    ];
    for (label, expected, req) in cases {
        p.probe(&format!("token: {label}"), expected, req).await;
    }
}

/// `POST /oauth2/revoke` and `POST /oauth2/introspect`. A bad token is
/// answered 200 by design (RFC 7009 §2.2, RFC 7662 §2.2), and must not be
/// echoed either.
async fn provoke_revoke_and_introspect(r: &Requests, p: &mut Prober, c: &Cast, t: &Tokens) {
    let (client, rs, wrong) = (&c.client, &c.rs, &c.wrong_secret);
    let of = |token: &str| encode_form(&[("token", token)]);
    let revoke = |auth: Option<String>, body: String| r.form("/oauth2/revoke", auth, body);
    let introspect = |auth: Option<String>, body: String| r.form("/oauth2/introspect", auth, body);
    let cases = [
        (
            "revoke: wrong secret",
            401,
            revoke(Some(basic_header(&client.id, wrong)), of(&t.at)),
        ),
        ("revoke: no credentials", 401, revoke(None, of(&t.at))),
        (
            "revoke: a secret as the client id",
            401,
            revoke(Some(basic_header(&client.secret, &client.id)), of(&t.at)),
        ),
        (
            "revoke: no token",
            400,
            revoke(basic(client), format!("token_type_hint={wrong}")),
        ),
        (
            "revoke: a malformed body",
            400,
            revoke(basic(client), format!("token={}&x=%ZZ", c.wrong_refresh)),
        ),
        (
            "revoke: an oversized body",
            413,
            revoke(
                basic(client),
                format!("token={}", c.wrong_refresh.repeat(4000)),
            ),
        ),
        (
            "revoke: an unknown refresh token",
            200,
            revoke(basic(client), of(&c.wrong_refresh)),
        ),
        (
            "revoke: a garbage token",
            200,
            revoke(basic(client), of(&c.wrong_bearer)),
        ),
        (
            "revoke: a secret as the token",
            200,
            revoke(basic(client), of(&c.other.secret)),
        ),
        (
            "revoke: another client's token",
            200,
            revoke(basic(client), of(&t.other_rt)),
        ),
        (
            "revoke: GET with the token in the query",
            405,
            r.req(Method::GET, &format!("/oauth2/revoke?token={}", t.at)),
        ),
        (
            "introspect: wrong secret",
            401,
            introspect(Some(basic_header(&rs.id, wrong)), of(&t.at)),
        ),
        (
            "introspect: no credentials",
            401,
            introspect(None, of(&t.at)),
        ),
        (
            "introspect: no token",
            400,
            introspect(basic(rs), String::new()),
        ),
        (
            "introspect: a malformed body",
            400,
            introspect(basic(rs), format!("token={}&x=%ZZ", c.wrong_refresh)),
        ),
        (
            "introspect: an oversized body",
            413,
            introspect(basic(rs), format!("token={}", c.wrong_refresh.repeat(4000))),
        ),
        (
            "introspect: an unknown refresh token",
            200,
            introspect(basic(rs), of(&c.wrong_refresh)),
        ),
        (
            "introspect: a garbage token",
            200,
            introspect(basic(rs), of(&c.wrong_bearer)),
        ),
        (
            "introspect: a client secret",
            200,
            introspect(basic(rs), of(&client.secret)),
        ),
        (
            "introspect: an expired token",
            200,
            introspect(basic(rs), of(&t.expired_admin)),
        ),
        (
            "introspect: another client's token, without permission",
            200,
            introspect(basic(&c.plain), of(&t.other_at)),
        ),
        (
            "introspect: another client's refresh token",
            200,
            introspect(basic(rs), of(&t.other_rt)),
        ),
        (
            "introspect: GET",
            405,
            r.req(Method::GET, &format!("/oauth2/introspect?token={}", t.at)),
        ),
    ];
    for (label, expected, req) in cases {
        p.probe(label, expected, req).await;
    }
}

/// `GET /oauth2/revocations`: credentials and cursors.
async fn provoke_feed(r: &Requests, p: &mut Prober, c: &Cast) {
    let feed = |query: &str, auth: Option<String>| {
        let req = r.req(Method::GET, &format!("/oauth2/revocations{query}"));
        match auth {
            Some(a) => req.header("authorization", a),
            None => req,
        }
    };
    let wrong = &c.wrong_secret;
    p.probe("feed: no credentials", 401, feed("", None)).await;
    p.probe(
        "feed: wrong secret",
        401,
        feed("", Some(basic_header(&c.rs.id, wrong))),
    )
    .await;
    p.probe(
        "feed: not a resource server",
        403,
        feed("", basic(&c.plain)),
    )
    .await;
    for (label, query) in [
        ("a negative cursor", "?after=-1".to_owned()),
        ("a secret as the cursor", format!("?after={wrong}")),
        ("a repeated cursor", "?after=1&after=2".to_owned()),
        (
            "a secret as the limit",
            format!("?limit={}", c.wrong_refresh),
        ),
        ("a malformed cursor", format!("?after=%ZZ{wrong}")),
        (
            "credentials in the query",
            format!("?client_secret={}", c.rs.secret),
        ),
    ] {
        p.probe(&format!("feed: {label}"), 400, feed(&query, basic(&c.rs)))
            .await;
    }
    p.probe(
        "feed: POST",
        405,
        r.form("/oauth2/revocations", basic(&c.rs), String::new()),
    )
    .await;
}

/// The admin API: every way to be unauthorized, then bad input.
async fn provoke_admin(r: &Requests, p: &mut Prober, c: &Cast, t: &Tokens) {
    let wrong = &c.wrong_secret;
    let with = |token: &str| {
        r.req(Method::GET, "/admin/clients")
            .header("authorization", bearer(token))
    };
    let unauthorized = [
        ("no token", 401, r.req(Method::GET, "/admin/clients")),
        ("a garbage token", 401, with(&c.wrong_bearer)),
        ("a secret as the token", 401, with(&c.admin.secret)),
        ("a refresh token as the token", 401, with(&t.rt)),
        ("an expired token", 401, with(&t.expired_admin)),
        ("a revoked token", 401, with(&t.revoked_admin)),
        ("a token for another audience", 401, with(&t.elsewhere)),
        ("a token without the admin scope", 403, with(&t.reader)),
        (
            "Basic credentials",
            401,
            r.req(Method::GET, "/admin/clients")
                .header("authorization", basic_header(&c.admin.id, &c.admin.secret)),
        ),
        (
            "a malformed bearer header",
            400,
            r.req(Method::GET, "/admin/clients")
                .header("authorization", format!("Bearer {} {wrong}", t.admin)),
        ),
    ];
    for (label, expected, req) in unauthorized {
        p.probe(&format!("admin: {label}"), expected, req).await;
    }

    let as_admin = |method: Method, path: &str| {
        r.req(method, path)
            .header("authorization", bearer(&t.admin))
    };
    let client_path = format!("/admin/clients/{}", c.client.id);
    let json_body = |method: Method, path: &str, body: Value| {
        as_admin(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let bad_input = [
        (
            "a body that is not JSON",
            400,
            as_admin(Method::POST, "/admin/clients")
                .header("content-type", "application/json")
                .body(format!("{{{wrong}")),
        ),
        (
            "a secret as a number",
            400,
            json_body(
                Method::POST,
                "/admin/clients",
                json!({"name": "x", "access_token_ttl": wrong}),
            ),
        ),
        (
            "a secret as a list",
            400,
            json_body(
                Method::POST,
                "/admin/clients",
                json!({"name": "x", "audiences": wrong}),
            ),
        ),
        (
            "a secret as a member name",
            400,
            json_body(
                Method::POST,
                "/admin/clients",
                json!({"name": "x", wrong.as_str(): 1}),
            ),
        ),
        (
            "a secret in a bad scope",
            400,
            json_body(
                Method::POST,
                "/admin/clients",
                json!({"name": "x", "scope": format!("\"{wrong}")}),
            ),
        ),
        (
            "a secret in a bad audience",
            400,
            json_body(
                Method::POST,
                "/admin/clients",
                json!({"name": "x", "audiences": [API, format!("not a uri {wrong}")]}),
            ),
        ),
        (
            "a secret as a network",
            400,
            json_body(
                Method::POST,
                "/admin/clients",
                json!({"name": "x", "allowed_networks": [wrong]}),
            ),
        ),
        (
            "a bad update",
            400,
            json_body(Method::PATCH, &client_path, json!({"scope": [wrong]})),
        ),
        (
            "a secret as the grace",
            400,
            json_body(
                Method::POST,
                &format!("{client_path}/rotate-secret"),
                json!({"grace_seconds": wrong}),
            ),
        ),
        (
            "an oversized body",
            400,
            json_body(
                Method::POST,
                "/admin/clients",
                json!({"name": wrong.repeat(3000)}),
            ),
        ),
        (
            "a client id taken",
            409,
            json_body(
                Method::POST,
                "/admin/clients",
                json!({"name": "x", "client_id": c.client.id}),
            ),
        ),
        (
            "a secret as a query parameter",
            400,
            as_admin(Method::GET, &format!("/admin/clients?{wrong}=1")),
        ),
        (
            "a secret as the limit",
            400,
            as_admin(Method::GET, &format!("/admin/clients?limit={wrong}")),
        ),
        (
            "a secret in the audit query",
            400,
            as_admin(Method::GET, &format!("/admin/audit?since={wrong}")),
        ),
        (
            "a secret as the client id",
            404,
            as_admin(Method::GET, &format!("/admin/clients/{wrong}")),
        ),
        (
            "a client's own secret as its id",
            404,
            as_admin(
                Method::POST,
                &format!("/admin/clients/{}/disable", c.client.secret),
            ),
        ),
        (
            "DELETE the keys",
            405,
            as_admin(Method::DELETE, "/admin/keys"),
        ),
        ("PUT a client", 405, as_admin(Method::PUT, &client_path)),
    ];
    for (label, expected, req) in bad_input {
        p.probe(&format!("admin: {label}"), expected, req).await;
    }
}

/// Unknown paths and wrong methods.
async fn provoke_routing(r: &Requests, p: &mut Prober, c: &Cast) {
    p.probe("an unknown path", 404, r.req(Method::GET, "/nope"))
        .await;
    p.probe(
        "a secret as the path",
        404,
        r.req(Method::GET, &format!("/{}", c.wrong_refresh)),
    )
    .await;
    p.probe(
        "an unknown path with a secret in the query",
        404,
        r.req(Method::GET, &format!("/nope?secret={}", c.wrong_secret)),
    )
    .await;
    for (method, path) in [
        (Method::DELETE, "/oauth2/revoke"),
        (Method::POST, "/.well-known/jwks.json"),
        (Method::PUT, "/.well-known/oauth-authorization-server"),
        (Method::POST, "/healthz"),
        (Method::POST, "/readyz"),
        (Method::POST, "/metrics"),
        (Method::DELETE, "/openapi.json"),
        (Method::PATCH, "/admin/clients"),
    ] {
        let req = r.req(method.clone(), path).header(
            "authorization",
            basic_header(&c.client.id, &c.client.secret),
        );
        p.probe(&format!("{method} {path}"), 405, req).await;
    }
}

/// Every provoked answer and every log line against every secret.
fn failures(p: &Prober, secrets: &Secrets, log: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for seen in &p.seen {
        if seen.status != seen.expected {
            failures.push(format!(
                "{}: expected {}, got {}: {}",
                seen.label, seen.expected, seen.status, seen.body
            ));
        }
        for what in secrets.found_in(&seen.headers) {
            failures.push(format!(
                "{}: a header carries {what}:\n{}",
                seen.label, seen.headers
            ));
        }
        for what in secrets.found_in(&seen.body) {
            failures.push(format!(
                "{}: the body carries {what}: {}",
                seen.label, seen.body
            ));
        }
    }
    for line in log.lines() {
        for what in secrets.found_in(line) {
            failures.push(format!("the log carries {what}: {line}"));
        }
    }
    failures
}

async fn run(backend: Backend) {
    let kek = URL_SAFE_NO_PAD.encode(tessera::crypto::random::bytes::<32>().expect("random"));
    let app = spawn_app_with(&backend, |s| s.kek = Some(kek.clone())).await;
    let (kid, pkcs8) = app.signing_key();
    app.stop().await;
    let mut secrets = Secrets::default();
    secrets.add("the key-encryption key", kek.clone());
    secrets.add_bytes(
        "the key-encryption key",
        &URL_SAFE_NO_PAD.decode(&kek).expect("KEK"),
    );
    secrets.add_bytes("the private signing key (PKCS#8)", &pkcs8);
    secrets.add_bytes("the private signing key (d)", &private_scalar(&pkcs8));

    let made = |refresh: bool, introspect: bool, scope: &str, audiences: &[&str]| {
        let mut s = spec(scope, audiences);
        s.refresh_tokens = refresh;
        s.can_introspect = introspect;
        app.create_client(s)
    };
    let cast = Cast {
        client: made(true, false, "read", &[API]).await,
        other: made(true, false, "read", &[API]).await,
        plain: made(false, false, "read", &[API]).await,
        rs: made(true, true, "", &[]).await,
        admin: made(true, false, "tessera:admin", &[]).await,
        admin_elsewhere: made(true, false, "tessera:admin", &[API]).await,
        reader: made(true, false, "read", &[]).await,
        wrong_secret: random_secret("tsec_"),
        wrong_refresh: random_secret("trt_"),
        wrong_bearer: format!("eyJ{}", random_secret("")),
    };
    for (what, c) in [
        ("client", &cast.client),
        ("other", &cast.other),
        ("plain", &cast.plain),
        ("rs", &cast.rs),
        ("admin", &cast.admin),
        ("admin_elsewhere", &cast.admin_elsewhere),
        ("reader", &cast.reader),
    ] {
        secrets.add(format!("{what}'s secret"), c.secret.clone());
        secrets.add(
            format!("{what}'s Basic credentials"),
            basic_header(&c.id, &c.secret),
        );
    }
    secrets.add(
        "a wrong secret the caller presented",
        cast.wrong_secret.clone(),
    );
    secrets.add(
        "a wrong refresh token the caller presented",
        cast.wrong_refresh.clone(),
    );
    secrets.add(
        "a wrong bearer token the caller presented",
        cast.wrong_bearer.clone(),
    );

    let config = ProcessConfig::of(&app);
    let kek_env = kek.clone();
    let (mut server, base, log) = actix_web::rt::task::spawn_blocking(move || {
        start_binary_logging(&config, &[("RUST_LOG", "trace"), ("TESSERA_KEK", &kek_env)])
    })
    .await
    .expect("the server starts");
    // A connection per request: the server closes one after refusing an
    // oversized body, and a request sent on it could fail.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    let r = Requests { http, base };
    let mut p = Prober::default();

    let tokens = good_calls(&r, &cast, &kid, &pkcs8, &mut secrets).await;
    provoke_token(&r, &mut p, &cast, &tokens).await;
    provoke_revoke_and_introspect(&r, &mut p, &cast, &tokens).await;
    provoke_feed(&r, &mut p, &cast).await;
    provoke_admin(&r, &mut p, &cast, &tokens).await;
    provoke_routing(&r, &mut p, &cast).await;

    // The end of the run: wait until the server has logged it.
    let marker = format!("/end-of-run-{}", uuid::Uuid::new_v4().simple());
    r.req(Method::GET, &marker).send().await.expect("marker");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.lock().expect("log").contains(&marker) {
        assert!(
            Instant::now() < deadline,
            "the server never logged the last request"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().expect("stop");
    server.wait().expect("reaped");
    let log = log.lock().expect("log").clone();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the run really logged at trace level"
    );
    let failures = failures(&p, &secrets, &log);
    assert!(
        failures.is_empty(),
        "{} leaks or misses in {} provocations:\n{}",
        failures.len(),
        p.seen.len(),
        failures.join("\n")
    );
}

both_backends! {
    /// Proves that no error answer of any endpoint, and no log line of a
    /// trace-level run, carries a secret: not the server's own (key
    /// material, clients' secrets and tokens) and not the caller's (what it
    /// presented, right or wrong). Each provocation also asserts its
    /// status, so every one reaches the error it is meant to.
    async fn error_answers_and_logs_carry_no_secret(backend) {
        run(backend).await
    }
}
