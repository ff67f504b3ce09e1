//! Requests of a bound session: the `ManCard-Proof` header (a single-use nonce and the device
//! binding key's signature over the request's method, path and body), as the wallet sends it.
#![allow(clippy::unwrap_used)]

use crate::backend::{decode, Harness, Wallet};
use mancard_api::endpoints::{CREATE_TOPUP, CREDENTIAL_NONCE, PROOF_HEADER, TOPUP_STATUS};
use mancard_api::{NonceResponse, TopupIntentResponse, TopupRequest};
use mancard_protocol::provision::{proof_header, sign_request};
use mancard_protocol::SigningKey;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;

impl Harness {
    /// A `ManCard-Proof` header value for `POST path` with `body`, signed by `binding`.
    pub async fn proof(
        &self,
        token: &str,
        binding: &SigningKey,
        path: &str,
        body: &[u8],
    ) -> String {
        let n: NonceResponse = self.post_empty_ok(CREDENTIAL_NONCE.path, Some(token)).await;
        let nonce: [u8; 32] = hex::decode(&n.nonce).unwrap().try_into().unwrap();
        let sig = sign_request(binding, &nonce, "POST", path, body).unwrap();
        proof_header(&nonce, &sig)
    }

    /// `POST path` with a JSON body and, when `proof` is given, that `ManCard-Proof` header.
    pub async fn post_with_proof(
        &self,
        path: &str,
        token: &str,
        proof: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .post(self.u(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(p) = proof {
            r = r.header(PROOF_HEADER, p);
        }
        decode(r.send().await.unwrap()).await
    }

    /// `POST path` with a JSON body, proven by `binding`.
    pub async fn post_proven(
        &self,
        path: &str,
        token: &str,
        binding: &SigningKey,
        body: &impl Serialize,
    ) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let proof = self.proof(token, binding, path, &bytes).await;
        self.post_with_proof(path, token, Some(&proof), &bytes)
            .await
    }
}

impl Wallet {
    /// Creates a top-up intent from this device's bound session (with its proof).
    pub async fn create_topup(&self, h: &Harness, amount: i64, key: &str) -> TopupIntentResponse {
        let body = TopupRequest {
            amount,
            idempotency_key: key.into(),
        };
        let (s, v) = h
            .post_proven(CREATE_TOPUP.path, &self.token, &self.binding, &body)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        serde_json::from_value(v).unwrap()
    }
}

impl Harness {
    /// [`Harness::topup`] from a device's bound session: creates the intent with the device's
    /// proof and pays it on the sandbox gateway.
    pub async fn topup_from(&self, w: &Wallet, amount: i64, key: &str) -> TopupIntentResponse {
        let intent = w.create_topup(self, amount, key).await;
        let resp = self.http.post(&intent.payment_url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let html = resp.text().await.unwrap();
        assert!(html.contains("credited"), "{html}");
        self.get_ok(&TOPUP_STATUS.path_with(&intent.intent_id), Some(&w.token))
            .await
    }
}
