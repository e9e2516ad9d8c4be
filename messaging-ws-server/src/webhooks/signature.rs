//! The webhook signature (docs/protocol.md "Webhooks"):
//! `X-Messaging-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! Signing the time with the body lets a receiver refuse a replayed request: it checks the
//! MAC, then that `t` is recent.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header's name.
pub(crate) const HEADER: &str = "x-messaging-signature";

/// The header's value for `body` sent at `t` (Unix seconds).
pub(crate) fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let hex = to_hex(&mac(secret, t, body));
    format!("t={t},v1={hex}")
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return Vec::new() };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_hex(key: &[u8], message: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(message);
        to_hex(&mac.finalize().into_bytes())
    }

    #[test]
    fn hex_is_lower_case_and_whole() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signature_is_the_hmac_of_time_dot_body() {
        let body = br#"{"events":[]}"#;
        let signed = sign(b"secret", 1_700_000_000, body);
        let expected = hmac_hex(b"secret", br#"1700000000.{"events":[]}"#);
        assert_eq!(signed, format!("t=1700000000,v1={expected}"));
        assert_ne!(signed, sign(b"secret", 1_700_000_001, body), "each attempt's time is signed");
        assert_ne!(signed, sign(b"other", 1_700_000_000, body));
    }
}
