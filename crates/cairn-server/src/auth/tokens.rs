//! API tokens as HS256-signed JWTs. The signature makes forged tokens cheap to reject; the
//! stored row (looked up by `jti`) makes tokens listable, expirable and revocable.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const ISSUER: &str = "cairn";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Read,
    Write,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }
}

impl std::str::FromStr for TokenScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            other => Err(format!("unknown token scope {other:?}: use read or write")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The user id.
    pub sub: String,
    pub jti: Uuid,
    pub iss: String,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Tokens may live until revoked; when `exp` is present it is still enforced.
        validation.required_spec_claims.clear();
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        TokenKeys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    pub fn encode(
        &self,
        user_id: i64,
        jti: Uuid,
        iat: i64,
        exp: Option<i64>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = TokenClaims { sub: user_id.to_string(), jti, iss: ISSUER.into(), iat, exp };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// None for anything that is not a well-signed, unexpired Cairn token.
    pub fn decode(&self, token: &str) -> Option<TokenClaims> {
        jsonwebtoken::decode::<TokenClaims>(token, &self.decoding, &self.validation).ok().map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let jti = Uuid::new_v4();
        let now = chrono::Utc::now().timestamp();
        let token = keys.encode(7, jti, now, None).expect("encodes");
        let claims = keys.decode(&token).expect("decodes");
        assert_eq!((claims.sub.as_str(), claims.jti), ("7", jti));

        let other = TokenKeys::new(b"another secret another secret!!!");
        assert!(other.decode(&token).is_none(), "wrong key");
        let expired = keys.encode(7, jti, now - 100, Some(now - 10)).expect("encodes");
        assert!(keys.decode(&expired).is_none(), "expired");
        assert!(keys.decode("garbage").is_none());
    }
}
