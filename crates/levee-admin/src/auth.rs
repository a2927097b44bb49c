//! Bearer-token auth for the admin API's mutations (SPEC §12: `admin.token_env`).
//!
//! Reads (`/health`, `/metrics`, `GET /api/*`) need no token: they show what `/health` shows
//! anyway, and monitoring must work without secrets. Every change (`PUT`/`POST`) needs
//! `Authorization: Bearer <token>`.
//!
//! - No token configured (the variable named by `token_env` is unset or empty): mutations are
//!   off, and the answer is 403 with the exact variable to set. Refusing is safer than running
//!   an open admin API by accident.
//! - Missing, malformed or wrong credentials: 401 with `WWW-Authenticate: Bearer`.
//! - The token is compared in constant time (the comparison's duration does not depend on
//!   where the first difference is; it may reveal the token's length), and is never logged or
//!   printed by `Debug`.

use crate::problem::AdminProblem;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use std::fmt;

/// The variable that holds the admin token unless the config names another.
pub const DEFAULT_TOKEN_ENV: &str = "LEVEE_ADMIN_TOKEN";

/// Who may change things through the admin API.
#[derive(Clone)]
pub struct AdminAuth {
    token: Option<String>,
    token_env: String,
    set_but_empty: bool,
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .finish()
    }
}

impl AdminAuth {
    /// Reads the token from the environment variable `token_env` (the config's
    /// `admin.token_env`). Unset or empty: mutations are refused with 403.
    pub fn from_env(token_env: &str) -> AdminAuth {
        let value = std::env::var(token_env).ok();
        let set_but_empty = value.as_deref().is_some_and(|v| v.trim().is_empty());
        AdminAuth {
            token: value.filter(|v| !v.trim().is_empty()),
            token_env: token_env.to_owned(),
            set_but_empty,
        }
    }

    /// A known token (tests, or a token read elsewhere); the 403 message still names
    /// [`DEFAULT_TOKEN_ENV`]. An empty token counts as none.
    pub fn with_token(token: impl Into<String>) -> AdminAuth {
        AdminAuth::from(Some(token.into()))
    }

    /// No token: every mutation is refused with a message naming `token_env`.
    pub fn not_configured(token_env: &str) -> AdminAuth {
        AdminAuth {
            token: None,
            token_env: token_env.to_owned(),
            set_but_empty: false,
        }
    }

    /// True when mutations can be authorized.
    pub fn is_configured(&self) -> bool {
        self.token.is_some()
    }

    /// The variable the token is read from.
    pub fn token_env(&self) -> &str {
        &self.token_env
    }

    /// Authorizes a mutation, or says why not (403 or 401).
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), AdminProblem> {
        let Some(token) = &self.token else {
            let env = &self.token_env;
            let why = if self.set_but_empty {
                format!("the environment variable {env} is set but empty")
            } else {
                format!("no admin token is configured (the environment variable {env} is not set)")
            };
            return Err(AdminProblem::forbidden(format!(
                "Changes through the admin API are turned off because {why}. Set {env} to a \
                 long random secret (admin.token_env in the config names the variable) and \
                 restart Levee, then send `Authorization: Bearer <token>`."
            )));
        };
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(AdminProblem::unauthorized(
                "This change needs `Authorization: Bearer <token>` with the admin token, sent once.",
                false,
            ));
        };
        let presented = bearer(value.as_bytes()).ok_or_else(|| {
            AdminProblem::unauthorized("The Authorization header must be `Bearer <token>`.", false)
        })?;
        if constant_time_eq(presented, token.as_bytes()) {
            Ok(())
        } else {
            Err(AdminProblem::unauthorized(
                "The admin token is not valid.",
                true,
            ))
        }
    }
}

impl From<Option<String>> for AdminAuth {
    /// `Some(token)` from wherever the caller read it; `None` (or empty) turns mutations off.
    fn from(token: Option<String>) -> Self {
        let set_but_empty = token.as_deref().is_some_and(|t| t.trim().is_empty());
        AdminAuth {
            token: token.filter(|t| !t.trim().is_empty()),
            token_env: DEFAULT_TOKEN_ENV.to_owned(),
            set_but_empty,
        }
    }
}

impl AdminAuth {
    /// True when `presented` is the admin token (compared in constant time); false when no
    /// token is configured. For credentials carried elsewhere than `Authorization`, such as
    /// the proxy's `levee-fault-token` header.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.token
            .as_ref()
            .is_some_and(|token| constant_time_eq(presented, token.as_bytes()))
    }
}

/// The credentials of a `Bearer` Authorization value: the scheme is case-insensitive and
/// followed by one or more spaces (RFC 9110 §11.4, RFC 6750 §2.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || value.get(6) != Some(&b' ') {
        return None;
    }
    let rest = value.get(7..)?;
    let start = rest.iter().position(|b| *b != b' ')?;
    let token = rest.get(start..)?;
    let end = token.iter().rposition(|b| *b != b' ')?;
    token.get(..=end)
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b""), None);
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn authorize_rules() {
        let auth = AdminAuth::with_token("s3cret");
        assert!(auth.authorize(&with_auth(&["Bearer s3cret"])).is_ok());
        for bad in [
            &[][..],
            &["Bearer nope"][..],
            &["Basic s3cret"][..],
            &["Bearer s3cret", "Bearer s3cret"][..],
        ] {
            let err = auth.authorize(&with_auth(bad)).unwrap_err();
            assert_eq!(err.status.as_u16(), 401, "{bad:?}");
        }
    }

    #[test]
    fn unconfigured_is_forbidden_and_names_the_variable() {
        for auth in [
            AdminAuth::not_configured("MY_TOKEN"),
            AdminAuth::from(None),
            AdminAuth::with_token("  "),
        ] {
            let err = auth.authorize(&with_auth(&["Bearer x"])).unwrap_err();
            assert_eq!(err.status.as_u16(), 403);
            assert!(err.detail.contains(auth.token_env()), "{}", err.detail);
            assert!(!auth.is_configured());
        }
        let empty = AdminAuth::with_token("");
        let err = empty.authorize(&HeaderMap::new()).unwrap_err();
        assert!(err.detail.contains("set but empty"), "{}", err.detail);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let text = format!("{:?}", AdminAuth::with_token("s3cret"));
        assert!(!text.contains("s3cret"), "{text}");
    }
}
