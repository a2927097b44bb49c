//! The admin API's errors, as RFC 9457 problem+json like the data plane's envelope, rendered
//! through [`levee_http::problem_response`] so both share one set of headers.
//!
//! The admin API's own failures (unauthorized, unknown breaker, malformed body) are not SPEC §7
//! data-plane codes, so they live under their own type namespace `urn:levee:admin:<code>`
//! with `type`, `title`, `status`, `code` and `detail`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

/// An admin API error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminProblem {
    /// The HTTP status.
    pub status: StatusCode,
    /// The snake_case code, also the suffix of `type`.
    pub code: &'static str,
    /// The short title.
    pub title: &'static str,
    /// What happened and what to do.
    pub detail: String,
    /// For 401: the `WWW-Authenticate` challenge.
    challenge: Option<&'static str>,
}

#[derive(Serialize)]
struct ProblemJson<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
}

impl AdminProblem {
    fn new(status: StatusCode, code: &'static str, title: &'static str, detail: String) -> Self {
        AdminProblem {
            status,
            code,
            title,
            detail,
            challenge: None,
        }
    }

    /// 400: the request body or path is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad request",
            detail.into(),
        )
    }

    /// 401: missing or wrong credentials. `invalid_token` marks a token that was presented
    /// but is wrong (RFC 6750 §3.1).
    pub fn unauthorized(detail: impl Into<String>, invalid_token: bool) -> Self {
        let mut p = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Admin token required",
            detail.into(),
        );
        p.challenge = Some(if invalid_token {
            r#"Bearer realm="levee-admin", error="invalid_token""#
        } else {
            r#"Bearer realm="levee-admin""#
        });
        p
    }

    /// 403: mutations are turned off (no token configured).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "admin_token_not_configured",
            "Admin changes are turned off",
            detail.into(),
        )
    }

    /// 404: no such breaker or path.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "Not found", detail.into())
    }

    /// 405: the path exists but not with this method.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            detail.into(),
        )
    }

    /// 409: understood but not possible for this resource.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail.into())
    }

    /// 413: the body is larger than the admin API accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Request body too large",
            format!("The admin API accepts bodies of at most {limit} bytes."),
        )
    }

    /// 503: the backend cannot act now, or the request took too long.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            detail.into(),
        )
    }

    /// The JSON body.
    pub fn to_json(&self) -> Bytes {
        let body = ProblemJson {
            type_uri: format!("urn:levee:admin:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            code: self.code,
            detail: &self.detail,
        };
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from_static(b"{}"))
    }
}

impl IntoResponse for AdminProblem {
    fn into_response(self) -> Response {
        let mut response: Response<Body> =
            levee_http::problem_response(self.status, self.to_json(), None);
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
