//! Dashboard sessions and CSRF protection.
//!
//! The session cookie carries 32 random bytes; the database keeps their SHA-256. Every
//! session has its own CSRF token, which forms post back as a hidden field and scripts send
//! as `X-CSRF-Token`. Before login there is no session, so the login form uses a
//! double-submit cookie instead. The cookies are HttpOnly and SameSite=Lax, and Secure when
//! Cairn is served over HTTPS.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_db::{DbError, sessions};
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{Credential, Principal};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "cairn_session";
pub const LOGIN_CSRF_COOKIE: &str = "cairn_login_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A fresh random value, URL-safe base64 (32 bytes of entropy).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies())
        .build()
}

/// Starts a session for the user and returns the jar with its cookie set.
pub async fn start(state: &AppState, jar: CookieJar, user_id: i64) -> Result<CookieJar, DbError> {
    let secret = random_token();
    let ttl = chrono::Duration::from_std(state.config.session_ttl).unwrap_or(chrono::Duration::hours(12));
    sessions::insert(&state.db.pool, &secret_hash(&secret), user_id, &random_token(), Utc::now() + ttl).await?;
    let mut session_cookie = cookie(state, SESSION_COOKIE, secret);
    session_cookie.set_max_age(Some(time_duration(ttl)));
    Ok(jar.add(session_cookie).remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/")))
}

fn time_duration(d: chrono::Duration) -> cookie::time::Duration {
    cookie::time::Duration::seconds(d.num_seconds())
}

/// The principal of a live session, if the request carries one.
pub async fn current(state: &AppState, jar: &CookieJar) -> Result<Option<Principal>, DbError> {
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let found = sessions::find_live(&state.db.pool, &secret_hash(cookie.value())).await?;
    Ok(found.filter(|(_, user)| !user.disabled).map(|(session, user)| Principal {
        user_id: user.id,
        role: user.role(),
        username: user.username,
        credential: Credential::Session { csrf_token: session.csrf_token },
    }))
}

/// Ends the session named by the cookie (if any) and clears the cookie.
pub async fn end(state: &AppState, jar: CookieJar) -> Result<CookieJar, DbError> {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        sessions::delete(&state.db.pool, &secret_hash(cookie.value())).await?;
    }
    Ok(jar.remove(Cookie::build(SESSION_COOKIE).path("/")))
}

/// The login form's CSRF token: reuse the cookie's value or set a new one.
pub fn login_csrf(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    match jar.get(LOGIN_CSRF_COOKIE) {
        Some(c) if c.value().len() >= 32 => {
            let value = c.value().to_owned();
            (jar, value)
        }
        _ => {
            let value = random_token();
            (jar.add(cookie(state, LOGIN_CSRF_COOKIE, value.clone())), value)
        }
    }
}

/// Constant-time comparison of a submitted CSRF token with the expected one.
pub fn csrf_matches(submitted: &str, expected: &str) -> bool {
    let (a, b) = (submitted.as_bytes(), expected.as_bytes());
    !b.is_empty() && a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_comparison() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abd", "abc"));
        assert!(!csrf_matches("ab", "abc"));
        assert!(!csrf_matches("", ""), "an empty expected token never matches");
    }
}
