//! Key handling at start-up: the key-encryption key's file rules, restart
//! persistence, and the refusal to paper over a lost key.

use std::collections::{HashMap, HashSet};

use crate::both_backends;
use crate::helpers::{build_app, spawn_app, spec};

const API: &str = "https://api.example.com";

both_backends! {
    async fn a_restart_keeps_the_signing_key_and_the_clients(backend) {
        // A fixed issuer: the default one names the port, which a restart on
        // port 0 changes.
        let mut app = crate::helpers::spawn_app_with(&backend, |s| {
            s.issuer = Some("https://auth.example.com".to_owned());
        })
        .await;
        let client = app.create_client(spec("read", &[API])).await;
        let before = app.token(&client, &[]).await;
        let token = before["access_token"].as_str().expect("token").to_owned();
        let jwks_before = app.jwks().await;

        app.restart().await.expect("restarts");

        assert_eq!(app.jwks().await, jwks_before, "same JWKS after a restart");
        app.verify_offline(&token, API).await.expect("old token still verifies");
        let after = app.token(&client, &[]).await;
        app.verify_offline(after["access_token"].as_str().expect("token"), API)
            .await
            .expect("new token verifies");
    }
}

both_backends! {
    async fn first_start_creates_a_private_key_encryption_key(backend) {
        use std::os::unix::fs::PermissionsExt;
        let app = spawn_app(&backend).await;
        let dir = &app.settings.keys_dir;
        let dir_mode = std::fs::metadata(dir).expect("keys dir").permissions().mode();
        let file_mode = std::fs::metadata(dir.join("kek")).expect("kek").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(file_mode & 0o777, 0o600);
    }
}

both_backends! {
    async fn a_key_encryption_key_readable_by_others_stops_start_up(backend) {
        use std::os::unix::fs::PermissionsExt;
        let mut app = spawn_app(&backend).await;
        app.stop().await;
        let kek = app.settings.keys_dir.join("kek");
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = app.restart().await.expect_err("start-up must fail");
        let message = err.to_string();
        assert!(message.contains("kek") && message.contains("chmod 600"), "{message}");
    }
}

both_backends! {
    async fn a_missing_key_encryption_key_beside_existing_keys_stops_start_up(backend) {
        let mut app = spawn_app(&backend).await;
        app.stop().await;
        std::fs::remove_file(app.settings.keys_dir.join("kek")).expect("remove kek");
        let err = app.restart().await.expect_err("start-up must fail");
        let message = err.to_string();
        assert!(message.contains("missing") && message.contains("TESSERA_KEK"), "{message}");
        assert!(
            !app.settings.keys_dir.join("kek").exists(),
            "no new key-encryption key may be made silently"
        );
    }
}

both_backends! {
    async fn a_different_key_encryption_key_is_reported_as_such(backend) {
        use base64::Engine;
        let app = spawn_app(&backend).await;
        app.stop().await;
        let mut settings = app.settings.clone();
        settings.kek = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 32]));
        let err = build_app(settings).await.expect_err("start-up must fail");
        assert!(err.to_string().contains("key-encryption key"), "{err}");
    }
}

both_backends! {
    async fn the_key_encryption_key_can_come_from_the_environment(backend) {
        use base64::Engine;
        let kek = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let mut app = crate::helpers::spawn_app_with(&backend, |s| s.kek = Some(kek.clone())).await;
        assert!(!app.settings.keys_dir.join("kek").exists(), "no file when the KEK is given");
        let jwks = app.jwks().await;
        app.restart().await.expect("restarts with the same KEK");
        assert_eq!(app.jwks().await, jwks);
    }
}

/// One DER element at the start of `input`: tag, contents, and the rest.
fn der(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, first) = (input[0], input[1]);
    let (len, at) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (tag, &input[at..at + len], &input[at + len..])
}

/// The private numbers inside a PKCS#8 document: the EC scalar `d`, the
/// Ed25519 seed, or RSA's `d`, `p`, `q`, `dp`, `dq` and `qi`.
fn private_numbers(alg: &str, pkcs8: &[u8]) -> Vec<Vec<u8>> {
    let (_, info, _) = der(pkcs8);
    let (_, _, rest) = der(info); // version
    let (_, _, rest) = der(rest); // algorithm
    let (tag, private_key, _) = der(rest);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    match alg {
        "ES256" => {
            let (_, ec, _) = der(private_key);
            let (_, _, rest) = der(ec); // version
            let (tag, d, _) = der(rest);
            assert_eq!((tag, d.len()), (0x04, 32));
            vec![d.to_vec()]
        }
        "EdDSA" => {
            let (tag, seed, _) = der(private_key);
            assert_eq!((tag, seed.len()), (0x04, 32));
            vec![seed.to_vec()]
        }
        "RS256" => {
            let (_, rsa, _) = der(private_key);
            let mut numbers = Vec::new();
            let mut rest = rsa;
            for _ in 0..9 {
                let (tag, n, r) = der(rest);
                assert_eq!(tag, 0x02);
                numbers.push(n.to_vec());
                rest = r;
            }
            // version, n, e are public; the rest are not.
            numbers.split_off(3)
        }
        other => panic!("unknown algorithm {other}"),
    }
}

/// Every 16-byte stretch of `secret`, as bytes and as it would appear in a
/// dump that stored it encoded: hex (PostgreSQL's bytea output), base64 and
/// base64url (a PEM or a JWK). Each is labelled with what it is a piece of,
/// so a failure can say so without printing key material.
fn needles(secret: &[u8], label: &str, into: &mut HashMap<Vec<u8>, String>) {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut add = |w: &[u8], form: &str| {
        into.insert(w.to_vec(), format!("{label}, {form}"));
    };
    for w in secret.windows(16) {
        add(w, "raw");
    }
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    for w in hex.as_bytes().windows(32).step_by(2) {
        add(w, "hex");
        add(&w.to_ascii_uppercase(), "hex");
    }
    for encoded in [
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ] {
        for w in encoded.as_bytes().windows(16) {
            add(w, "base64");
        }
    }
}

/// Where in `dump` the first needle is, and what it is a piece of.
fn find_any<'a>(dump: &[u8], needles: &'a HashMap<Vec<u8>, String>) -> Option<(usize, &'a str)> {
    let lengths: HashSet<usize> = needles.keys().map(Vec::len).collect();
    lengths.into_iter().find_map(|len| {
        dump.windows(len)
            .enumerate()
            .find_map(|(at, w)| needles.get(w).map(|label| (at, label.as_str())))
    })
}

both_backends! {
    async fn a_database_dump_holds_no_plaintext_private_key(backend) {
        use tessera::crypto::signing::SigningAlgorithm;
        use tessera::keys::{KeyEncryptionKey, import, rotation};
        if !crate::key_rotation::have_openssl(module_path!()) {
            return;
        }
        let app = crate::helpers::spawn_app_with(&backend, |s| s.key_prepublish = 360).await;
        let (kek, _) = KeyEncryptionKey::load(&app.settings.keys_dir, None)
            .expect("KEK")
            .expect("KEK exists");
        let db = app.database();
        let mut conn = db.conn().expect("connection");
        let policy = app.settings.rotation_policy().expect("policy");
        let dir = tempfile::tempdir().expect("temp dir");
        // Every way a key gets in: the first key (generated at start), an
        // import of each algorithm, a generated rotation of each generated
        // algorithm, and an emergency successor.
        let mut imports = Vec::new();
        for alg in ["ES256", "EdDSA", "RS256"] {
            let pem = std::fs::read_to_string(crate::key_rotation::openssl_key(dir.path(), alg)).expect("PEM");
            imports.push(import::pkcs8_from_pem(&pem).expect("a supported key"));
        }
        for (alg, der) in &imports {
            rotation::rotate_now(&mut conn, &kek, &policy, app.clock_now(), Some((*alg, der))).expect("import");
            app.clock.advance(policy.lead + 1);
        }
        for alg in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let generating = rotation::RotationPolicy { alg, ..policy };
            rotation::rotate_now(&mut conn, &kek, &generating, app.clock_now(), None).expect("rotate");
            app.clock.advance(policy.lead + 1);
        }
        let active = tessera::store::signing_keys::list_keys(&mut conn).expect("keys")
            .into_iter().max_by_key(|r| r.activates_at).expect("a key").kid;
        rotation::retire_now(&mut conn, &kek, &policy, &active, app.clock_now()).expect("retire");
        app.keys.run_once().await.expect("the server opens every key");

        let rows = tessera::store::signing_keys::list_keys(&mut conn).expect("keys");
        assert_eq!(rows.len(), 7);
        let algs: HashSet<&str> = rows.iter().map(|r| r.alg.as_str()).collect();
        assert_eq!(algs, HashSet::from(["ES256", "EdDSA", "RS256"]));
        let mut secret = HashMap::new();
        for row in &rows {
            let pkcs8 = kek.open(row.kid.as_bytes(), &row.private_key_sealed).expect("unseal");
            needles(&pkcs8, &format!("{} key {}: PKCS#8", row.alg, row.kid), &mut secret);
            for number in private_numbers(&row.alg, &pkcs8) {
                needles(&number, &format!("{} key {}: private number", row.alg, row.kid), &mut secret);
            }
        }
        // PKCS#8 documents embed the public key, which the database holds in
        // the clear by design (the JWK): stretches made only of public bytes
        // are not secrets.
        let mut public = HashMap::new();
        for row in &rows {
            use base64::Engine;
            let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk).expect("JWK");
            let member = |m: &str| jwk[m].as_str().map(|v| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v).expect("base64url")
            });
            let mut parts: Vec<Vec<u8>> = ["x", "y", "n", "e"].into_iter().filter_map(member).collect();
            if let (Some(x), Some(y)) = (member("x"), member("y")) {
                parts.push([&[0x04][..], &x, &y].concat());
            }
            for part in parts {
                needles(&part, "public", &mut public);
            }
        }
        secret.retain(|n, _| !public.contains_key(n));
        // The KEK itself does not belong in the database either.
        let kek_file = std::fs::read_to_string(app.settings.keys_dir.join("kek")).expect("kek");
        use base64::Engine;
        needles(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(kek_file.trim()).expect("base64url"),
            "the key-encryption key",
            &mut secret,
        );

        let Some(dump) = crate::helpers::database_dump(&app, &backend) else {
            return;
        };
        // The dump is real: every key's public half is in it.
        for row in &rows {
            assert!(dump.windows(row.kid.len()).any(|w| w == row.kid.as_bytes()), "{} is not in the dump", row.kid);
        }
        if let Some((at, what)) = find_any(&dump, &secret) {
            panic!("private key material in the dump at byte {at}: {what}");
        }
    }
}
