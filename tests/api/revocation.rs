//! Revocation (RFC 7009), client-wide cut-offs, the revocation feed, and
//! durability of an acknowledged revocation across a crash.

use diesel::prelude::*;
use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, ClientId, ClientSecret, IntrospectionUrl, RevocationUrl, StandardRevocableToken,
    TokenIntrospectionResponse, TokenUrl,
};
use serde_json::{Value, json};
use tessera::store::schema::{audit_events, refresh_families, revoked_tokens};

use crate::both_backends;
use crate::helpers::{
    ProcessConfig, TestApp, TestClient, basic_header, claims_of, spawn_app, spec, start_binary,
};

const API: &str = "https://api.example.com";

async fn resource_server(app: &TestApp) -> TestClient {
    let mut rs = spec("", &[]);
    rs.can_introspect = true;
    app.create_client(rs).await
}

async fn feed(app: &TestApp, caller: &TestClient, query: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/oauth2/revocations{query}")))
        .header("authorization", basic_header(&caller.id, &caller.secret))
        .send()
        .await
        .expect("request")
}

async fn refresh_status(app: &TestApp, client: &TestClient, rt: &str) -> u16 {
    app.post_token(
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some((&client.id, &client.secret)),
    )
    .await
    .status()
    .as_u16()
}

/// What a revocation can change, counted in the database: revocation
/// entries, audit events and revoked families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recorded {
    revocation_entries: i64,
    audit_events: i64,
    revoked_families: i64,
}

async fn recorded(app: &TestApp) -> Recorded {
    let db = app.database();
    actix_web::rt::task::spawn_blocking(move || {
        let mut conn = db.conn().expect("connection");
        Recorded {
            revocation_entries: revoked_tokens::table
                .count()
                .get_result(&mut *conn)
                .expect("count"),
            audit_events: audit_events::table
                .count()
                .get_result(&mut *conn)
                .expect("count"),
            revoked_families: refresh_families::table
                .filter(refresh_families::revoked_at.is_not_null())
                .count()
                .get_result(&mut *conn)
                .expect("count"),
        }
    })
    .await
    .expect("task")
}

async fn revoke_with_hint(
    app: &TestApp,
    client: &TestClient,
    token: &str,
    hint: &str,
) -> reqwest::Response {
    app.post_form(
        "/oauth2/revoke",
        &[("token", token), ("token_type_hint", hint)],
        Some((&client.id, &client.secret)),
    )
    .await
}

both_backends! {
    /// The oauth2 crate refuses to revoke over plain http (RFC 7009 §2
    /// requires TLS) and these tests serve http on loopback, so revocation
    /// goes through plain HTTP here and introspection through the crate.
    /// `tls.rs` revokes with the crate's `revoke_token` over HTTPS.
    async fn oauth2_crate_introspects_before_and_after_a_revocation(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let oauth = BasicClient::new(ClientId::new(client.id.clone()))
            .set_client_secret(ClientSecret::new(client.secret.clone()))
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("URL"))
            .set_revocation_url(RevocationUrl::new(app.url("/oauth2/revoke")).expect("URL"))
            .set_introspection_url(IntrospectionUrl::new(app.url("/oauth2/introspect")).expect("URL"));
        let token = AccessToken::new(app.access_token(&client).await);
        let before = oauth.introspect(&token).request_async(&app.http).await.expect("introspect");
        assert!(before.active());
        assert_eq!(before.client_id().map(|c| c.as_str()), Some(client.id.as_str()));
        assert!(matches!(
            oauth.revoke_token(StandardRevocableToken::AccessToken(token.clone())),
            Err(oauth2::ConfigurationError::InsecureUrl(_))
        ));
        assert_eq!(app.revoke(&client, token.secret()).await.status(), 200);
        let after = oauth.introspect(&token).request_async(&app.http).await.expect("introspect");
        assert!(!after.active());
    }
}

both_backends! {
    async fn revoking_a_refresh_token_revokes_its_family_and_access_tokens(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let body = app.token(&client, &[]).await;
        let rt = body["refresh_token"].as_str().expect("rt");
        let at = body["access_token"].as_str().expect("at");
        // The hint is wrong on purpose: the server searches every kind.
        let resp = app
            .post_form("/oauth2/revoke", &[("token", rt), ("token_type_hint", "access_token")],
                Some((&client.id, &client.secret)))
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(refresh_status(&app, &client, rt).await, 400);
        assert_eq!(app.introspect(&rs, rt).await, serde_json::json!({"active": false}));
        assert_eq!(app.introspect(&rs, at).await, serde_json::json!({"active": false}));
    }
}

both_backends! {
    async fn revoking_an_access_token_takes_effect_at_once_and_nothing_else(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let body = app.token(&client, &[]).await;
        let at = body["access_token"].as_str().expect("at");
        let other = app.access_token(&client).await;
        let resp = app
            .post_form("/oauth2/revoke", &[("token", at), ("token_type_hint", "refresh_token")],
                Some((&client.id, &client.secret)))
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(app.introspect(&rs, at).await["active"], false);
        assert_eq!(app.introspect(&rs, &other).await["active"], true);
        assert_eq!(refresh_status(&app, &client, body["refresh_token"].as_str().expect("rt")).await, 200,
            "revoking an access token leaves its refresh token alone");
    }
}

both_backends! {
    async fn unknown_garbage_expired_and_repeated_revocations_answer_200_and_change_nothing(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let at = app.access_token(&client).await;
        let later = app.access_token(&client).await;
        let start = recorded(&app).await;
        for token in ["garbage", "trt_unknown", "eyJ.eyJ.sig"] {
            let resp = app.revoke(&client, token).await;
            assert_eq!(resp.status(), 200, "{token}");
            assert!(resp.bytes().await.expect("body").is_empty());
            assert_eq!(recorded(&app).await, start, "{token} recorded something");
        }
        // A genuine revocation is seen by the same counts: they can fail.
        assert_eq!(app.revoke(&client, &at).await.status(), 200);
        let revoked = recorded(&app).await;
        assert_eq!(revoked.revocation_entries, start.revocation_entries + 1);
        assert_eq!(revoked.audit_events, start.audit_events + 1);
        let resp = app.revoke(&client, &at).await;
        assert_eq!(resp.status(), 200, "again");
        assert!(resp.bytes().await.expect("body").is_empty());
        assert_eq!(recorded(&app).await, revoked, "revoking twice records once");

        // Past exp plus the clock leeway: no validator accepts it any more.
        app.clock.advance(300 + 60 + 1);
        let resp = app.revoke(&client, &later).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(recorded(&app).await, revoked, "revoking the expired token recorded nothing");
        let rs = resource_server(&app).await;
        let listed = feed(&app, &rs, "").await.json::<Value>().await.expect("JSON");
        assert_eq!(listed["entries"], json!([]), "{listed}");
    }
}

both_backends! {
    /// A refresh token past its idle lifetime whose row the janitor has not
    /// removed yet is as dead as a swept one: revoking it (or an old used
    /// token of its family) changes nothing, even though an access token of
    /// the family is still live.
    async fn an_expired_refresh_token_not_yet_swept_revokes_nothing(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let mut short = spec("read", &[API]);
        short.refresh_token_ttl = Some(60);
        short.access_token_ttl = 600;
        let client = app.create_client(short).await;
        let first = app.token(&client, &[]).await;
        let rt1 = first["refresh_token"].as_str().expect("rt");
        let second: Value = app
            .post_token(&[("grant_type", "refresh_token"), ("refresh_token", rt1)], Some((&client.id, &client.secret)))
            .await
            .json()
            .await
            .expect("JSON");
        let rt2 = second["refresh_token"].as_str().expect("rt");
        let at2 = second["access_token"].as_str().expect("at");
        app.clock.advance(60);
        assert_eq!(refresh_status(&app, &client, rt2).await, 400, "expired: the janitor has not run, the row is there");
        let start = recorded(&app).await;
        for token in [rt2, rt1] {
            let resp = app.revoke(&client, token).await;
            assert_eq!(resp.status(), 200);
            assert!(resp.bytes().await.expect("body").is_empty());
            assert_eq!(recorded(&app).await, start, "revoking an expired refresh token recorded something");
        }
        assert_eq!(app.introspect(&rs, at2).await["active"], true, "the family's access token was left alone");

        // The same request one second before the expiry revokes the family.
        let fresh = app.token(&client, &[]).await;
        app.clock.advance(59);
        assert_eq!(app.revoke(&client, fresh["refresh_token"].as_str().expect("rt")).await.status(), 200);
        let after = recorded(&app).await;
        assert_eq!(after.revoked_families, start.revoked_families + 1);
        assert_eq!(after.revocation_entries, start.revocation_entries + 1, "its access token is listed");
        assert_eq!(after.audit_events, start.audit_events + 1);
    }
}

both_backends! {
    /// RFC 7009 §2.1: an unknown hint is no error, the token is still found.
    async fn an_unknown_token_type_hint_is_ignored(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let body = app.token(&client, &[]).await;
        let at = app.access_token(&client).await;
        let rt = body["refresh_token"].as_str().expect("rt");
        let family_at = body["access_token"].as_str().expect("at");
        for token in [at.as_str(), rt] {
            let resp = revoke_with_hint(&app, &client, token, "foo").await;
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["cache-control"], "no-store");
        }
        assert_eq!(app.introspect(&rs, &at).await, json!({"active": false}));
        assert_eq!(app.introspect(&rs, family_at).await, json!({"active": false}));
        assert_eq!(refresh_status(&app, &client, rt).await, 400);
    }
}

both_backends! {
    /// Revoking a family's refresh token revokes the access tokens of every
    /// generation, the ones its refreshes issued included, and the feed
    /// lists each as a `token` entry.
    async fn revoking_a_refresh_token_revokes_the_access_tokens_its_refreshes_issued(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let first = app.token(&client, &[]).await;
        let mut access = vec![first["access_token"].as_str().expect("at").to_owned()];
        let mut rt = first["refresh_token"].as_str().expect("rt").to_owned();
        for _ in 0..2 {
            let next: Value = app
                .post_token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some((&client.id, &client.secret)))
                .await
                .json()
                .await
                .expect("JSON");
            access.push(next["access_token"].as_str().expect("at").to_owned());
            rt = next["refresh_token"].as_str().expect("rt").to_owned();
        }
        for at in &access {
            assert_eq!(app.introspect(&rs, at).await["active"], true);
        }
        let unrelated = app.access_token(&client).await;
        assert_eq!(app.revoke(&client, &rt).await.status(), 200);
        for at in &access {
            assert_eq!(app.introspect(&rs, at).await, json!({"active": false}));
        }
        assert_eq!(app.introspect(&rs, &unrelated).await["active"], true, "not of the family");

        let listed: Value = feed(&app, &rs, "").await.json().await.expect("JSON");
        let entries = listed["entries"].as_array().expect("entries");
        let mut jtis: Vec<&str> = entries.iter().map(|e| {
            assert_eq!(e["type"], "token", "{e}");
            assert_eq!(e["client_id"], client.id.as_str());
            e["jti"].as_str().expect("jti")
        }).collect();
        jtis.sort_unstable();
        let mut expected: Vec<String> = access.iter().map(|at| claims_of(at)["jti"].as_str().expect("jti").to_owned()).collect();
        expected.sort_unstable();
        assert_eq!(jtis, expected);
        for (entry, at) in entries.iter().map(|e| (e, access.iter().find(|at| claims_of(at)["jti"] == e["jti"]))) {
            assert_eq!(entry["exp"], claims_of(at.expect("listed token"))["exp"]);
        }
    }
}

both_backends! {
    async fn another_clients_tokens_are_never_revoked(backend) {
        let app = spawn_app(&backend).await;
        let owner = app.create_client(spec("read", &[API])).await;
        let other = app.create_client(spec("read", &[API])).await;
        let body = app.token(&owner, &[]).await;
        let at = body["access_token"].as_str().expect("at");
        let rt = body["refresh_token"].as_str().expect("rt");
        for token in [at, rt] {
            assert_eq!(app.revoke(&other, token).await.status(), 200, "the same answer as a success");
        }
        assert_eq!(app.introspect(&owner, at).await["active"], true);
        assert_eq!(refresh_status(&app, &owner, rt).await, 200);
    }
}

both_backends! {
    async fn revocation_requires_authentication_a_token_and_post(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let at = app.access_token(&client).await;
        let none = app.post_form("/oauth2/revoke", &[("token", &at)], None).await;
        assert_eq!(none.status(), 401);
        let bad = app.post_form("/oauth2/revoke", &[("token", &at)], Some((&client.id, "tsec_x"))).await;
        assert_eq!(bad.status(), 401);
        let missing = app.post_form("/oauth2/revoke", &[], Some((&client.id, &client.secret))).await;
        assert_eq!(missing.status(), 400);
        assert_eq!(missing.json::<Value>().await.expect("JSON")["error"], "invalid_request");
        let get = app.http.get(app.url(&format!("/oauth2/revoke?token={at}"))).send().await.expect("GET");
        assert_eq!(get.status(), 405);
        assert_eq!(app.introspect(&client, &at).await["active"], true, "nothing was revoked");
    }
}

both_backends! {
    async fn the_feed_lists_revocations_and_cut_offs_in_order_with_a_cursor(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let first = app.access_token(&client).await;
        let second = app.access_token(&client).await;
        assert_eq!(app.revoke(&client, &first).await.status(), 200);
        assert_eq!(app.revoke(&client, &second).await.status(), 200);

        let page: Value = feed(&app, &rs, "?limit=1").await.json().await.expect("JSON");
        assert_eq!(page["more"], true);
        let entry = &page["entries"][0];
        assert_eq!(entry["type"], "token");
        assert_eq!(entry["jti"], claims_of(&first)["jti"]);
        assert_eq!(entry["exp"], claims_of(&first)["exp"]);
        assert_eq!(entry["client_id"], client.id.as_str());
        let next = page["next"].as_i64().expect("next");

        let page: Value = feed(&app, &rs, &format!("?after={next}")).await.json().await.expect("JSON");
        assert_eq!(page["more"], false);
        assert_eq!(page["entries"].as_array().expect("entries").len(), 1);
        assert_eq!(page["entries"][0]["jti"], claims_of(&second)["jti"]);
        let next = page["next"].as_i64().expect("next");

        let empty: Value = feed(&app, &rs, &format!("?after={next}")).await.json().await.expect("JSON");
        assert_eq!(empty["entries"], serde_json::json!([]));
        assert_eq!(empty["next"], next, "the cursor stays put when nothing is new");

        app.revoke_all(&client.id).await;
        let cut: Value = feed(&app, &rs, &format!("?after={next}")).await.json().await.expect("JSON");
        let entry = &cut["entries"][0];
        assert_eq!(entry["type"], "client");
        assert_eq!(entry["client_id"], client.id.as_str());
        assert_eq!(entry["tokens_valid_after"], app.clock_now());
        assert!(entry["exp"].as_i64().expect("exp") > app.clock_now());

        // Entries leave the feed once the tokens they revoke have expired
        // and the clock leeway has passed.
        app.clock.advance(300 + 60 + 1);
        let later: Value = feed(&app, &rs, "").await.json().await.expect("JSON");
        let types: Vec<&str> = later["entries"].as_array().expect("entries")
            .iter().map(|e| e["type"].as_str().expect("type")).collect();
        assert_eq!(types, ["client"], "expired token entries are gone, the cut-off stays");
    }
}

both_backends! {
    async fn the_feed_is_for_authenticated_resource_servers_only(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rs = resource_server(&app).await;
        let anonymous = app.http.get(app.url("/oauth2/revocations")).send().await.expect("GET");
        assert_eq!(anonymous.status(), 401);
        let plain = feed(&app, &client, "").await;
        assert_eq!(plain.status(), 403);
        assert_eq!(plain.json::<Value>().await.expect("JSON")["error"], "access_denied");
        for bad in ["?after=-1", "?after=abc", "?after=1&after=2", "?limit=x"] {
            let resp = feed(&app, &rs, bad).await;
            assert_eq!(resp.status(), 400, "{bad}");
        }
        let ok = feed(&app, &rs, "").await;
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["cache-control"], "no-store");
    }
}

both_backends! {
    async fn acknowledged_revocations_survive_a_kill_9(backend) {
        let app = spawn_app(&backend).await;
        app.stop().await;
        let client = app.create_client(spec("read", &[API])).await;
        let http = reqwest::Client::new();
        let config = ProcessConfig::of(&app);
        let start = |config: ProcessConfig| {
            actix_web::rt::task::spawn_blocking(move || start_binary(&config, &[]))
        };
        let (mut server, base) = start(config.clone()).await.expect("task");
        let auth = basic_header(&client.id, &client.secret);
        let mut tokens = Vec::new();
        for _ in 0..25 {
            let body: Value = http
                .post(format!("{base}/oauth2/token"))
                .header("authorization", &auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send().await.expect("token").json().await.expect("JSON");
            tokens.push(body["access_token"].as_str().expect("at").to_owned());
        }
        for token in &tokens {
            let resp = http
                .post(format!("{base}/oauth2/revoke"))
                .header("authorization", &auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}"))
                .send().await.expect("revoke");
            assert_eq!(resp.status(), 200);
        }
        // SIGKILL right after the last acknowledgement: no shutdown, no flush.
        server.kill().expect("kill -9");
        server.wait().expect("reaped");

        let (mut server, base) = start(config).await.expect("task");
        for token in &tokens {
            let answer: Value = http
                .post(format!("{base}/oauth2/introspect"))
                .header("authorization", &auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}"))
                .send().await.expect("introspect").json().await.expect("JSON");
            assert_eq!(answer, serde_json::json!({"active": false}), "a revocation was lost");
        }
        server.kill().expect("stop");
        server.wait().expect("reaped");
    }
}
