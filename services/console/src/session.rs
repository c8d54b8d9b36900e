//! The log-in cookie and the CSRF token derived from it. A cookie is
//! `user.expires.signature`: HMAC-SHA256 under the console's key over the user, the expiry
//! and the user's password hash, so changing a password ends every session of that user,
//! and any replica holding the key can check it without shared state. Pure.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const COOKIE: &str = "exatom_session";

/// The key that signs cookies.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn random() -> Self {
        SessionKey(rand::random())
    }

    /// From 64 hex digits (the key file's content, whitespace around it ignored).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{} bytes, expected 32", b.len()))?;
        Ok(SessionKey(key))
    }

    fn mac(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac
    }

    /// The cookie value for `user` until `expires` (Unix seconds).
    pub fn issue(&self, user: &str, password_hash: &str, expires: i64) -> String {
        let expires = expires.to_string();
        let signature = self.mac(&["session", user, &expires, password_hash]);
        format!(
            "{user}.{expires}.{}",
            hex::encode(signature.finalize().into_bytes())
        )
    }

    /// The user a cookie names, if it is signed by this key, unexpired at `now`, and
    /// `password_hash` (looked up by name) is still the user's.
    pub fn verify<'c>(
        &self,
        cookie: &'c str,
        now: i64,
        password_hash: impl FnOnce(&str) -> Option<String>,
    ) -> Option<&'c str> {
        let mut parts = cookie.splitn(3, '.');
        let (user, expires, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if expires.parse::<i64>().ok()? <= now {
            return None;
        }
        let hash = password_hash(user)?;
        let signature = hex::decode(signature).ok()?;
        self.mac(&["session", user, expires, &hash])
            .verify_slice(&signature)
            .ok()?;
        Some(user)
    }

    /// The token a page's forms carry back with a POST made while logged in.
    pub fn csrf_token(&self, cookie: &str) -> String {
        hex::encode(self.mac(&["csrf", cookie]).finalize().into_bytes())
    }

    pub fn csrf_matches(&self, cookie: &str, token: &str) -> bool {
        hex::decode(token).is_ok_and(|t| self.mac(&["csrf", cookie]).verify_slice(&t).is_ok())
    }
}

/// The `Set-Cookie` value for a session (`HttpOnly`, `SameSite=Strict`, `Secure` when the
/// console is served over TLS).
pub fn set_cookie(value: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}")
}

/// The session cookie's value among a request's `Cookie` headers.
pub fn cookie_value<'h>(headers: impl Iterator<Item = &'h str>) -> Option<&'h str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn hash_of(user: &str) -> Option<String> {
        (user == "ann").then(|| "phc-of-ann".to_owned())
    }

    #[test]
    fn a_cookie_is_good_until_it_expires_with_the_same_key_and_password() {
        let key = SessionKey::random();
        let cookie = key.issue("ann", "phc-of-ann", NOW + 60);
        assert_eq!(key.verify(&cookie, NOW, hash_of), Some("ann"));
        assert_eq!(key.verify(&cookie, NOW + 60, hash_of), None, "expired");
        assert_eq!(SessionKey::random().verify(&cookie, NOW, hash_of), None);
        let changed = |_: &str| Some("new-phc".to_owned());
        assert_eq!(key.verify(&cookie, NOW, changed), None, "password changed");
        assert_eq!(key.verify(&cookie, NOW, |_| None), None, "user removed");
    }

    #[test]
    fn a_cookie_edited_in_any_part_is_refused() {
        let key = SessionKey::random();
        let cookie = key.issue("ann", "phc-of-ann", NOW + 60);
        let later = cookie.replacen(&(NOW + 60).to_string(), &(NOW + 6000).to_string(), 1);
        assert_eq!(key.verify(&later, NOW, hash_of), None);
        let other = cookie.replacen("ann", "bob", 1);
        assert_eq!(key.verify(&other, NOW, |_| Some("phc-of-ann".into())), None);
        for bad in ["", "ann", "ann.1", "ann.x.00", &cookie[..cookie.len() - 2]] {
            assert_eq!(key.verify(bad, NOW, hash_of), None, "{bad}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_one_cookie() {
        let key = SessionKey::random();
        let a = key.issue("ann", "phc-of-ann", NOW + 60);
        let b = key.issue("ann", "phc-of-ann", NOW + 61);
        let token = key.csrf_token(&a);
        assert!(key.csrf_matches(&a, &token));
        assert!(!key.csrf_matches(&b, &token));
        assert!(!key.csrf_matches(&a, "zz"));
        assert!(!key.csrf_matches(&a, ""));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict_and_secure_over_tls() {
        let plain = set_cookie("v", 60, false);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        assert!(set_cookie("v", 60, true).ends_with("; Secure"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let headers = ["a=1; exatom_session=ann.1.ff", "b=2"];
        assert_eq!(cookie_value(headers.into_iter()), Some("ann.1.ff"));
        assert_eq!(cookie_value(["a=1"].into_iter()), None);
        assert_eq!(SessionKey::from_hex(&"ab".repeat(32)).map(|_| ()), Ok(()));
        assert!(SessionKey::from_hex("abcd")
            .unwrap_err()
            .contains("2 bytes"));
    }
}
