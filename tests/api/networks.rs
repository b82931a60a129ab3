//! Per-client network allowlists, IPv4 and IPv6, and X-Forwarded-For only
//! from trusted proxies.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, spawn_app, spawn_app_with, spec};

const API: &str = "https://api.example.com";

async fn status_from(app: &TestApp, id: &str, secret: &str, forwarded: Option<&str>) -> u16 {
    let mut req = app
        .http
        .post(app.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", crate::helpers::basic_header(id, secret))
        .body("grant_type=client_credentials");
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.expect("request").status().as_u16()
}

fn restricted(networks: &[&str]) -> tessera::clients::ClientSpec {
    let mut s = spec("read", &[API]);
    s.allowed_networks = networks.iter().map(|n| (*n).to_owned()).collect();
    s
}

both_backends! {
    async fn a_client_outside_its_networks_is_invalid_client_and_audited(backend) {
        let app = spawn_app(&backend).await;
        let local = app.create_client(restricted(&["127.0.0.0/8"])).await;
        assert_eq!(status_from(&app, &local.id, &local.secret, None).await, 200);

        let office = app.create_client(restricted(&["10.0.0.0/8", "2001:db8::/32"])).await;
        assert_eq!(status_from(&app, &office.id, &office.secret, None).await, 401);
        // The header means nothing without a trusted proxy.
        assert_eq!(status_from(&app, &office.id, &office.secret, Some("10.1.2.3")).await, 401);

        let v6 = app.create_client(restricted(&["::1/128"])).await;
        assert_eq!(status_from(&app, &v6.id, &v6.secret, None).await, 401, "127.0.0.1 is not ::1");

        let db = app.database();
        let events = tessera::store::audit::list(&mut db.conn().expect("conn"), Some(&office.id), None, 10)
            .expect("audit");
        let denied: Vec<&tessera::store::audit::AuditEvent> =
            events.iter().filter(|e| e.kind == "client_auth_failed").collect();
        assert_eq!(denied.len(), 2);
        assert!(denied.iter().all(|e| e.source.as_deref() == Some("127.0.0.1")));
        assert!(denied[0].detail.as_deref().unwrap_or_default().contains("allowed networks"));
    }
}

both_backends! {
    async fn an_ipv6_client_inside_its_network_gets_a_token(backend) {
        let app = match std::net::TcpListener::bind("[::1]:0") {
            Ok(_) => spawn_app_with(&backend, |s| s.bind = "[::1]:0".to_owned()).await,
            Err(_) => {
                assert!(std::env::var_os("CI").is_none(), "IPv6 loopback is needed under CI");
                eprintln!("SKIPPED IPv6 allowlist: no IPv6 loopback on this machine");
                return;
            }
        };
        let v6 = app.create_client(restricted(&["::1/128"])).await;
        let url = format!("http://[::1]:{}/oauth2/token", app.port);
        let resp = app
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", crate::helpers::basic_header(&v6.id, &v6.secret))
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
    }
}

both_backends! {
    async fn behind_a_trusted_proxy_the_forwarded_address_counts_and_a_spoof_does_not(backend) {
        let app = spawn_app_with(&backend, |s| s.trusted_proxies = "127.0.0.1/32".to_owned()).await;
        let partner = app.create_client(restricted(&["203.0.113.0/24"])).await;
        assert_eq!(status_from(&app, &partner.id, &partner.secret, Some("203.0.113.7")).await, 200);
        assert_eq!(status_from(&app, &partner.id, &partner.secret, None).await, 401, "the proxy itself is not the partner");
        // A client forging an allowed address to the left of its real one:
        // the proxy appends the real address, and the rightmost untrusted
        // hop is the one that counts.
        assert_eq!(status_from(&app, &partner.id, &partner.secret, Some("203.0.113.7, 198.51.100.9")).await, 401);
        assert_eq!(status_from(&app, &partner.id, &partner.secret, Some("not-an-ip")).await, 401);
    }
}

both_backends! {
    async fn networks_are_managed_from_the_cli_and_the_admin_api(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(restricted(&["10.0.0.0/8"])).await;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["client", "update", &client.id, "--allow-network", "127.0.0.1", "--allow-network", "::1", "--json"])
            .current_dir(app.dir.path())
            .env("TESSERA_DATABASE_URL", &app.db.url)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let view: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(view["allowed_networks"], serde_json::json!(["127.0.0.1/32", "::1/128"]));
        assert_eq!(status_from(&app, &client.id, &client.secret, None).await, 200);

        let bad = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["client", "update", &client.id, "--allow-network", "10.0.0.0/33"])
            .current_dir(app.dir.path())
            .env("TESSERA_DATABASE_URL", &app.db.url)
            .output()
            .expect("run");
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("--allow-network"));
    }
}

async fn admin_call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let resp = app
        .http
        .request(method, app.url(path))
        .header("authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

both_backends! {
    async fn networks_set_through_the_admin_api_are_enforced(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let mut admin = spec("tessera:admin", &[]);
        admin.name = "admin".to_owned();
        let admin = app.create_client(admin).await;
        let token = app.access_token(&admin).await;

        let (status, created) = admin_call(&app, &token, Method::POST, "/admin/clients",
            json!({"name": "partner", "client_id": "partner", "audiences": [API], "allowed_networks": ["10.0.0.0/8", "2001:db8::/32"]})).await;
        assert_eq!(status, 201, "{created}");
        let secret = created["client_secret"].as_str().expect("secret").to_owned();
        assert_eq!(status_from(&app, "partner", &secret, None).await, 401, "127.0.0.1 is in neither");

        let set = async |networks: Value| {
            let (status, view) = admin_call(&app, &token, Method::PATCH, "/admin/clients/partner", json!({"allowed_networks": networks})).await;
            assert_eq!(status, 200, "{view}");
            view["allowed_networks"].clone()
        };
        assert_eq!(set(json!(["127.0.0.1"])).await, json!(["127.0.0.1/32"]));
        assert_eq!(status_from(&app, "partner", &secret, None).await, 200);
        assert_eq!(set(json!(["::1"])).await, json!(["::1/128"]));
        assert_eq!(status_from(&app, "partner", &secret, None).await, 401, "127.0.0.1 is not ::1");
        assert_eq!(set(json!([])).await, json!([]));
        assert_eq!(status_from(&app, "partner", &secret, None).await, 200, "[] lifts the restriction");
        assert_eq!(set(json!(["10.0.0.0/8"])).await, json!(["10.0.0.0/8"]));
        assert_eq!(status_from(&app, "partner", &secret, None).await, 401);

        let (status, body) = admin_call(&app, &token, Method::PATCH, "/admin/clients/partner", json!({"allowed_networks": ["10.0.0.0/33"]})).await;
        assert_eq!(status, 400);
        assert!(body["error_description"].as_str().unwrap_or_default().contains("--allow-network"), "{body}");
        let (_, shown) = admin_call(&app, &token, Method::GET, "/admin/clients/partner", Value::Null).await;
        assert_eq!(shown["allowed_networks"], json!(["10.0.0.0/8"]), "a refused change changes nothing");

        let db = app.database();
        let events = tessera::store::audit::list(&mut db.conn().expect("conn"), Some("partner"), None, 50).expect("audit");
        let denied: Vec<_> = events.iter().filter(|e| e.kind == "client_auth_failed").collect();
        assert_eq!(denied.len(), 3);
        assert!(denied.iter().all(|e| e.detail.as_deref().unwrap_or_default().contains("allowed networks")));
    }
}

both_backends! {
    async fn a_forwarded_address_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(backend) {
        // Proxies are configured, but this connection comes from none of them.
        let app = spawn_app_with(&backend, |s| s.trusted_proxies = "10.9.9.9/32, 2001:db8:ffff::/48".to_owned()).await;
        let partner = app.create_client(restricted(&["203.0.113.0/24"])).await;
        assert_eq!(status_from(&app, &partner.id, &partner.secret, Some("203.0.113.7")).await, 401, "a spoofed allowed address");
        let local = app.create_client(restricted(&["127.0.0.0/8"])).await;
        assert_eq!(status_from(&app, &local.id, &local.secret, Some("203.0.113.7")).await, 200, "the real peer counts");

        let db = app.database();
        let events = tessera::store::audit::list(&mut db.conn().expect("conn"), Some(&partner.id), None, 10).expect("audit");
        let denied = events.iter().find(|e| e.kind == "client_auth_failed").expect("the refusal is audited");
        assert_eq!(denied.source.as_deref(), Some("127.0.0.1"), "the log names the peer, not the spoof");
    }
}

/// A token request to `base` (which may be an IPv6 address).
async fn status_at(
    app: &TestApp,
    base: &str,
    client: &crate::helpers::TestClient,
    forwarded: Option<&str>,
) -> u16 {
    let mut req = app
        .http
        .post(format!("{base}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            crate::helpers::basic_header(&client.id, &client.secret),
        )
        .body("grant_type=client_credentials");
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.expect("request").status().as_u16()
}

fn ipv6_loopback() -> bool {
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "IPv6 loopback is needed under CI"
    );
    eprintln!("SKIPPED IPv6 proxy cases: no IPv6 loopback on this machine");
    false
}

both_backends! {
    async fn an_ipv6_proxy_is_believed_only_when_trusted(backend) {
        if !ipv6_loopback() {
            return;
        }
        let proxied = spawn_app_with(&backend, |s| {
            s.bind = "[::1]:0".to_owned();
            s.trusted_proxies = "::1/128".to_owned();
        })
        .await;
        let base = format!("http://[::1]:{}", proxied.port);
        let partner = proxied.create_client(restricted(&["2001:db8::/32"])).await;
        assert_eq!(status_at(&proxied, &base, &partner, Some("2001:db8::7")).await, 200);
        assert_eq!(status_at(&proxied, &base, &partner, None).await, 401, "the proxy itself is not the partner");
        assert_eq!(status_at(&proxied, &base, &partner, Some("2001:db8::7, 2001:db9::1")).await, 401,
            "the rightmost untrusted hop counts");
        let v4 = proxied.create_client(restricted(&["203.0.113.0/24"])).await;
        assert_eq!(status_at(&proxied, &base, &v4, Some("203.0.113.9")).await, 200, "an IPv4 client behind an IPv6 proxy");

        // The same header from an IPv6 peer that is not a trusted proxy.
        let direct = spawn_app_with(&backend, |s| {
            s.bind = "[::1]:0".to_owned();
            s.trusted_proxies = "127.0.0.1/32".to_owned();
        })
        .await;
        let base = format!("http://[::1]:{}", direct.port);
        let partner = direct.create_client(restricted(&["2001:db8::/32"])).await;
        assert_eq!(status_at(&direct, &base, &partner, Some("2001:db8::7")).await, 401);
        let local = direct.create_client(restricted(&["::1/128"])).await;
        assert_eq!(status_at(&direct, &base, &local, Some("2001:db8::7")).await, 200);
    }
}
