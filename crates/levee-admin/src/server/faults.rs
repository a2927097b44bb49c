//! `/api/faults`: the routes' faults in force, and runtime faults set and cleared by operators
//! and drills (`levee drill`) without a restart or a config change.
//!
//! - `GET /api/faults` → `{"faults": [FaultView…]}`, sorted by route.
//! - `PUT /api/faults/{route}` with a bearer token and a body in the shape of a route's
//!   `fault` block (`{"abort": {"percent": 100, "status": 503}}`) → 200 and the route's
//!   [`FaultView`]. `{}` is allowed: it turns the config's fault off until `DELETE`.
//! - `DELETE /api/faults/{route}` with a bearer token → 200 and the fault in force afterwards
//!   (the config's, or `source: none`).
//!
//! Errors are problem+json: 401/403 from the shared auth, 400 naming the field and the fix,
//! 404 `unknown_route`, 413 for bodies over the admin body limit.

use super::{path_param, AppState};
use crate::backend::{FaultError, FaultView};
use crate::problem::AdminProblem;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use levee_core::fault::FaultSpec;
use serde::Serialize;

#[derive(Serialize)]
pub(super) struct FaultList {
    faults: Vec<FaultView>,
}

const FAULT_BODY_HELP: &str = r#"send a route's fault block as JSON, such as {"abort": {"percent": 100, "status": 503}}, {"delay": {"percent": 50, "duration": "200ms"}}, {"reset": {"percent": 10}} or {"hang": {"percent": 1}}"#;

pub(super) async fn list(State(state): State<AppState>) -> Json<FaultList> {
    let mut faults = state.backend.faults();
    faults.sort_by(|a, b| a.route.cmp(&b.route));
    Json(FaultList { faults })
}

pub(super) async fn set(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FaultView>, AdminProblem> {
    let route = path_param(path)?;
    authorize(&state, &headers, &route)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AdminProblem::too_large(state.body_limit)
        } else {
            AdminProblem::bad_request(format!("The request body could not be read: {e}."))
        }
    })?;
    let fault: FaultSpec = serde_json::from_slice(&body).map_err(|e| {
        AdminProblem::bad_request(format!(
            "The body is not a valid fault ({e}): {FAULT_BODY_HELP}."
        ))
    })?;
    if let Some((key, message)) = fault.problems().into_iter().next() {
        return Err(AdminProblem::bad_request(format!(
            "The fault's `{key}` is not valid: {message}."
        )));
    }
    let view = state
        .backend
        .set_fault(&route, Some(fault))
        .map_err(problem)?;
    tracing::warn!(
        route,
        fault = %serde_json::to_string(&view.fault).unwrap_or_default(),
        "runtime fault set through the admin API"
    );
    Ok(Json(view))
}

pub(super) async fn clear(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<FaultView>, AdminProblem> {
    let route = path_param(path)?;
    authorize(&state, &headers, &route)?;
    let view = state.backend.set_fault(&route, None).map_err(problem)?;
    tracing::warn!(route, "runtime fault cleared through the admin API");
    Ok(Json(view))
}

fn authorize(state: &AppState, headers: &HeaderMap, route: &str) -> Result<(), AdminProblem> {
    state.auth.authorize(headers).inspect_err(|p| {
        tracing::warn!(
            route,
            status = p.status.as_u16(),
            "admin fault change refused: {}",
            p.code
        );
    })
}

fn problem(e: FaultError) -> AdminProblem {
    match e {
        FaultError::UnknownRoute { .. } => AdminProblem::not_found("unknown_route", e.to_string()),
        FaultError::Unsupported => AdminProblem::unavailable(e.to_string()),
    }
}
