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

/// Follows a local `$ref` (`#/components/...`) to what it names.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = reference
                .trim_start_matches("#/")
                .split('/')
                .fold(doc, |at, segment| &at[segment]);
            assert!(!target.is_null(), "dangling $ref {reference}");
            resolve(doc, target)
        }
        None => node,
    }
}

/// Compares a real JSON value with its schema, member by member: every
/// member sent is documented, every required one is sent, and the same
/// holds inside nested objects and array items.
fn compare(doc: &Value, schema: &Value, value: &Value, at: &str, drift: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    match value {
        Value::Object(members) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for name in members.keys().filter(|n| !properties.contains_key(*n)) {
                drift.push(format!("{at}: `{name}` is sent but not documented"));
            }
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().expect("a required name");
                if !members.contains_key(name) {
                    drift.push(format!("{at}: `{name}` is required but not sent"));
                }
            }
            for (name, member) in members {
                if let Some(property) = properties.get(name) {
                    compare(doc, property, member, &format!("{at}.{name}"), drift);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    compare(doc, item_schema, item, &format!("{at}[{i}]"), drift);
                }
            }
        }
        _ => {}
    }
}

/// The member names a schema of `components/schemas` documents.
fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {name} has properties"))
        .keys()
        .cloned()
        .collect()
}

fn members(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

struct Exchange<'a> {
    app: &'a crate::helpers::TestApp,
    doc: &'a Value,
    token: String,
    drift: Vec<String>,
}

impl Exchange<'_> {
    /// Calls `method path` (the documented template, `{id}` filled with
    /// `id`) and checks the answer against what the document says of that
    /// status: its schema, and every header it lists.
    async fn call(&mut self, method: &str, template: &str, id: &str, body: Option<Value>) -> Value {
        let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let mut req = self
            .app
            .http
            .request(verb, self.app.url(&template.replace("{id}", id)))
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16().to_string();
        let at = format!("{method} {template} {status}");
        let operation = &self.doc["paths"][template][method];
        assert!(operation.is_object(), "{method} {template} is documented");
        let Some(documented) = operation["responses"]
            .get(&status)
            .map(|r| resolve(self.doc, r))
        else {
            self.drift
                .push(format!("{at}: the status is not documented"));
            return Value::Null;
        };
        for header in documented["headers"]
            .as_object()
            .into_iter()
            .flat_map(|h| h.keys())
        {
            if !resp.headers().contains_key(header.as_str()) {
                self.drift
                    .push(format!("{at}: documented header {header} is missing"));
            }
        }
        let text = resp.text().await.expect("body");
        let schema = &documented["content"]["application/json"]["schema"];
        if schema.is_null() {
            if !text.is_empty() {
                self.drift
                    .push(format!("{at}: a body is sent but none is documented"));
            }
            return Value::Null;
        }
        let value: Value = serde_json::from_str(&text).expect("a JSON body");
        compare(self.doc, schema, &value, &at, &mut self.drift);
        value
    }
}

both_backends! {
    async fn every_admin_answer_has_the_members_and_headers_the_document_gives_it(backend) {
        let app = spawn_app(&backend).await;
        let (doc, _) = documented();
        let mut admin = crate::helpers::spec("tessera:admin", &[]);
        admin.name = "admin".to_owned();
        let admin = app.create_client(admin).await;
        let token = app.access_token(&admin).await;
        let mut api = Exchange { app: &app, doc: &doc, token, drift: Vec::new() };

        api.call("post", "/admin/clients", "", Some(serde_json::json!({
            "name": "svc", "client_id": "svc", "scope": "read", "allowed_networks": ["127.0.0.1"]
        }))).await;
        api.call("get", "/admin/clients", "", None).await;
        let shown = api.call("get", "/admin/clients/{id}", "svc", None).await;
        api.call("patch", "/admin/clients/{id}", "svc", Some(serde_json::json!({"name": "renamed"}))).await;
        api.call("post", "/admin/clients/{id}/rotate-secret", "svc", None).await;
        api.call("post", "/admin/clients/{id}/revoke-all", "svc", None).await;
        api.call("post", "/admin/clients/{id}/disable", "svc", None).await;
        api.call("post", "/admin/clients/{id}/enable", "svc", None).await;
        let keys = api.call("get", "/admin/keys", "", None).await;
        api.call("post", "/admin/keys/rotate", "", None).await;
        let events = api.call("get", "/admin/audit", "", None).await;
        api.call("delete", "/admin/clients/{id}", "svc", None).await;
        api.call("get", "/admin/clients/{id}", "svc", None).await;
        api.call("post", "/admin/clients/{id}/disable", "svc", None).await;
        let drift = std::mem::take(&mut api.drift);
        assert!(drift.is_empty(), "docs/openapi.json and the server disagree:\n{}", drift.join("\n"));

        // The three views operators read most, member for member.
        assert_eq!(properties(&doc, "ClientView"), members(&shown));
        assert_eq!(properties(&doc, "KeySummary"), members(&keys[0]));
        assert_eq!(properties(&doc, "AuditEvent"), members(&events[0]));
    }
}
