//! Per-client network allowlists, IPv4 and IPv6, and X-Forwarded-For only
//! from trusted proxies.

use serde_json::Value;

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
