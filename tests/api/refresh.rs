//! The refresh-token grant: rotation, reuse detection, the race, lifetimes,
//! the grace window, and the janitor keeping the tables bounded.

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, TokenResponse, TokenUrl};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{TestApp, TestClient, claims_of, spawn_app, spawn_app_with, spec};

const API: &str = "https://api.example.com";
const OTHER_API: &str = "https://other.example.com";
const INVALID_GRANT: u16 = 400;

/// `grant_type=refresh_token` with Basic credentials; returns status and body.
async fn refresh(
    app: &TestApp,
    client: &TestClient,
    rt: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    form.extend_from_slice(extra);
    let resp = app
        .post_token(&form, Some((&client.id, &client.secret)))
        .await;
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.expect("JSON"))
}

fn rt_of(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

fn jti_of(body: &Value) -> String {
    claims_of(body["access_token"].as_str().expect("access_token"))["jti"]
        .as_str()
        .expect("jti")
        .to_owned()
}

async fn is_revoked(app: &TestApp, jti: &str) -> bool {
    let db = app.database();
    let jti = jti.to_owned();
    actix_web::rt::task::spawn_blocking(move || {
        tessera::store::revocation::is_revoked(&mut db.conn().expect("conn"), &jti).expect("query")
    })
    .await
    .expect("task")
}

async fn counts(app: &TestApp) -> tessera::store::refresh::Counts {
    let db = app.database();
    actix_web::rt::task::spawn_blocking(move || {
        tessera::store::refresh::counts(&mut db.conn().expect("conn")).expect("counts")
    })
    .await
    .expect("task")
}

both_backends! {
    async fn oauth2_crate_refreshes_and_every_use_rotates(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let oauth = BasicClient::new(ClientId::new(client.id.clone()))
            .set_client_secret(ClientSecret::new(client.secret.clone()))
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("URL"));
        let first = oauth.exchange_client_credentials().request_async(&app.http).await.expect("token");
        let rt1 = first.refresh_token().expect("refresh token").clone();

        let second = oauth.exchange_refresh_token(&rt1).request_async(&app.http).await.expect("refresh");
        let rt2 = second.refresh_token().expect("rotated refresh token").clone();
        assert_ne!(rt1.secret(), rt2.secret());
        assert!(rt2.secret().starts_with("trt_"));
        let claims = app
            .verify_offline(second.access_token().secret(), API)
            .await
            .expect("refreshed access token verifies");
        assert_ne!(claims["jti"], claims_of(first.access_token().secret())["jti"]);
        assert_eq!(claims["sub"], client.id.as_str());

        let third = oauth.exchange_refresh_token(&rt2).request_async(&app.http).await.expect("refresh again");
        assert!(third.refresh_token().is_some());
        let again = oauth.exchange_refresh_token(&rt1).request_async(&app.http).await;
        assert!(again.is_err(), "a used refresh token is refused");
    }
}

both_backends! {
    async fn reuse_revokes_the_family_and_every_access_token_it_issued(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let first = app.token(&client, &[]).await;
        let rt1 = rt_of(&first);
        let (status, second) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200);
        let rt2 = rt_of(&second);
        assert!(!is_revoked(&app, &jti_of(&first)).await);

        let (status, body) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, INVALID_GRANT);
        assert_eq!(body["error"], "invalid_grant");

        let (status, body) = refresh(&app, &client, &rt2, &[]).await;
        assert_eq!(status, INVALID_GRANT, "the whole family is revoked");
        assert_eq!(body["error"], "invalid_grant");
        assert!(is_revoked(&app, &jti_of(&first)).await, "the first access token is on the list");
        assert!(is_revoked(&app, &jti_of(&second)).await, "the refreshed access token is on the list");

        // Other families of the same client are untouched.
        let other = app.token(&client, &[]).await;
        assert_eq!(refresh(&app, &client, &rt_of(&other), &[]).await.0, 200);
    }
}

both_backends! {
    async fn another_clients_refresh_token_is_refused_and_its_family_left_alone(backend) {
        let app = spawn_app(&backend).await;
        let owner = app.create_client(spec("read", &[API])).await;
        let thief = app.create_client(spec("read", &[API])).await;
        let rt = rt_of(&app.token(&owner, &[]).await);
        for _ in 0..2 {
            let (status, body) = refresh(&app, &thief, &rt, &[]).await;
            assert_eq!(status, INVALID_GRANT);
            assert_eq!(body["error"], "invalid_grant");
        }
        assert_eq!(refresh(&app, &owner, &rt, &[]).await.0, 200, "the owner's token still works");
    }
}

both_backends! {
    async fn garbage_or_tampered_refresh_tokens_are_invalid_grant_and_revoke_nothing(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt = rt_of(&app.token(&client, &[]).await);
        let mut tampered = rt.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ASCII");
        for bad in [tampered.as_str(), "trt_", "garbage", &rt[..rt.len() - 3]] {
            let (status, body) = refresh(&app, &client, bad, &[]).await;
            assert_eq!(status, INVALID_GRANT, "{bad}");
            assert_eq!(body["error"], "invalid_grant");
        }
        assert_eq!(refresh(&app, &client, &rt, &[]).await.0, 200);
    }
}

both_backends! {
    async fn scope_may_narrow_on_refresh_but_never_widen(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read write", &[API])).await;

        let narrow_family = rt_of(&app.token(&client, &[("scope", "read")]).await);
        let (status, body) = refresh(&app, &client, &narrow_family, &[("scope", "read write")]).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_scope");
        let (status, body) = refresh(&app, &client, &narrow_family, &[]).await;
        assert_eq!(status, 200, "a refused widening changes nothing");
        assert_eq!(body["scope"], "read");

        let full = rt_of(&app.token(&client, &[]).await);
        let (status, narrowed) = refresh(&app, &client, &full, &[("scope", "read")]).await;
        assert_eq!(status, 200);
        assert_eq!(narrowed["scope"], "read");
        assert_eq!(claims_of(narrowed["access_token"].as_str().expect("token"))["scope"], "read");
        // RFC 6749 §6: the new refresh token keeps the original scope.
        let (status, restored) = refresh(&app, &client, &rt_of(&narrowed), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(restored["scope"], "read write");
    }
}

both_backends! {
    async fn resource_may_pick_among_the_familys_audiences(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API, OTHER_API])).await;
        let rt = rt_of(&app.token(&client, &[]).await);
        let (status, body) = refresh(&app, &client, &rt, &[("resource", OTHER_API)]).await;
        assert_eq!(status, 200);
        assert_eq!(claims_of(body["access_token"].as_str().expect("token"))["aud"], OTHER_API);

        let only_api = rt_of(&app.token(&client, &[("resource", API)]).await);
        let (status, body) = refresh(&app, &client, &only_api, &[("resource", OTHER_API)]).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_target");
    }
}

both_backends! {
    async fn idle_and_absolute_lifetimes_end_a_family(backend) {
        let app = spawn_app(&backend).await;
        let mut short = spec("read", &[API]);
        short.refresh_token_ttl = Some(3600);
        short.refresh_family_ttl = Some(7200);
        let client = app.create_client(short).await;

        // Idle: unused for longer than its lifetime.
        let idle = rt_of(&app.token(&client, &[]).await);
        app.clock.advance(3601);
        assert_eq!(refresh(&app, &client, &idle, &[]).await.0, INVALID_GRANT);

        // Absolute: rotated often, still ends when the family does.
        let mut rt = rt_of(&app.token(&client, &[]).await);
        for _ in 0..2 {
            app.clock.advance(3000);
            let (status, body) = refresh(&app, &client, &rt, &[]).await;
            assert_eq!(status, 200);
            rt = rt_of(&body);
        }
        app.clock.advance(1201);
        let (status, body) = refresh(&app, &client, &rt, &[]).await;
        assert_eq!(status, INVALID_GRANT, "the family's absolute lifetime has passed");
        assert_eq!(body["error"], "invalid_grant");
    }
}

both_backends! {
    async fn parallel_refreshes_of_one_token_let_exactly_one_succeed(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        for round in 0..15 {
            let rt = rt_of(&app.token(&client, &[]).await);
            let attempts = (0..20).map(|_| refresh(&app, &client, &rt, &[]));
            let results = futures_util::future::join_all(attempts).await;
            let ok: Vec<&Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
            assert_eq!(ok.len(), 1, "round {round}: exactly one success, got {results:?}");
            for (status, body) in &results {
                if *status != 200 {
                    assert_eq!(*status, INVALID_GRANT, "round {round}: {body}");
                    assert_eq!(body["error"], "invalid_grant");
                }
            }
            // The losers were reuse: the winner's successor died with the family.
            let (status, _) = refresh(&app, &client, &rt_of(ok[0]), &[]).await;
            assert_eq!(status, INVALID_GRANT, "round {round}: no live token survives the race");
        }
    }
}

both_backends! {
    async fn within_the_grace_window_a_lost_response_can_be_retried(backend) {
        let app = spawn_app_with(&backend, |s| s.refresh_grace = 30).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&client, &[]).await);
        let (status, lost) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200);
        let rt2 = rt_of(&lost);

        app.clock.advance(5);
        let (status, retried) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200, "retry within the window");
        let rt3 = rt_of(&retried);
        assert_ne!(rt3, rt2);

        // The retry used up the successor the client never saw, so the family
        // still has exactly one live token: rt3.
        app.clock.advance(60);
        let (status, _) = refresh(&app, &client, &rt2, &[]).await;
        assert_eq!(status, INVALID_GRANT, "rt2 was superseded; presenting it after the window is reuse");
        let (status, _) = refresh(&app, &client, &rt3, &[]).await;
        assert_eq!(status, INVALID_GRANT, "and reuse revoked the family");
    }
}

both_backends! {
    async fn without_grace_a_retry_is_reuse(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&client, &[]).await);
        let (_, second) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(refresh(&app, &client, &rt1, &[]).await.0, INVALID_GRANT);
        assert_eq!(refresh(&app, &client, &rt_of(&second), &[]).await.0, INVALID_GRANT);
    }
}

both_backends! {
    async fn a_client_with_refresh_tokens_off_gets_none_and_may_not_refresh(backend) {
        let app = spawn_app(&backend).await;
        let mut off = spec("read", &[API]);
        off.refresh_tokens = false;
        let client = app.create_client(off).await;
        let body = app.token(&client, &[]).await;
        assert!(body.get("refresh_token").is_none());
        let (status, body) = refresh(&app, &client, "trt_anything", &[]).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "unauthorized_client");
    }
}

both_backends! {
    async fn a_disabled_or_deleted_client_cannot_refresh(backend) {
        let app = spawn_app(&backend).await;
        for delete in [false, true] {
            let client = app.create_client(spec("read", &[API])).await;
            let rt = rt_of(&app.token(&client, &[]).await);
            if delete {
                app.delete_client(&client.id).await;
            } else {
                app.disable_client(&client.id).await;
            }
            let (status, body) = refresh(&app, &client, &rt, &[]).await;
            assert_eq!(status, 401);
            assert_eq!(body["error"], "invalid_client");
        }
    }
}

both_backends! {
    async fn refreshing_without_client_authentication_is_invalid_client(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt = rt_of(&app.token(&client, &[]).await);
        let resp = app
            .post_token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)], None)
            .await;
        assert_eq!(resp.status(), 401);
        assert_eq!(refresh(&app, &client, &rt, &[]).await.0, 200, "and the token was not touched");
    }
}

both_backends! {
    async fn the_janitor_keeps_the_tables_bounded(backend) {
        let app = spawn_app_with(&backend, |s| s.janitor_interval = 1).await;
        let mut short = spec("read", &[API]);
        short.access_token_ttl = 60;
        short.refresh_token_ttl = Some(60);
        short.refresh_family_ttl = Some(120);
        let client = app.create_client(short).await;
        for _ in 0..10 {
            let rt = rt_of(&app.token(&client, &[]).await);
            assert_eq!(refresh(&app, &client, &rt, &[]).await.0, 200);
            // Reuse, so revocation entries exist too.
            assert_eq!(refresh(&app, &client, &rt, &[]).await.0, INVALID_GRANT);
        }
        let before = counts(&app).await;
        assert_eq!(before.families, 10);
        assert!(before.refresh_tokens >= 20 && before.revoked_tokens >= 20, "{before:?}");

        // Past every expiry plus the clock leeway: everything can go.
        app.clock.advance(120 + 60 + 1);
        let mut after = counts(&app).await;
        for _ in 0..100 {
            if after == tessera::store::refresh::Counts::default() {
                break;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
            after = counts(&app).await;
        }
        assert_eq!(after, tessera::store::refresh::Counts::default(), "janitor left {after:?}");
    }
}

both_backends! {
    async fn a_bad_scope_does_not_hide_reuse(backend) {
        // A thief replaying a used token cannot dodge reuse detection by
        // sending a scope or resource the family does not allow.
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&client, &[]).await);
        let (_, second) = refresh(&app, &client, &rt1, &[]).await;
        let (status, body) = refresh(&app, &client, &rt1, &[("scope", "admin")]).await;
        assert_eq!(status, INVALID_GRANT);
        assert_eq!(body["error"], "invalid_grant");
        let (status, _) = refresh(&app, &client, &rt_of(&second), &[]).await;
        assert_eq!(status, INVALID_GRANT, "the family was revoked");

        // An expired token with a bad scope is invalid_grant too.
        let mut short = spec("read", &[API]);
        short.refresh_token_ttl = Some(60);
        let other = app.create_client(short).await;
        let rt = rt_of(&app.token(&other, &[]).await);
        app.clock.advance(61);
        let (_, body) = refresh(&app, &other, &rt, &[("resource", "https://x.example")]).await;
        assert_eq!(body["error"], "invalid_grant");
    }
}

both_backends! {
    async fn grace_does_not_let_a_thief_and_the_client_take_turns(backend) {
        // Within the window, a thief replays rt1 and gets a successor; the
        // client then presents rt2, which is no longer the live token's
        // predecessor: that is reuse, and the family dies.
        let app = spawn_app_with(&backend, |s| s.refresh_grace = 30).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&client, &[]).await);
        let (_, second) = refresh(&app, &client, &rt1, &[]).await;
        let rt2 = rt_of(&second);
        app.clock.advance(2);
        let (status, stolen) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200, "a retry of the head's predecessor");
        app.clock.advance(2);
        let (status, body) = refresh(&app, &client, &rt2, &[]).await;
        assert_eq!(status, INVALID_GRANT);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(refresh(&app, &client, &rt_of(&stolen), &[]).await.0, INVALID_GRANT, "family revoked");
    }
}
