//! The served OpenAPI document is a contract the server keeps: it is complete OpenAPI 3.1
//! (every response described, errors as problem documents, the shared layers' statuses,
//! binary bodies, security schemes), and the live server answers malformed requests to every
//! operation the document lists with a status the document declares for it, in the declared
//! media type. The operations are read from the document, so new endpoints are covered.
//! (scripts/api-check.sh validates the same document with openapi-spec-validator and fuzzes
//! it with schemathesis.)

use mancard_api::endpoints::OPENAPI;
use mancard_api::{Problem, PROBLEM_CONTENT_TYPE};
use mancard_testkit::backend::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of the document: (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    assert!(
        out.len() > 10,
        "the document lists {} operations",
        out.len()
    );
    out
}

fn schemes(op: &Value) -> Vec<String> {
    op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r.as_object().unwrap().keys().cloned())
        .collect()
}

fn declared(op: &Value, status: u16) -> bool {
    op["responses"].get(status.to_string()).is_some()
}

async fn document(h: &Harness) -> Value {
    let (s, doc) = h.get(OPENAPI.path, None).await;
    assert_eq!(s, StatusCode::OK);
    doc
}

#[tokio::test]
async fn the_served_document_is_complete_openapi_3_1() {
    let h = Harness::start().await;
    let doc = document(&h).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["version"].is_string());
    let security = &doc["components"]["securitySchemes"];
    for (path, method, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let responses = op["responses"].as_object().unwrap();
        for (status, r) in responses {
            let described = r["description"].as_str().unwrap_or_default();
            assert!(!described.is_empty(), "{at} {status}: no description");
            if status.starts_with('4') || status.starts_with('5') {
                let content = r["content"].as_object().unwrap();
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    [PROBLEM_CONTENT_TYPE],
                    "{at} {status}"
                );
                assert_eq!(
                    content[PROBLEM_CONTENT_TYPE]["schema"]["$ref"], "#/components/schemas/Problem",
                    "{at} {status}"
                );
            }
        }
        // the shared layers: rate limits, load shedding, internal errors reach every route
        for status in ["429", "500", "503"] {
            assert!(responses.contains_key(status), "{at}: no {status}");
        }
        for status in ["429", "503"] {
            assert!(
                responses[status]["headers"]["Retry-After"].is_object(),
                "{at} {status}: Retry-After not described"
            );
        }
        for scheme in schemes(&op) {
            assert_eq!(security[&scheme]["type"], "http", "{at}: {scheme}");
            assert_eq!(security[&scheme]["scheme"], "bearer", "{at}: {scheme}");
            assert!(responses.contains_key("401"), "{at}: secured without 401");
        }
        let body = op["requestBody"]["content"].as_object();
        for (media, m) in body.into_iter().flatten() {
            if media == "application/json" {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{at}: JSON body, no {status}"
                    );
                }
            } else if media == "application/x-www-form-urlencoded" {
                // a gateway's form post back: a form of named strings
                assert!(m["schema"]["$ref"].as_str().is_some(), "{at}: form schema");
                assert!(responses.contains_key("400"), "{at}: form body, no 400");
            } else {
                assert_eq!(media, "application/octet-stream", "{at}");
                assert_eq!(m["schema"]["type"], "string", "{at}: binary body");
                assert_eq!(m["schema"]["format"], "binary", "{at}: binary body");
                for status in ["400", "413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{at}: binary body, no {status}"
                    );
                }
            }
        }
    }
    // the batch upload is a binary body, not an array of integers
    let batch = &doc["paths"]["/v1/validator/batches"]["post"]["requestBody"]["content"];
    assert_eq!(
        batch["application/octet-stream"]["schema"]["format"],
        "binary"
    );
    // the stateful links point at operations of the document
    let ids: Vec<String> = operations(&doc)
        .iter()
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_string))
        .collect();
    let mut links = 0;
    for (_, _, op) in operations(&doc) {
        for r in op["responses"].as_object().unwrap().values() {
            for link in r["links"].as_object().into_iter().flat_map(|l| l.values()) {
                let target = link["operationId"].as_str().unwrap();
                assert!(ids.iter().any(|i| i == target), "link to {target}");
                links += 1;
            }
        }
    }
    assert!(links > 0, "no stateful links");
}

/// A path with each `{parameter}` filled with a value that names nothing.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push('0');
        let close = rest[open..].find('}').unwrap();
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Sends a request and checks that its answer is declared for the operation, with the
/// declared media type; returns the status.
async fn answer(
    at: &str,
    op: &Value,
    req: reqwest::RequestBuilder,
) -> (StatusCode, reqwest::header::HeaderMap) {
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    assert!(
        declared(op, status.as_u16()),
        "{at}: {status} is not declared"
    );
    if status.is_client_error() || status.is_server_error() {
        let ct = headers[reqwest::header::CONTENT_TYPE].to_str().unwrap();
        assert_eq!(ct, PROBLEM_CONTENT_TYPE, "{at}: {status}");
        let p: Problem = r.json().await.unwrap();
        assert_eq!(p.status, status.as_u16(), "{at}");
        assert!(!p.detail.is_empty(), "{at}");
    }
    assert!(!status.is_server_error(), "{at}: {status}");
    (status, headers)
}

#[tokio::test]
async fn malformed_requests_get_the_declared_problem_answers() {
    let h = Harness::start().await;
    let doc = document(&h).await;
    let session = h.login("+989121110015").await;
    let mut seen = std::collections::BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let url = h.u(&concrete(&path));
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let secured = schemes(&op);
        let credential = if secured.iter().any(|s| s == "admin") {
            Some(ADMIN.to_string())
        } else if secured.is_empty() {
            None
        } else {
            Some(session.clone())
        };
        // no credential, and a credential that names nobody
        if !secured.is_empty() {
            let (s, _) = answer(&at, &op, h.http.request(m.clone(), &url)).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{at}: without a credential");
            let forged = h.http.request(m.clone(), &url).bearer_auth("0".repeat(64));
            let (s, _) = answer(&at, &op, forged).await;
            assert!(s.is_client_error(), "{at}: forged credential answered {s}");
            seen.insert(s.as_u16());
        }
        let with = |req: reqwest::RequestBuilder| match &credential {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let Some(body) = op["requestBody"]["content"].as_object() else {
            continue;
        };
        // every body in a media type it does not take; JSON ones broken and of the wrong shape
        let mut cases = vec![("text/plain", "{}")];
        if body.contains_key("application/json") {
            cases.extend([
                ("application/json", "{not json"),
                ("application/json", "[1, 2, 3]"),
            ]);
        }
        for (ct, text) in cases {
            let req = with(h.http.request(m.clone(), &url))
                .header("content-type", ct)
                .body(text);
            let (s, _) = answer(&at, &op, req).await;
            assert!(s.is_client_error(), "{at}: {ct} {text:?} answered {s}");
            seen.insert(s.as_u16());
        }
        // over any body limit (the configured ones: 1 MiB JSON, 8 MiB batches)
        let limits = &h.handle().engine().config().policy;
        let big = vec![b'0'; limits.json_body_limit.max(limits.batch_body_limit) + 1];
        let ct = body.keys().next().unwrap().clone();
        let req = with(h.http.request(m.clone(), &url))
            .header("content-type", ct)
            .body(big);
        if let Ok(r) = req.send().await {
            let s = r.status();
            assert!(declared(&op, s.as_u16()), "{at}: {s} is not declared");
            assert!(s.is_client_error(), "{at}: a 64 MiB body answered {s}");
            seen.insert(s.as_u16());
        }
    }
    // the layers did answer: wrong media type, broken JSON, wrong shape, too large
    for status in [400, 413, 415, 422] {
        assert!(
            seen.contains(&status),
            "no operation answered {status}: {seen:?}"
        );
    }
}

/// A method a path does not take is a 405 problem naming the methods it does take.
#[tokio::test]
async fn an_undeclared_method_is_a_405_problem() {
    let h = Harness::start().await;
    let doc = document(&h).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let taken: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|m| item.get(*m).is_some())
            .collect();
        let Some(unused) = ["put", "patch", "delete"]
            .into_iter()
            .find(|m| !taken.contains(m))
        else {
            continue;
        };
        let m = Method::from_bytes(unused.to_uppercase().as_bytes()).unwrap();
        let r = h
            .http
            .request(m, h.u(&concrete(path)))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{unused} {path}"
        );
        let ct = r.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap();
        assert_eq!(ct, PROBLEM_CONTENT_TYPE, "{unused} {path}");
        let allow = r.headers()[reqwest::header::ALLOW]
            .to_str()
            .unwrap()
            .to_lowercase();
        for m in &taken {
            assert!(allow.contains(m), "{path}: Allow {allow:?} lacks {m}");
        }
        checked += 1;
    }
    assert!(checked > 10);
}

/// A path parameter that is not UTF-8 (`%FF`) is refused by the router before any handler;
/// the answer is still a problem document, on every operation with a path parameter.
#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_gets_a_problem_document() {
    let h = Harness::start().await;
    let doc = document(&h).await;
    let token = h.login("+989120000077").await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(open) = path.find('{') else {
            continue;
        };
        let close = path.find('}').unwrap();
        let bad = format!("{}%FF{}", &path[..open], &path[close + 1..]);
        for m in METHODS.iter().copied().filter(|m| item.get(*m).is_some()) {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let bearer = if path.contains("/admin/") {
                ADMIN
            } else {
                token.as_str()
            };
            let r = h
                .http
                .request(method, h.u(&bad))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_client_error(), "{m} {bad}: {}", r.status());
            let ct = r.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap();
            assert_eq!(ct, PROBLEM_CONTENT_TYPE, "{m} {bad}");
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "only {checked} operations with a path parameter"
    );
}
