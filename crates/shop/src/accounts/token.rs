//! API tokens: [`ApiToken`] (the secret, shown to its owner once) and [`TokenHash`] (what the
//! database keeps and looks up).
//!
//! A token is `shop_` followed by 32 random bytes from the thread-local CSPRNG, URL-safe base64
//! without padding (43 characters). The prefix makes a leaked token easy to recognise (secret
//! scanners, log scrubbers). Only the SHA-256 of the whole token is stored: a copy of the
//! database does not let anyone authenticate, and a fast hash is enough because the input has
//! 256 bits of entropy (no dictionary to attack, unlike passwords).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "shop_";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Length of the encoded random part: `ceil(32 * 4 / 3)`.
const ENCODED_LEN: usize = 43;

/// A bearer token. `Debug` hides it; the only way to read it is [`ApiToken::expose`].
///
/// ```
/// use shop::accounts::ApiToken;
///
/// let token = ApiToken::generate();
/// assert!(token.expose().starts_with("shop_"));
/// assert_eq!(format!("{token:?}"), "ApiToken([REDACTED])");
/// let presented = ApiToken::parse(token.expose()).unwrap();
/// assert_eq!(presented.hash(), token.hash());
/// assert!(ApiToken::parse("shop_short").is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// A new random token.
    pub fn generate() -> Self {
        let bytes: [u8; TOKEN_BYTES] = rand::random();
        let mut token = String::with_capacity(TOKEN_PREFIX.len() + ENCODED_LEN);
        token.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
        Self(token)
    }

    /// A token as a client presented it, if it has the shape of one (prefix, length,
    /// alphabet). A well-formed token may still be unknown: look its hash up.
    pub fn parse(raw: &str) -> Option<Self> {
        let encoded = raw.strip_prefix(TOKEN_PREFIX)?;
        let well_formed = encoded.len() == ENCODED_LEN
            && encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(raw.to_owned()))
    }

    /// The secret itself, for the one response that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the token, which is what the database stores.
    pub fn hash(&self) -> TokenHash {
        let digest = Sha256::digest(self.0.as_bytes());
        let mut hex = String::with_capacity(2 * digest.len());
        for byte in digest.iter() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        TokenHash(hex)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken([REDACTED])")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The SHA-256 of an [`ApiToken`], 64 lowercase hex characters: the `users.token_hash` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_url_safe_and_distinct() {
        let a = ApiToken::generate();
        let b = ApiToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + ENCODED_LEN);
        assert!(ApiToken::parse(a.expose()).is_some());
        let decoded = URL_SAFE_NO_PAD
            .decode(&a.expose()[TOKEN_PREFIX.len()..])
            .unwrap();
        assert_eq!(decoded.len(), TOKEN_BYTES);
    }

    #[test]
    fn the_hash_is_the_hex_sha256_of_the_whole_token() {
        // sha256("shop_" + 43 × "A"), computed independently with `sha256sum`.
        let token = ApiToken::parse(&format!("shop_{}", "A".repeat(43))).unwrap();
        assert_eq!(
            token.hash().as_str(),
            "b91ab91bbe5367f27c14973c704c6de3de58ff66eea9d7abb345576bd1e1abe0"
        );
    }

    #[test]
    fn strings_without_the_shape_of_a_token_are_not_tokens() {
        let a = |n: usize| "A".repeat(n);
        for raw in [
            String::new(),
            "shop_".to_owned(),
            format!("Shop_{}", a(43)),
            format!("shop_{}", a(42)),
            format!("shop_{}", a(44)),
            format!("shop_{}+", a(42)),
            format!("shop_{}=", a(42)),
            format!("shop_{}/", a(42)),
            format!(" shop_{}", a(43)),
            format!("shop_{}\n", a(42)),
        ] {
            assert!(ApiToken::parse(&raw).is_none(), "{raw:?}");
        }
    }
}
