//! Outcome classification (SPEC §1): how a finished call counts for the breaker and the
//! adaptive bulkhead limit.
//!
//! A [`Classify`] turns a call's result into a levee-core [`Outcome`]. The default,
//! [`HttpClassifier`], applies the SPEC §1 HTTP rule to an `http::Response`: statuses 500, 502,
//! 503 and 504 (or the configured set, such as `[500-599, 429]`) are `failure`, every other
//! status `success`. Errors are classified the same way for every classifier
//! ([`classify_error`]): a [`LeveeError`](crate::LeveeError) keeps its own outcome (`timeout`
//! for a spent deadline, `rejected` for a refusal by a layer below, which never counts), a
//! timeout is `timeout`, and every other error is `failure`.

use crate::error::{attempt_result_of, find_levee_error};
use http::Response;
use levee_core::outcome::{classify, AttemptResult, StatusSet};
use levee_core::Outcome;
use std::error::Error;
use std::sync::Arc;

/// Decides the outcome of a finished call.
pub trait Classify<Res>: Clone + Send + Sync + 'static {
    /// The outcome of a call that returned `result`.
    fn classify(&self, result: Result<&Res, &(dyn Error + 'static)>) -> Outcome;
}

/// The outcome of a call that failed with `err`: a Levee error's own outcome, `timeout` for
/// timeouts, `failure` for everything else.
pub fn classify_error(err: &(dyn Error + 'static)) -> Outcome {
    if let Some(levee) = find_levee_error(err) {
        return levee.outcome();
    }
    match attempt_result_of(err) {
        Some(AttemptResult::Timeout) => Outcome::Timeout,
        _ => Outcome::Failure,
    }
}

/// SPEC §1 HTTP classification of `http::Response`s, with configurable failure statuses.
#[derive(Debug, Clone, Default)]
pub struct HttpClassifier {
    failure_statuses: StatusSet,
}

impl HttpClassifier {
    /// The SPEC default: 500, 502, 503 and 504 are failures.
    pub fn new() -> Self {
        HttpClassifier::default()
    }

    /// Failures are the statuses in `failure_statuses` (`StatusSet::from_items(&["500-599",
    /// "429"])`).
    pub fn with_failure_statuses(failure_statuses: StatusSet) -> Self {
        HttpClassifier { failure_statuses }
    }
}

impl<B> Classify<Response<B>> for HttpClassifier {
    fn classify(&self, result: Result<&Response<B>, &(dyn Error + 'static)>) -> Outcome {
        match result {
            Ok(response) => classify(
                AttemptResult::Status(response.status().as_u16()),
                &self.failure_statuses,
            ),
            Err(err) => classify_error(err),
        }
    }
}

/// A classifier from a function of the response (errors are classified by
/// [`classify_error`]), for services whose responses are not `http::Response`s.
pub struct ClassifyFn<F> {
    f: Arc<F>,
}

impl<F> ClassifyFn<F> {
    /// Classifies successful results with `f`.
    pub fn new(f: F) -> Self {
        ClassifyFn { f: Arc::new(f) }
    }
}

impl<F> Clone for ClassifyFn<F> {
    fn clone(&self) -> Self {
        ClassifyFn {
            f: Arc::clone(&self.f),
        }
    }
}

impl<F> std::fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassifyFn").finish_non_exhaustive()
    }
}

impl<Res, F> Classify<Res> for ClassifyFn<F>
where
    F: Fn(&Res) -> Outcome + Send + Sync + 'static,
{
    fn classify(&self, result: Result<&Res, &(dyn Error + 'static)>) -> Outcome {
        match result {
            Ok(response) => (self.f)(response),
            Err(err) => classify_error(err),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::LeveeError;
    use levee_core::ErrorCode;

    fn response(status: u16) -> Response<()> {
        Response::builder().status(status).body(()).unwrap()
    }

    #[test]
    fn http_statuses_follow_spec_and_config() {
        let default = HttpClassifier::new();
        assert_eq!(default.classify(Ok(&response(503))), Outcome::Failure);
        assert_eq!(default.classify(Ok(&response(429))), Outcome::Success);
        let strict = HttpClassifier::with_failure_statuses(
            StatusSet::from_items(&["500-599", "429"]).unwrap(),
        );
        assert_eq!(strict.classify(Ok(&response(429))), Outcome::Failure);
    }

    #[test]
    fn errors_keep_levee_outcomes_and_otherwise_fail() {
        let c = HttpClassifier::new();
        let rejected = LeveeError::new(ErrorCode::BulkheadFull, "x");
        let timeout = LeveeError::new(ErrorCode::DeadlineExceeded, "x");
        let io = std::io::Error::other("reset");
        assert_eq!(
            Classify::<Response<()>>::classify(&c, Err(&rejected)),
            Outcome::Rejected
        );
        assert_eq!(
            Classify::<Response<()>>::classify(&c, Err(&timeout)),
            Outcome::Timeout
        );
        assert_eq!(
            Classify::<Response<()>>::classify(&c, Err(&io)),
            Outcome::Failure
        );
    }
}
