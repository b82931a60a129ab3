//! The client cache: a client that authenticated once is served from memory,
//! and its staleness is bounded. Every change to a client or its secrets
//! moves a counter in the database (by trigger, whoever writes); a node
//! drops its cache when it sees the counter move, and at once after a
//! change through its own admin API. Cross-node bounds are tested in
//! `cluster.rs`.

use diesel::RunQueryDsl;
use serde_json::json;
use tessera::store::clients as client_store;

use crate::both_backends;
use crate::helpers::{
    IMMEDIATE_CUTOFF, TestApp, TestClient, basic_header, spawn_app, spawn_app_with, spec,
};

const API: &str = "https://api.example.com";

/// Client-credentials status for `client` with `secret`.
async fn status(app: &TestApp, client: &TestClient, secret: &str) -> u16 {
    app.http
        .post(app.url("/oauth2/token"))
        .header("authorization", basic_header(&client.id, secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16()
}

/// (hits, misses) of the client cache, from `/metrics`.
async fn lookups(app: &TestApp) -> (u64, u64) {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics");
    let count = |result: &str| {
        let key = format!("tessera_client_cache_lookups_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the metrics"))
    };
    (count("hit"), count("miss"))
}

fn generation(app: &TestApp) -> i64 {
    let db = app.database();
    let mut conn = db.conn().expect("connection");
    client_store::generation(&mut conn).expect("generation")
}

both_backends! {
    /// The counter moves with every change an operator can make, whatever
    /// makes it, and not with the once-a-minute `last_token_at` bookkeeping
    /// (which would drop every cache every minute).
    async fn every_client_change_moves_the_counter_and_bookkeeping_does_not(backend) {
        let app = spawn_app(&backend).await;
        let now = app.clock_now();
        let before = generation(&app);
        let client = app.create_client(spec("read", &[API])).await;
        let mut seen = generation(&app);
        assert!(seen > before, "create");

        let db = app.database();
        let mut conn = db.conn().expect("connection");
        let id = client.id.clone();
        let changed = |what: &str, conn: &mut tessera::store::DbConnection, seen: &mut i64| {
            let now_seen = client_store::generation(conn).expect("generation");
            assert!(now_seen > *seen, "{what} moved the counter");
            *seen = now_seen;
        };
        tessera::clients::rotate_secret(&mut conn, &id, 60, now).expect("rotate");
        changed("rotate-secret", &mut conn, &mut seen);
        tessera::clients::disable(&mut conn, &id, now, IMMEDIATE_CUTOFF).expect("disable");
        changed("disable", &mut conn, &mut seen);
        tessera::clients::enable(&mut conn, &id, now).expect("enable");
        changed("enable", &mut conn, &mut seen);
        tessera::clients::revoke_all(&mut conn, &id, now + 1, IMMEDIATE_CUTOFF).expect("revoke-all");
        changed("revoke-all", &mut conn, &mut seen);
        let update = tessera::http::admin::client_update(
            json!({"scope": "read write"}).to_string().as_bytes(),
        )
        .expect("update body");
        tessera::clients::update(&mut conn, &id, &update, now).expect("update");
        changed("update", &mut conn, &mut seen);
        // A hand-written statement counts too: the trigger, not the code
        // path, moves the counter.
        diesel::sql_query(format!("UPDATE clients SET name = 'renamed' WHERE id = '{id}'"))
            .execute(&mut *conn)
            .expect("hand-written update");
        changed("hand-written UPDATE", &mut conn, &mut seen);

        client_store::touch_last_token(&mut conn, &id, now + 120).expect("touch");
        assert_eq!(
            client_store::generation(&mut conn).expect("generation"),
            seen,
            "last_token_at is bookkeeping"
        );

        tessera::clients::delete(&mut conn, &id, now, IMMEDIATE_CUTOFF).expect("delete");
        changed("delete", &mut conn, &mut seen);
    }
}

both_backends! {
    /// The first authentication reads the database; the next ones with the
    /// same secret are answered from memory. A wrong secret is never
    /// answered from the cache.
    async fn a_client_that_authenticated_is_served_from_memory(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        app.sync_clients().await;
        let (hits, misses) = lookups(&app).await;
        assert_eq!(status(&app, &client, &client.secret).await, 200);
        assert_eq!(lookups(&app).await, (hits, misses + 1), "the first one reads the database");
        assert_eq!(status(&app, &client, &client.secret).await, 200);
        assert_eq!(status(&app, &client, &client.secret).await, 200);
        assert_eq!(lookups(&app).await, (hits + 2, misses + 1), "the next ones do not");
        assert_eq!(status(&app, &client, "wrong").await, 401);
        assert_eq!(lookups(&app).await, (hits + 2, misses + 2), "a wrong secret goes to the database");
    }
}

both_backends! {
    /// `TESSERA_CLIENT_CHECK_INTERVAL=0` turns the cache off: every
    /// authentication reads the database, so every change holds at once.
    async fn with_no_check_interval_every_authentication_reads_the_database(backend) {
        let app = spawn_app_with(&backend, |s| s.client_check_interval = 0).await;
        let client = app.create_client(spec("read", &[API])).await;
        for _ in 0..3 {
            assert_eq!(status(&app, &client, &client.secret).await, 200);
        }
        let (hits, misses) = lookups(&app).await;
        assert_eq!((hits, misses), (0, 3));
        let db = app.database();
        tessera::clients::disable(&mut db.conn().expect("connection"), &client.id, app.clock_now(), IMMEDIATE_CUTOFF)
            .expect("disable");
        assert_eq!(status(&app, &client, &client.secret).await, 401, "no check needed");
    }
}

both_backends! {
    /// A change through this node's admin API holds on this node on the
    /// very next request, with no check in between.
    async fn a_change_through_this_nodes_admin_api_holds_at_once(backend) {
        let app = spawn_app(&backend).await;
        let mut admin = spec("tessera:admin", &[]);
        admin.name = "admin".to_owned();
        let admin = app.create_client(admin).await;
        let bearer = app.access_token(&admin).await;
        let client = app.create_client(spec("read", &[API])).await;
        app.sync_clients().await;
        assert_eq!(status(&app, &client, &client.secret).await, 200);
        assert_eq!(status(&app, &client, &client.secret).await, 200, "cached now");

        let rotated = app
            .http
            .post(app.url(&format!("/admin/clients/{}/rotate-secret", client.id)))
            .header("authorization", format!("Bearer {bearer}"))
            .json(&json!({"grace_seconds": 0}))
            .send()
            .await
            .expect("rotate");
        assert_eq!(rotated.status().as_u16(), 200);
        assert_eq!(status(&app, &client, &client.secret).await, 401, "the old secret, at once");

        let disabled = app
            .http
            .post(app.url(&format!("/admin/clients/{}/disable", client.id)))
            .header("authorization", format!("Bearer {bearer}"))
            .send()
            .await
            .expect("disable");
        assert_eq!(disabled.status().as_u16(), 200);
        let new_secret: serde_json::Value = rotated.json().await.expect("rotation body");
        let new_secret = new_secret["client_secret"].as_str().expect("secret");
        assert_eq!(status(&app, &client, new_secret).await, 401, "disabled, at once");
    }
}

both_backends! {
    /// A change made behind the server's back (the CLI, another node) is
    /// picked up by the node's own background check, within two check
    /// intervals. The test waits for it with a generous deadline and fails
    /// if it never comes.
    async fn the_background_check_picks_up_a_change_made_elsewhere(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        app.sync_clients().await;
        assert_eq!(status(&app, &client, &client.secret).await, 200);
        let db = app.database();
        tessera::clients::disable(&mut db.conn().expect("connection"), &client.id, app.clock_now(), IMMEDIATE_CUTOFF)
            .expect("disable");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let now = status(&app, &client, &client.secret).await;
            if now == 401 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "still {now} long after the change");
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

both_backends! {
    /// A node that cannot read the change counter drops its cache and stops
    /// trusting it: it could not tell a change from no change. Here the
    /// check fails because its table is gone; the next authentication reads
    /// the database again.
    async fn a_failed_check_drops_the_cache(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        app.sync_clients().await;
        assert_eq!(status(&app, &client, &client.secret).await, 200);
        assert!(!app.clients.is_empty(), "cached");

        let db = app.database();
        diesel::sql_query("ALTER TABLE client_generation RENAME TO client_generation_gone")
            .execute(&mut *db.conn().expect("connection"))
            .expect("rename");
        assert!(app.clients.check(&db).await.is_err(), "the check fails");
        assert!(app.clients.is_empty(), "and drops the cache");
        let (hits, misses) = lookups(&app).await;
        assert_eq!(status(&app, &client, &client.secret).await, 200);
        assert_eq!(lookups(&app).await, (hits, misses + 1), "untrusted: read from the database");
    }
}

/// The feed's cut-off for `client_id`, as an offline validator reads it.
async fn feed_cutoff(app: &TestApp, reader: &TestClient, client_id: &str) -> Option<i64> {
    let resp = app
        .http
        .get(app.url("/oauth2/revocations?limit=1000"))
        .header("authorization", basic_header(&reader.id, &reader.secret))
        .send()
        .await
        .expect("feed");
    assert_eq!(resp.status(), 200);
    let feed: serde_json::Value = resp.json().await.expect("feed JSON");
    feed["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["type"] == "client" && e["client_id"] == client_id)
        .filter_map(|e| e["tokens_valid_after"].as_i64())
        .max()
}

both_backends! {
    /// A change made elsewhere (the CLI, another node) reaches a node's cache
    /// only at its next check, so until then that node may still mint
    /// tokens for a client just disabled (or with a secret just replaced).
    /// The cut-off is placed past that window, so those tokens are revoked
    /// too, for introspection and for offline validators following the feed,
    /// even once the client is enabled again. With the cut-off at the moment
    /// of the change, the token minted five seconds later would be live.
    async fn tokens_a_stale_node_mints_after_a_cut_off_elsewhere_are_covered(backend) {
        // No background check during the test: the node stays stale until
        // the test syncs it.
        // The longest interval the leeway allows (2 × 149 + 1 ≤ 300).
        let app = spawn_app_with(&backend, |s| {
            s.clock_leeway = 300;
            s.client_check_interval = 149;
        })
        .await;
        let settings = tessera::config::Settings {
            clock_leeway: 300,
            client_check_interval: 149,
            ..Default::default()
        };
        let timing = tessera::clients::CutoffTiming::from_settings(&settings);
        assert_eq!(timing.propagation, 2 * 149 + 1);

        let mut rs = spec("", &[]);
        rs.can_introspect = true;
        let rs = app.create_client(rs).await;
        let client = app.create_client(spec("read", &[API])).await;
        app.sync_clients().await;
        assert_eq!(status(&app, &client, &client.secret).await, 200, "cached now");

        let db = app.database();
        let disabled_at = app.clock_now();
        tessera::clients::disable(&mut db.conn().expect("connection"), &client.id, disabled_at, timing)
            .expect("disable elsewhere");
        app.clock.advance(5);
        let stale = app.access_token(&client).await;
        let iat = crate::helpers::claims_of(&stale)["iat"].as_i64().expect("iat");
        assert!(iat > disabled_at, "minted after the change, by a node that has not seen it");

        tessera::clients::enable(&mut db.conn().expect("connection"), &client.id, app.clock_now())
            .expect("enable");
        app.sync_clients().await;
        assert_eq!(
            app.introspect(&rs, &stale).await,
            json!({"active": false}),
            "the stale node's token is cut off, not only refused while disabled"
        );
        let cutoff = feed_cutoff(&app, &rs, &client.id).await.expect("a cut-off in the feed");
        assert!(iat <= cutoff, "an offline validator drops it too: iat {iat}, cut-off {cutoff}");
        assert_eq!(cutoff, disabled_at + timing.propagation);

        // Past the window, the client's tokens are good again.
        app.clock.advance(timing.propagation);
        let fresh = app.access_token(&client).await;
        assert_eq!(app.introspect(&rs, &fresh).await["active"], true);
    }
}
