//! `tessera::verifier` end to end against a spawned Tessera: discovery,
//! strict verification, the JWKS refetch limits, the revocation feed, key
//! rotation, and the actix-web extractor's RFC 6750 answers.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, test as atest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::FutureExt;
use serde_json::json;
use tessera::token::verify::VerifyError;
use tessera::verifier::{BearerToken, Rejection, RequiredScope, Verifier};

use crate::both_backends;
use crate::helpers::{TestApp, TestClient, spawn_app, spawn_app_with, spec};

const API: &str = "https://api.example.com";

async fn verifier_for(app: &TestApp) -> Verifier {
    Verifier::builder(app.issuer.clone(), API)
        .clock(app.clock.clone())
        .discover()
        .await
        .expect("discovery")
}

async fn resource_server(app: &TestApp) -> TestClient {
    let mut rs = spec("", &[]);
    rs.can_introspect = true;
    app.create_client(rs).await
}

both_backends! {
    async fn a_valid_token_passes_and_the_wrong_audience_does_not(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API, "https://other.example.com"])).await;
        let verifier = verifier_for(&app).await;
        let token = app.access_token(&client).await;
        let claims = verifier.verify(&token, verifier.expectations()).await.expect("valid");
        assert_eq!(claims.client_id, client.id);
        assert_eq!(claims.scope, "read");

        let other = app.token(&client, &[("resource", "https://other.example.com")]).await;
        assert_eq!(
            verifier.verify(other["access_token"].as_str().expect("token"), verifier.expectations()).await,
            Err(Rejection::Invalid(VerifyError::Audience))
        );
        // A refresh token is no access token (checklist C12).
        let rt = app.token(&client, &[]).await["refresh_token"].as_str().expect("rt").to_owned();
        assert!(matches!(verifier.verify(&rt, verifier.expectations()).await, Err(Rejection::Invalid(_))));
    }
}

both_backends! {
    async fn discovery_insists_on_the_exact_issuer_and_a_secure_url(backend) {
        let app = spawn_app(&backend).await;
        let trailing = Verifier::builder(format!("{}/", app.issuer), API).discover().await;
        assert!(trailing.is_err(), "the metadata's issuer has no trailing slash");
        let insecure = Verifier::builder("http://auth.example.com", API).discover().await;
        assert!(matches!(insecure, Err(tessera::verifier::DiscoveryError::InsecureUrl(_))));
    }
}

/// A token like `token` but naming a kid the issuer never published.
fn with_unknown_kid(token: &str, kid: &str) -> String {
    let (_, rest) = token.split_once('.').expect("parts");
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// Verifies one forged-kid token per kid in `kids`, all at once.
async fn flood(verifier: &Verifier, token: &str, kids: std::ops::Range<u32>) {
    let checks = kids.map(|i| {
        let forged = with_unknown_kid(token, &format!("forged-{i}"));
        let verifier = verifier.clone();
        async move { verifier.verify(&forged, verifier.expectations()).await }
    });
    for result in futures_util::future::join_all(checks).await {
        assert_eq!(result, Err(Rejection::Invalid(VerifyError::UnknownKey)));
    }
}

both_backends! {
    async fn a_flood_of_unknown_kids_causes_one_jwks_fetch_per_interval(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let interval = Duration::from_secs(2);
        let verifier = Verifier::builder(app.issuer.clone(), API)
            .clock(app.clock.clone())
            .min_refetch_interval(interval)
            .discover()
            .await
            .expect("discovery");
        let token = app.access_token(&client).await;
        // Past the interval since discovery's fetch, an unknown kid may
        // cause a fetch: exactly one, joined by every concurrent caller.
        actix_web::rt::time::sleep(interval + Duration::from_millis(200)).await;
        let before = verifier.jwks_fetches();
        flood(&verifier, &token, 0..200).await;
        assert_eq!(verifier.jwks_fetches() - before, 1, "one fetch for the whole flood");
        // Straight after it, well within the interval, none at all.
        flood(&verifier, &token, 200..400).await;
        assert_eq!(verifier.jwks_fetches() - before, 1, "no fetch within the interval");
        assert!(verifier.verify(&token, verifier.expectations()).await.is_ok(), "genuine tokens still pass");
    }
}

both_backends! {
    async fn expired_keys_are_refetched_once_however_many_requests_need_them(backend) {
        let app = spawn_app_with(&backend, |s| s.jwks_max_age = 1).await;
        let client = app.create_client(spec("read", &[API])).await;
        let verifier = verifier_for(&app).await;
        let token = app.access_token(&client).await;
        actix_web::rt::time::sleep(Duration::from_millis(1200)).await;
        let before = verifier.jwks_fetches();
        // The expired keys serve at once: the request that notices starts a
        // refresh and does not wait for it.
        let first = verifier.verify(&token, verifier.expectations()).now_or_never();
        assert!(matches!(first, Some(Ok(_))), "answered without waiting: {first:?}");
        let checks = (0..100).map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            async move { verifier.verify(&token, verifier.expectations()).await.map(|_| ()) }
        });
        let results = futures_util::future::join_all(checks).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(verifier.jwks_fetches() - before, 1, "one refresh for a hundred requests");
    }
}

both_backends! {
    async fn cached_keys_outlive_an_issuer_outage_until_max_stale(backend) {
        // A graceful stop waits for idle keep-alive connections up to the
        // shutdown timeout; the keys' ages run meanwhile, so keep it short.
        let app = spawn_app_with(&backend, |s| {
            s.jwks_max_age = 1;
            s.shutdown_timeout = 1;
        })
        .await;
        let client = app.create_client(spec("read", &[API])).await;
        let token = app.access_token(&client).await;
        let max_stale = Duration::from_secs(4);
        let started = std::time::Instant::now();
        let verifier = Verifier::builder(app.issuer.clone(), API)
            .clock(app.clock.clone())
            .min_refetch_interval(Duration::from_secs(60))
            .max_stale(max_stale)
            .discover()
            .await
            .expect("discovery");
        let before = verifier.jwks_fetches();
        app.stop().await;
        // Past max-age, the keys are stale: every request is still served
        // from them, and the one refresh they cause fails...
        actix_web::rt::time::sleep(Duration::from_millis(1200).saturating_sub(started.elapsed())).await;
        let first = verifier.verify(&token, verifier.expectations()).now_or_never();
        assert!(matches!(first, Some(Ok(_))), "answered without waiting on the issuer: {first:?}");
        let checks = (0..100).map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            async move { verifier.verify(&token, verifier.expectations()).await.map(|_| ()) }
        });
        let results = futures_util::future::join_all(checks).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // ...after which the issuer is left alone for the refetch interval,
        // by stale-key refreshes and unknown kids alike.
        for _ in 0..5 {
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            assert!(verifier.verify(&token, verifier.expectations()).await.is_ok());
            flood(&verifier, &token, 0..20).await;
        }
        assert_eq!(verifier.jwks_fetches() - before, 1, "one failed fetch, then none");
        // Once max-age + max_stale have passed, the keys are refused: fail
        // closed, still without asking the issuer again.
        let dead = Duration::from_secs(1) + max_stale + Duration::from_millis(300);
        actix_web::rt::time::sleep(dead.saturating_sub(started.elapsed())).await;
        assert_eq!(
            verifier.verify(&token, verifier.expectations()).await,
            Err(Rejection::KeysUnavailable)
        );
        assert_eq!(verifier.jwks_fetches() - before, 1);
    }
}

/// A client with the admin scope, for the admin API.
async fn admin_token(app: &TestApp) -> String {
    let client = app.create_client(spec("tessera:admin", &[])).await;
    app.access_token(&client).await
}

both_backends! {
    async fn revoked_and_cut_off_tokens_are_refused_within_one_poll(backend) {
        // The bound under test: one poll interval after the revocation was
        // acknowledged, plus a fixed allowance for the poll's own HTTP round
        // trip. The tokens are checked once, at that bound.
        const INTERVAL: Duration = Duration::from_secs(1);
        const ROUND_TRIP: Duration = Duration::from_millis(500);
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let verifier = Verifier::builder(app.issuer.clone(), API)
            .clock(app.clock.clone())
            .follow_revocations(rs.id.clone(), rs.secret.clone(), INTERVAL)
            .discover()
            .await
            .expect("discovery");
        let discovered = verifier.last_feed_poll().expect("discovery reads the feed");
        let revoked = app.access_token(&client).await;
        let cut = app.access_token(&client).await;
        assert!(verifier.verify(&revoked, verifier.expectations()).await.is_ok());
        assert!(verifier.verify(&cut, verifier.expectations()).await.is_ok());

        assert_eq!(app.revoke(&client, &revoked).await.status(), 200);
        actix_web::rt::time::sleep(INTERVAL + ROUND_TRIP).await;
        assert_eq!(verifier.verify(&revoked, verifier.expectations()).await, Err(Rejection::Revoked));
        assert!(verifier.verify(&cut, verifier.expectations()).await.is_ok(), "only the revoked token");

        // A client-wide cut-off, the way an operator makes it.
        let resp = app
            .http
            .post(app.url(&format!("/admin/clients/{}/revoke-all", client.id)))
            .bearer_auth(admin_token(&app).await)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        actix_web::rt::time::sleep(INTERVAL + ROUND_TRIP).await;
        assert_eq!(verifier.verify(&cut, verifier.expectations()).await, Err(Rejection::Revoked));

        app.clock.advance(1);
        let fresh = app.access_token(&client).await;
        assert!(verifier.verify(&fresh, verifier.expectations()).await.is_ok(), "new tokens pass after a cut-off");
        assert!(verifier.last_feed_poll().is_some_and(|t| t > discovered), "the background polls are reported");
    }
}

both_backends! {
    async fn verification_continues_without_a_failure_across_a_key_rotation(backend) {
        // JWKS cached for one second (real time), so the verifier refreshes
        // during the pre-publication lead like a validator honouring max-age.
        let app = spawn_app_with(&backend, |s| {
            s.jwks_max_age = 1;
            s.key_rotation_period = 7200;
            s.key_prepublish = 360;
        })
        .await;
        let client = app.create_client(spec("read", &[API])).await;
        let verifier = verifier_for(&app).await;
        let mut failures = Vec::new();
        let mut kids = std::collections::HashSet::new();
        for _ in 0..3 {
            app.clock.advance(7200 - 360);
            app.keys.run_once().await.expect("maintenance: the next key is made");
            // It enters the JWKS one key check interval later, still well
            // within the lead.
            app.clock.advance(app.settings.key_check_interval);
            // The verifier's cache expires during the lead.
            actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
            for _ in 0..2 {
                let token = app.access_token(&client).await;
                if let Err(e) = verifier.verify(&token, verifier.expectations()).await {
                    failures.push(e);
                }
                app.clock.advance((360 - app.settings.key_check_interval) / 2);
                app.keys.run_once().await.expect("maintenance");
                let token = app.access_token(&client).await;
                kids.insert(token.split('.').next().expect("h").to_owned());
                if let Err(e) = verifier.verify(&token, verifier.expectations()).await {
                    failures.push(e);
                }
            }
        }
        assert!(kids.len() >= 3, "three keys signed");
        assert_eq!(failures, Vec::<Rejection>::new());
    }
}

struct Read;
impl RequiredScope for Read {
    const SCOPES: &'static [&'static str] = &["read"];
}

struct Admin;
impl RequiredScope for Admin {
    const SCOPES: &'static [&'static str] = &["admin"];
}

async fn read_handler(token: BearerToken<Read>) -> HttpResponse {
    HttpResponse::Ok().body(token.claims.client_id)
}

async fn admin_handler(_token: BearerToken<Admin>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

both_backends! {
    async fn the_extractor_answers_as_rfc_6750_says(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let verifier = Arc::new(verifier_for(&app).await);
        let rs = atest::init_service(
            App::new()
                .app_data(web::Data::from(verifier))
                .route("/read", web::get().to(read_handler))
                .route("/admin", web::get().to(admin_handler)),
        )
        .await;
        let token = app.access_token(&client).await;
        let call = |uri: &str, auth: Option<String>| {
            let mut req = atest::TestRequest::get().uri(uri);
            if let Some(a) = auth {
                req = req.insert_header(("authorization", a));
            }
            req.to_request()
        };
        let www = |resp: &actix_web::dev::ServiceResponse| {
            resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
        };

        let ok = atest::call_service(&rs, call("/read", Some(format!("Bearer {token}")))).await;
        assert_eq!(ok.status(), 200);
        let lower = atest::call_service(&rs, call("/read", Some(format!("bearer {token}")))).await;
        assert_eq!(lower.status(), 200, "the scheme is case-insensitive");

        let none = atest::call_service(&rs, call("/read", None)).await;
        assert_eq!(none.status(), 401);
        assert!(www(&none).starts_with("Bearer realm=") && !www(&none).contains("error="), "{}", www(&none));

        let bad = atest::call_service(&rs, call("/read", Some("Bearer not.a.token".into()))).await;
        assert_eq!(bad.status(), 401);
        assert!(www(&bad).contains("error=\"invalid_token\""));

        let scope = atest::call_service(&rs, call("/admin", Some(format!("Bearer {token}")))).await;
        assert_eq!(scope.status(), 403);
        assert!(www(&scope).contains("error=\"insufficient_scope\"") && www(&scope).contains("scope=\"admin\""));

        let query = atest::call_service(&rs, call(&format!("/read?access_token={token}"), None)).await;
        assert_eq!(query.status(), 400);
        let empty = atest::call_service(&rs, call("/read", Some("Bearer ".into()))).await;
        assert_eq!(empty.status(), 400);
    }
}

both_backends! {
    async fn expectations_carry_the_audience_the_scopes_and_introspection(backend) {
        use tessera::verifier::Expectations;
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read write", &[API])).await;
        let verifier = Verifier::builder(app.issuer.clone(), API)
            .clock(app.clock.clone())
            .introspection(rs.id.clone(), rs.secret.clone())
            .discover()
            .await
            .expect("discovery");
        let token = app.access_token(&client).await;
        assert!(verifier.verify(&token, &Expectations::new(API).scopes(["read"])).await.is_ok());
        assert_eq!(
            verifier.verify(&token, &Expectations::new(API).scopes(["admin"])).await,
            Err(Rejection::InsufficientScope)
        );
        assert_eq!(
            verifier.verify(&token, &Expectations::new("https://elsewhere.example.com")).await,
            Err(Rejection::Invalid(VerifyError::Audience))
        );
        // Per call, introspection sees a revocation at once, without a feed.
        let live = Expectations::new(API).introspect(true);
        assert!(verifier.verify(&token, &live).await.is_ok());
        assert_eq!(app.revoke(&client, &token).await.status(), 200);
        assert!(verifier.verify(&token, verifier.expectations()).await.is_ok(), "offline, it still looks valid");
        assert_eq!(verifier.verify(&token, &live).await, Err(Rejection::Revoked));
    }
}

both_backends! {
    async fn a_query_token_is_accepted_only_when_the_app_opts_in(backend) {
        use tessera::verifier::BearerOptions;
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let verifier = Arc::new(verifier_for(&app).await);
        let rs = atest::init_service(
            App::new()
                .app_data(web::Data::from(verifier))
                .app_data(BearerOptions { allow_query_token: true, ..BearerOptions::default() })
                .route("/read", web::get().to(read_handler)),
        )
        .await;
        let token = app.access_token(&client).await;
        let query = atest::TestRequest::get().uri(&format!("/read?access_token={token}")).to_request();
        assert_eq!(atest::call_service(&rs, query).await.status(), 200);
        let both = atest::TestRequest::get()
            .uri(&format!("/read?access_token={token}"))
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request();
        assert_eq!(atest::call_service(&rs, both).await.status(), 400, "one method per request");
    }
}

/// Answers with the length of the body the handler read after the
/// extractor.
async fn upload_handler(_token: BearerToken<Read>, body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(body.len().to_string())
}

/// Answers with the form the handler read after the extractor: the body
/// must reach it whole, the token field included.
async fn note_handler(
    _token: BearerToken<Read>,
    form: web::Form<std::collections::BTreeMap<String, String>>,
) -> HttpResponse {
    let fields: Vec<&str> = form.keys().map(String::as_str).collect();
    HttpResponse::Ok().body(format!(
        "{} note={}",
        fields.join(","),
        form.get("note").map_or("", String::as_str)
    ))
}

both_backends! {
    async fn a_form_body_token_is_accepted_only_when_the_app_opts_in(backend) {
        use tessera::verifier::{BearerOptions, FORM_BODY_LIMIT};
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let verifier = web::Data::new(verifier_for(&app).await);
        let token = app.access_token(&client).await;
        let form = |method: actix_web::http::Method, body: String| {
            atest::TestRequest::default()
                .method(method)
                .uri("/notes")
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(body)
        };
        let post = |body: String| form(actix_web::http::Method::POST, body);
        let body = format!("note=hello+there&access_token={token}");
        let challenge = |resp: &actix_web::dev::ServiceResponse| {
            resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
        };

        let off = atest::init_service(
            App::new()
                .app_data(verifier.clone())
                .route("/notes", web::post().to(note_handler)),
        )
        .await;
        let resp = atest::call_service(&off, post(body.clone()).to_request()).await;
        assert_eq!(resp.status(), 401, "off by default: the body is not read");
        assert!(!challenge(&resp).contains("error="), "no credentials seen: {}", challenge(&resp));

        let on = atest::init_service(
            App::new()
                .app_data(verifier.clone())
                .app_data(BearerOptions { allow_form_token: true, ..BearerOptions::default() })
                .route("/notes", web::post().to(note_handler))
                .route("/notes", web::put().to(note_handler))
                .route("/notes", web::get().to(note_handler))
                .route("/upload", web::post().to(upload_handler)),
        )
        .await;
        let resp = atest::call_service(&on, post(body.clone()).to_request()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(atest::read_body(resp).await, "access_token,note note=hello there", "the handler reads the whole body");
        let resp = atest::call_service(&on, form(actix_web::http::Method::PUT, body.clone()).to_request()).await;
        assert_eq!(resp.status(), 200, "PUT has a body too");
        // With the token in the header, the form still reaches the handler.
        let resp = atest::call_service(
            &on,
            post("note=hi".into()).insert_header(("authorization", format!("Bearer {token}"))).to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(atest::read_body(resp).await, "note note=hi");

        // RFC 6750 §2: one method per request.
        for (name, req) in [
            ("header and form", post(body.clone()).insert_header(("authorization", format!("Bearer {token}")))),
            ("query and form", post(body.clone()).uri(&format!("/notes?access_token={token}"))),
            ("two form fields", post(format!("{body}&access_token={token}"))),
            ("an empty form field", post("note=x&access_token=".into())),
        ] {
            let resp = atest::call_service(&on, req.to_request()).await;
            assert_eq!(resp.status(), 400, "{name}");
            assert!(challenge(&resp).contains("error=\"invalid_request\""), "{name}: {}", challenge(&resp));
        }

        // §2.2: never from a GET, nor from anything but a single-part
        // urlencoded form.
        let resp = atest::call_service(&on, form(actix_web::http::Method::GET, body.clone()).to_request()).await;
        assert_eq!(resp.status(), 401, "GET");
        let multipart = post(body.clone()).insert_header(("content-type", "multipart/form-data; boundary=x"));
        assert_eq!(atest::call_service(&on, multipart.to_request()).await.status(), 401, "multipart");

        let forged = post(format!("note=x&access_token={}x", token)).to_request();
        let resp = atest::call_service(&on, forged).await;
        assert_eq!(resp.status(), 401);
        assert!(challenge(&resp).contains("error=\"invalid_token\""));
        let huge = post(format!("{body}&pad={}", "x".repeat(FORM_BODY_LIMIT))).to_request();
        assert_eq!(atest::call_service(&on, huge).await.status(), 413);
        // With the token in the header, a form too large for the extractor
        // to read is not refused by it: it reaches the handler whole.
        let large = format!("pad={}", "x".repeat(2 * FORM_BODY_LIMIT));
        let resp = atest::call_service(
            &on,
            post(large.clone()).uri("/upload").insert_header(("authorization", format!("Bearer {token}"))).to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(atest::read_body(resp).await, large.len().to_string());
    }
}

/// The example resource server of docs/resource-servers.md, compiled into
/// the tests so that what the guide shows is what runs here.
#[path = "../../docs/examples/resource_server.rs"]
#[allow(dead_code)]
mod example;

both_backends! {
    async fn the_example_resource_server_answers_over_a_real_socket(backend) {
        use oauth2::basic::BasicClient;
        use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let verifier = web::Data::new(
            Verifier::builder(app.issuer.clone(), API)
                .clock(app.clock.clone())
                // Polled by hand below, so the test does not wait on a timer.
                .follow_revocations(rs.id.clone(), rs.secret.clone(), Duration::from_secs(3600))
                .discover()
                .await
                .expect("discovery"),
        );
        let data = verifier.clone();
        let server = actix_web::HttpServer::new(move || App::new().app_data(data.clone()).configure(example::routes))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind");
        let addr = *server.addrs().first().expect("an address");
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);

        let issued = BasicClient::new(ClientId::new(client.id.clone()))
            .set_client_secret(ClientSecret::new(client.secret.clone()))
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("URL"))
            .exchange_client_credentials()
            .add_scope(Scope::new("read".to_owned()))
            .request_async(&app.http)
            .await
            .expect("the oauth2 crate gets a token");
        let token = issued.access_token().secret().clone();
        let get = |path: &str, token: Option<&str>| {
            let mut req = app.http.get(format!("http://{addr}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move {
                let resp = req.send().await.expect("request");
                let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                (resp.status().as_u16(), challenge, resp.text().await.expect("body"))
            }
        };

        let (status, _, body) = get("/hello", Some(&token)).await;
        assert_eq!(status, 200);
        assert!(body.contains(&client.id), "{body}");

        let (status, challenge, _) = get("/hello", None).await;
        assert_eq!(status, 401);
        assert_eq!(challenge, format!("Bearer realm=\"{API}\""));

        let (status, challenge, _) = get("/admin", Some(&token)).await;
        assert_eq!(status, 403);
        assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"admin\""), "{challenge}");

        assert_eq!(app.revoke(&client, &token).await.status(), 200);
        verifier.poll_revocations().await.expect("the feed");
        let (status, challenge, _) = get("/hello", Some(&token)).await;
        assert_eq!(status, 401);
        assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""), "{challenge}");

        handle.stop(true).await;
    }
}
