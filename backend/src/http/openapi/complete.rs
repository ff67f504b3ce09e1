//! Completes the generated OpenAPI document so that it validates as OpenAPI 3.1 and says
//! every answer an operation can give. The pass reads only what each operation declares
//! (its security, request body, parameters), never a list of endpoints, so operations added
//! or changed elsewhere are completed the same way:
//!
//! - every response gets a `description` (required by OpenAPI);
//! - error answers are `application/problem+json` documents ([`PROBLEM_CONTENT_TYPE`]);
//! - the statuses the shared layers give are added where they apply: 401 (and 403 for
//!   operators) on secured operations, 400/413/415/422 on JSON bodies, 400/413/415 on binary
//!   bodies, 400 on query strings, 404 on path parameters, and 429/500/503 everywhere (rate
//!   limits, load shedding and a busy database reach every route);
//! - binary bodies are `type: string, format: binary`; HTML pages are strings;
//! - stateful links between operations that exist (a created top-up to its status, a sent
//!   code to the sandbox inbox and on to a session).

use mancard_api::PROBLEM_CONTENT_TYPE;
use serde_json::{json, Map, Value};

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The security scheme of operators (see `SecurityAddon`).
pub(super) const ADMIN_SCHEME: &str = "admin";
/// The security scheme of riders' sessions.
pub(super) const SESSION_SCHEME: &str = "bearer";
const PROBLEM_REF: &str = "#/components/schemas/Problem";
const BINARY: &str = "application/octet-stream";

/// Completes `doc` in place.
pub(super) fn complete(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            let shared = item.get("parameters").cloned();
            for (method, op) in item.iter_mut() {
                if METHODS.contains(&method.as_str()) {
                    complete_operation(op, shared.as_ref());
                }
            }
        }
    }
    add_links(doc);
}

/// What an operation declares, as far as the shared layers care.
#[derive(Default)]
struct Shape {
    secured: bool,
    admin: bool,
    json_body: bool,
    binary_body: bool,
    query: bool,
    path: bool,
}

fn shape(op: &Value, shared: Option<&Value>) -> Shape {
    let mut s = Shape::default();
    for req in op
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for scheme in req.as_object().into_iter().flat_map(Map::keys) {
            s.secured = true;
            s.admin |= scheme == ADMIN_SCHEME;
        }
    }
    if let Some(content) = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
    {
        for media in content.keys() {
            if is_json(media) {
                s.json_body = true;
            } else {
                s.binary_body = true;
            }
        }
    }
    let own = op.get("parameters").and_then(Value::as_array);
    let inherited = shared.and_then(Value::as_array);
    for p in own.into_iter().chain(inherited).flatten() {
        match p.get("in").and_then(Value::as_str) {
            Some("query") => s.query = true,
            Some("path") => s.path = true,
            _ => {}
        }
    }
    s
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// The error statuses the shared layers can give this operation, with why.
fn layer_statuses(s: &Shape) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if s.json_body || s.binary_body || s.query {
        out.push((
            "400",
            "malformed request: the body, query string or a field is invalid",
        ));
    }
    if s.secured {
        out.push(("401", "missing, malformed, unknown or expired credential"));
    }
    if s.admin {
        out.push(("403", "the credential may not do this"));
    }
    if s.path {
        out.push(("404", "nothing is known by that identifier"));
    }
    if s.json_body || s.binary_body {
        out.push(("413", "the body is over the size limit"));
        out.push(("415", "the body is not in the media type declared for it"));
    }
    if s.json_body {
        out.push((
            "422",
            "the JSON does not have the shape this operation takes",
        ));
    }
    out.push(("429", "too many requests: retry after Retry-After seconds"));
    out.push(("500", "internal error; the request may be retried"));
    out.push((
        "503",
        "temporarily unavailable (overloaded, database busy or a provider down): retry later",
    ));
    out
}

/// A description for a status nobody described.
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "success",
        "201" => "created",
        "202" => "accepted",
        "204" => "done; no content",
        "303" => "redirect (see Location)",
        "304" => "not modified since the ETag in If-None-Match",
        "400" => "malformed request",
        "401" => "missing, unknown or expired credential",
        "403" => "forbidden",
        "404" => "not found",
        "409" => "conflicts with the current state",
        "410" => "gone",
        "413" => "the body is over the size limit",
        "415" => "unsupported media type",
        "422" => "the request is well-formed but cannot be processed",
        "429" => "too many requests: retry after Retry-After seconds",
        "500" => "internal error",
        "503" => "temporarily unavailable: retry later",
        _ => "see the problem document",
    }
}

fn complete_operation(op: &mut Value, shared: Option<&Value>) {
    let s = shape(op, shared);
    if let Some(body) = op.pointer_mut("/requestBody/content") {
        type_contents(body);
    }
    let Some(op) = op.as_object_mut() else {
        return;
    };
    let responses = op
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    for (status, why) in layer_statuses(&s) {
        responses
            .entry(status)
            .or_insert_with(|| json!({ "description": why }));
    }
    for (status, response) in responses.iter_mut() {
        complete_response(status, response);
    }
}

fn complete_response(status: &str, response: &mut Value) {
    let Some(r) = response.as_object_mut() else {
        return;
    };
    if r.contains_key("$ref") {
        return;
    }
    r.entry("description")
        .or_insert_with(|| Value::from(default_description(status)));
    let is_error = status.starts_with('4') || status.starts_with('5');
    if is_error {
        r.insert("content".into(), problem_content());
    }
    if status == "429" || status == "503" {
        let headers = r
            .entry("headers")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(h) = headers.as_object_mut() {
            h.entry("Retry-After").or_insert_with(|| {
                json!({
                    "description": "seconds to wait before retrying",
                    "schema": { "type": "integer", "minimum": 0 }
                })
            });
        }
    }
    if let Some(content) = r.get_mut("content") {
        type_contents(content);
    }
}

fn problem_content() -> Value {
    let mut m = Map::new();
    m.insert(
        PROBLEM_CONTENT_TYPE.into(),
        json!({ "schema": { "$ref": PROBLEM_REF } }),
    );
    Value::Object(m)
}

/// Binary media are byte strings; HTML and plain text are strings.
fn type_contents(content: &mut Value) {
    let Some(content) = content.as_object_mut() else {
        return;
    };
    for (media, m) in content.iter_mut() {
        let Some(m) = m.as_object_mut() else {
            continue;
        };
        if media == BINARY {
            m.insert(
                "schema".into(),
                json!({ "type": "string", "format": "binary" }),
            );
        } else if media.starts_with("text/") {
            m.entry("schema")
                .or_insert_with(|| json!({ "type": "string" }));
        }
    }
}

/// A link between two operations, added only when both exist and the source answers
/// `status`.
struct Link {
    from: (&'static str, &'static str),
    status: &'static str,
    name: &'static str,
    to: (&'static str, &'static str),
    link: fn() -> Value,
}

const LINKS: [Link; 3] = [
    Link {
        from: ("/v1/topups", "post"),
        status: "200",
        name: "TopupStatus",
        to: ("/v1/topups/{intent_id}", "get"),
        link: || json!({ "parameters": { "intent_id": "$response.body#/intent_id" } }),
    },
    Link {
        from: ("/v1/auth/otp", "post"),
        status: "202",
        name: "SandboxInbox",
        to: ("/sandbox/otp", "get"),
        link: || {
            json!({ "parameters": {
                "phone": "$request.body#/phone", "request_id": "$response.body#/request_id" } })
        },
    },
    Link {
        from: ("/sandbox/otp", "get"),
        status: "200",
        name: "CreateSession",
        to: ("/v1/auth/session", "post"),
        link: || {
            json!({ "requestBody": {
                "phone": "$response.body#/phone", "code": "$response.body#/code",
                "request_id": "$request.query.request_id" } })
        },
    },
];

fn add_links(doc: &mut Value) {
    for l in &LINKS {
        let target = doc
            .get("paths")
            .and_then(|p| p.get(l.to.0))
            .and_then(|i| i.get(l.to.1))
            .and_then(|o| o.get("operationId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(target) = target else {
            continue;
        };
        let response = doc
            .get_mut("paths")
            .and_then(|p| p.get_mut(l.from.0))
            .and_then(|i| i.get_mut(l.from.1))
            .and_then(|o| o.get_mut("responses"))
            .and_then(|r| r.get_mut(l.status))
            .and_then(Value::as_object_mut);
        let Some(response) = response else {
            continue;
        };
        let mut link = (l.link)();
        if let Some(obj) = link.as_object_mut() {
            obj.insert("operationId".into(), Value::from(target));
        }
        let links = response
            .entry("links")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(links) = links.as_object_mut() {
            links.insert(l.name.into(), link);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::complete;
    use serde_json::{json, Value};

    fn statuses(doc: &Value, path: &str, method: &str) -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// An operation nobody here knows of is completed from what it declares.
    #[test]
    fn an_unknown_operation_is_completed_from_its_declarations() {
        let mut doc = json!({ "paths": {
            "/v1/new/{id}": {
                "parameters": [{ "name": "id", "in": "path", "required": true }],
                "post": {
                    "security": [{ "admin": [] }],
                    "requestBody": { "content": { "application/json": { "schema": {} } } },
                    "responses": {
                        "200": { "content": { "application/json": { "schema": {} } } },
                        "409": { "content": { "application/json": {
                            "schema": { "$ref": "#/components/schemas/Problem" } } } }
                    }
                }
            },
            "/v1/blob": { "put": {
                "requestBody": { "content": { "application/octet-stream": {
                    "schema": { "type": "array", "items": { "type": "integer" } } } } },
                "responses": { "204": {} }
            } }
        } });
        complete(&mut doc);
        assert_eq!(
            statuses(&doc, "/v1/new/{id}", "post"),
            ["200", "400", "401", "403", "404", "409", "413", "415", "422", "429", "500", "503"]
        );
        assert_eq!(
            statuses(&doc, "/v1/blob", "put"),
            ["204", "400", "413", "415", "429", "500", "503"]
        );
        let op = &doc["paths"]["/v1/new/{id}"]["post"];
        let conflict = &op["responses"]["409"];
        assert_eq!(conflict["description"], "conflicts with the current state");
        assert!(conflict["content"]["application/json"].is_null());
        assert_eq!(
            conflict["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        let blob = &doc["paths"]["/v1/blob"]["put"]["requestBody"]["content"];
        assert_eq!(
            blob["application/octet-stream"]["schema"],
            json!({ "type": "string", "format": "binary" })
        );
        assert!(
            doc["paths"]["/v1/blob"]["put"]["responses"]["503"]["headers"]["Retry-After"]
                .is_object()
        );
    }
}
