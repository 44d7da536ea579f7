//! The OpenAPI document against the route table and the router, both ways: every route and
//! method of [`ROUTES`] is in the document with the security of its access, the document lists
//! nothing else, every such route answers on the router (and other methods do not), and the
//! document is well formed (every `$ref` resolves, every path parameter is declared).

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::Value;
use tailor_server::{Access, ROUTES};

use crate::support::App;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// The document as served.
async fn served(app: &App) -> Value {
    let reply = app
        .call(Method::GET, "/v1/openapi.json", None, Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.headers["content-type"], "application/json",
        "{:?}",
        reply.headers
    );
    reply.json()
}

/// Every (path, method) the document lists.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.to_uppercase().as_str()) {
                pairs.insert((path.clone(), method.to_uppercase()));
            }
        }
    }
    pairs
}

fn table() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .flat_map(|route| {
            route
                .methods
                .iter()
                .map(|method| (route.path.to_owned(), (*method).to_owned()))
        })
        .collect()
}

/// A concrete path for a template: every `{param}` becomes a value.
pub(crate) fn concrete(template: &str) -> String {
    template
        .replace("{part}", "1")
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x-1".to_owned()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_lists_exactly_the_route_table() {
    let app = App::new("openapi-table").await;
    let doc = served(&app).await;
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let documented = documented(&doc);
    let table = table();
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented routes the table lacks: {extra:?}"
    );
    // The served document is the library's.
    assert_eq!(
        doc,
        serde_json::to_value(tailor_server::openapi::openapi()).unwrap()
    );
}

#[tokio::test]
async fn each_operation_carries_the_security_of_its_access() {
    let app = App::new("openapi-security").await;
    let doc = served(&app).await;
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for route in ROUTES {
        for method in route.methods {
            let operation = &doc["paths"][route.path][method.to_lowercase()];
            match route.access.scheme() {
                None => assert!(
                    operation.get("security").is_none(),
                    "{method} {} is public but documents security",
                    route.path
                ),
                Some(scheme) => {
                    assert_eq!(
                        operation["security"],
                        serde_json::json!([{ scheme: [] }]),
                        "{method} {}",
                        route.path
                    );
                    assert_eq!(schemes[scheme]["type"], "http");
                    assert_eq!(schemes[scheme]["scheme"], "bearer");
                    for status in ["401", "403"] {
                        assert!(
                            operation["responses"].get(status).is_some(),
                            "{method} {} does not document {status}",
                            route.path
                        );
                    }
                }
            }
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| r.keys().any(|status| status.starts_with('2'))),
                "{method} {} documents no success",
                route.path
            );
        }
    }
}

/// Every documented route answers on the router (with no token: 401 for protected routes,
/// anything but "no route" for public ones), and every other method on its path is 405.
#[tokio::test]
async fn the_router_serves_exactly_what_the_document_lists() {
    let app = App::new("openapi-router").await;
    let doc = served(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let route = ROUTES
            .iter()
            .find(|route| route.path == path)
            .unwrap_or_else(|| panic!("{path} is not in ROUTES"));
        let uri = concrete(path);
        for method in METHODS {
            let reply = app
                .call(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &uri,
                    None,
                    Body::empty(),
                )
                .await;
            if item.get(method.to_lowercase()).is_some() {
                assert_ne!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {uri}: {}",
                    reply.text()
                );
                if route.access == Access::Public {
                    assert_ne!(reply.status, StatusCode::NOT_FOUND, "{method} {uri}");
                } else {
                    assert_eq!(
                        reply.status,
                        StatusCode::UNAUTHORIZED,
                        "{method} {uri}: {}",
                        reply.text()
                    );
                }
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {uri} is served but not documented: {}",
                    reply.text()
                );
            }
        }
    }
}

/// Every `$ref` in the document points at a component it defines.
#[tokio::test]
async fn every_reference_resolves_and_every_path_parameter_is_declared() {
    let app = App::new("openapi-refs").await;
    let doc = served(&app).await;
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external reference {reference}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            let declared: Vec<&str> = operation["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, names, "{method} {path}");
        }
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => refs.push(target.clone()),
                    _ => collect_refs(value, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}

/// The schemas of the advertiser-side answers are the engine's serialized views: the
/// properties an actual answer carries are all documented.
#[tokio::test]
async fn documented_schemas_match_real_answers() {
    let app = App::with_min_size("openapi-schemas", 1).await;
    let doc = served(&app).await;
    let advertiser = app.advertiser("Acme").await;
    let audience_id = app.audience(&advertiser.key, "Everyone").await;
    let job = app
        .upload(
            &advertiser.key,
            &audience_id,
            "add",
            "text/csv",
            "email\nnobody@example.net\n",
        )
        .await;
    app.settle().await;
    let job = app
        .job(&advertiser.key, job["job_id"].as_str().unwrap())
        .await;
    let audience = app.audience_view(&advertiser.key, &audience_id).await;
    for (schema, answer) in [("JobView", &job), ("AudienceView", &audience)] {
        let properties = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {schema}"));
        for field in answer.as_object().unwrap().keys() {
            assert!(
                properties.contains_key(field),
                "{schema} does not document `{field}`"
            );
        }
        for required in doc["components"]["schemas"][schema]["required"]
            .as_array()
            .unwrap()
        {
            assert!(
                answer.get(required.as_str().unwrap()).is_some(),
                "{schema} requires {required}, the answer lacks it: {answer:#}"
            );
        }
    }
}

/// The numeric fields an advertiser may receive outside a released size, and why each is
/// not a count of people: they describe the advertiser's own file, request or settings.
const OWN_NUMBERS: &[(&str, &str)] = &[
    ("JobView.rows_received", "rows in the advertiser's own file"),
    ("JobView.rows_accepted", "rows of its file that parsed"),
    ("JobView.rejected.*", "rows of its file refused, by reason"),
    (
        "JobView.progress",
        "how far the job has gone through its file",
    ),
    ("PartView.part", "the part number the advertiser chose"),
    (
        "PartView.rows_received",
        "rows in the advertiser's own part",
    ),
    ("PartView.rows_accepted", "rows of its part that parsed"),
    ("PartView.rejected.*", "rows of its part refused, by reason"),
    (
        "AudienceView.membership_ttl_days",
        "a setting the advertiser chose",
    ),
];

/// The schema a released size is documented as: the only place a count of people may be.
const RELEASED: &str = "ReleasedSize";

/// Collects the numeric fields reachable from `schema`, named `Schema.field` (`.*` for map
/// values), not descending into the released size (whose numbers come from the mechanism).
fn numbers(
    doc: &Value,
    schema: &Value,
    at: &str,
    seen: &mut BTreeSet<String>,
    out: &mut BTreeSet<String>,
    released: &mut bool,
) {
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let name = target.rsplit('/').next().unwrap();
        if name == RELEASED {
            *released = true;
            return;
        }
        if seen.insert(name.to_owned()) {
            let resolved = doc.pointer(target.strip_prefix('#').unwrap()).unwrap();
            numbers(doc, resolved, name, seen, out, released);
            seen.remove(name);
        }
        return;
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.iter().any(|t| *t == "integer" || *t == "number") {
        out.insert(at.to_owned());
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (field, property) in properties {
            numbers(doc, property, &format!("{at}.{field}"), seen, out, released);
        }
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        numbers(doc, values, &format!("{at}.*"), seen, out, released);
    }
    if let Some(items) = schema.get("items") {
        numbers(doc, items, &format!("{at}[]"), seen, out, released);
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        for part in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            numbers(doc, part, at, seen, out, released);
        }
    }
}

/// Every advertiser-facing endpoint and every field it can answer with: a number is either
/// inside a released size (the release mechanism's output) or one of [`OWN_NUMBERS`]. A new
/// count-like field anywhere else (a member count, a match rate, an estimate) fails here.
#[tokio::test]
async fn no_advertiser_visible_number_bypasses_the_release_mechanism() {
    let app = App::new("openapi-counts").await;
    let doc = served(&app).await;
    let mut found = BTreeSet::new();
    let mut released = false;
    let mut operations = 0;
    for route in ROUTES.iter().filter(|r| r.access == Access::Advertiser) {
        for method in route.methods {
            operations += 1;
            let operation = &doc["paths"][route.path][method.to_lowercase()];
            for (status, response) in operation["responses"].as_object().unwrap() {
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(target) => doc.pointer(target.strip_prefix('#').unwrap()).unwrap(),
                    None => response,
                };
                for (_, content) in response["content"].as_object().into_iter().flatten() {
                    let at = format!("{method} {} {status}", route.path);
                    numbers(
                        &doc,
                        &content["schema"],
                        &at,
                        &mut BTreeSet::new(),
                        &mut found,
                        &mut released,
                    );
                }
            }
        }
    }
    assert!(operations >= 10, "only {operations} advertiser operations");
    assert!(released, "no advertiser answer carries a released size");
    let allowed: BTreeSet<&str> = OWN_NUMBERS.iter().map(|(field, _)| *field).collect();
    let outside: Vec<&String> = found
        .iter()
        .filter(|f| !allowed.contains(f.as_str()))
        .collect();
    assert!(
        outside.is_empty(),
        "numbers an advertiser sees outside the release mechanism: {outside:?}"
    );
    // The walk reaches what it should: every allowed number is actually answered somewhere.
    let unseen: Vec<&&str> = allowed.iter().filter(|f| !found.contains(**f)).collect();
    assert!(
        unseen.is_empty(),
        "allowed numbers never seen (stale list?): {unseen:?}"
    );
}
