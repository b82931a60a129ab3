//! The OpenAPI document and the server's routes are the same set: every
//! route the router has is documented, every documented operation exists
//! and answers, and the server serves the document it ships.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::spawn_app;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

fn documented() -> (Value, BTreeSet<(String, String)>) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
        .expect("docs/openapi.json");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(*method).is_some() {
                ops.insert(((*method).to_owned(), path.clone()));
            }
        }
    }
    (doc, ops)
}

#[test]
fn the_document_lists_exactly_the_routes_of_the_router() {
    let (doc, ops) = documented();
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true)
    );
    let routes: BTreeSet<(String, String)> = tessera::http::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let undocumented: Vec<_> = routes.difference(&ops).collect();
    let phantom: Vec<_> = ops.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "documented operations the server lacks: {phantom:?}"
    );
}

both_backends! {
    async fn every_documented_operation_answers_and_the_document_is_served(backend) {
        let app = spawn_app(&backend).await;
        let (doc, ops) = documented();
        for (method, path) in &ops {
            let url = app.url(&path.replace("{id}", "no-such-client"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let status = app.http.request(method.clone(), url).send().await.expect("request").status();
            assert!(status != 404 && status != 405, "{method} {path} answered {status}");
        }
        let served: Value = app.http.get(app.url("/openapi.json")).send().await.expect("GET")
            .json().await.expect("JSON");
        assert_eq!(served, doc);
        // A method a path lacks: 405 with the ones it has.
        let resp = app.http.put(app.url("/admin/clients")).send().await.expect("PUT");
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET, POST");
    }
}
