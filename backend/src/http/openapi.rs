//! The OpenAPI 3.1 document of the API, served at `/openapi.json`, and `/healthz`. The
//! document is generated from the handlers' annotations, then completed by [`complete`]
//! (descriptions, problem media type, the statuses of the shared layers, binary bodies).

mod complete;

use super::problem::ApiProblem;
use super::{account, admin, auth, credential, sandbox, topup, validator, wallet, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mancard_api::admin::FraudStatusFilter;
use mancard_api::endpoints::{HEALTHZ, OPENAPI};
use mancard_api::{Health, KeyInfo, LedgerEntry, Problem, TapResult};
use std::sync::OnceLock;
use utoipa::OpenApi;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(HEALTHZ.path, get(healthz))
        .route(OPENAPI.path, get(openapi_json))
}

/// Liveness.
#[utoipa::path(get, path = HEALTHZ.path, responses((status = 200, body = Health)))]
pub(crate) async fn healthz(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        server_time: s.now(),
    })
}

/// The served document: generated, then completed.
pub fn document() -> serde_json::Result<serde_json::Value> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    complete::complete(&mut doc);
    Ok(doc)
}

async fn openapi_json() -> Response {
    static DOC: OnceLock<Result<Bytes, String>> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        document()
            .and_then(|d| serde_json::to_vec(&d))
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    });
    match doc {
        Ok(s) => ([(header::CONTENT_TYPE, "application/json")], s.clone()).into_response(),
        Err(e) => ApiProblem::internal(e).into_response(),
    }
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            complete::SESSION_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A rider's session token, from POST /v1/auth/session (opaque).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            complete::ADMIN_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An operator's token (admin endpoints)."))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3 document of this API.
#[derive(OpenApi)]
#[openapi(
    info(title = "ManCard backend", description = "Issuance, top-up, settlement and reconciliation. Errors are RFC 9457 problem documents (application/problem+json) with a stable `code`."),
    paths(healthz, auth::request_otp, auth::create_session, account::account, credential::nonce,
          credential::provision, credential::replenish, topup::create_topup, topup::topup_status,
          topup::topup_callback, topup::topup_callback_form, wallet::sync, wallet::wallet_log, validator::validator_config,
          validator::upload_batch, admin::register_validator, admin::deny_validator,
          admin::list_keys,
          admin::rotate_keys, admin::fraud_cases, admin::fraud_case, admin::resolve_fraud,
          admin::audit, admin::adjust,
          admin::pending_adjustments, admin::approve_adjustment, admin::reject_adjustment,
          admin::audit_log,
          sandbox::sandbox_otp, sandbox::gateway_page, sandbox::gateway_pay,
          sandbox::gateway_cancel,
          auth::logout, auth::sessions, auth::end_session),
    components(schemas(Problem, LedgerEntry, KeyInfo, TapResult, FraudStatusFilter)),
    modifiers(&SecurityAddon)
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::ApiDoc;
    use utoipa::OpenApi;

    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                        _ => refs(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    /// Problem codes are documented by their wire text.
    #[test]
    fn problem_codes_are_listed_by_their_wire_text() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let listed = &doc["components"]["schemas"]["ProblemCode"]["enum"];
        let texts: Vec<&str> = mancard_api::ProblemCode::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        assert_eq!(*listed, serde_json::json!(texts));
    }

    /// The query strings, typed in the api crate, keep listing their parameters.
    #[test]
    fn query_strings_list_their_parameters() {
        use mancard_api::endpoints::{ADMIN_FRAUD_CASES, SANDBOX_OTP, TOPUP_CALLBACK, WALLET_LOG};
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        for (path, names) in [
            (WALLET_LOG.path, vec!["pseudonym", "from_seq"]),
            (
                TOPUP_CALLBACK.path,
                vec![
                    "token",
                    "status",
                    "state",
                    "order_id",
                    "ref_num",
                    "trace_no",
                    "masked_pan",
                ],
            ),
            (SANDBOX_OTP.path, vec!["phone", "request_id"]),
            (ADMIN_FRAUD_CASES.path, vec!["status"]),
        ] {
            let listed: Vec<&str> = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(listed, names, "{path}");
        }
    }

    /// Every schema the document points to is in it (the api crate's enums included).
    #[test]
    fn every_schema_reference_resolves() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} is not in the document"
            );
        }
    }
}
