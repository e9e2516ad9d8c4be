//! Input validation shared by every operation of the service.
//!
//! Order of checks inside one value: forbidden characters and emptiness first
//! (`Invalid`), then size (`TooLarge`), so a client learns the most specific reason.

use crate::error::{Error, Result};
use crate::limits::PageSize;

/// Refuses U+0000 and values over `max_bytes`.
pub(crate) fn text(field: &str, value: &str, max_bytes: usize) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(format!("{field} contains U+0000")));
    }
    if value.len() > max_bytes {
        return Err(Error::too_large(format!("{field} is over {max_bytes} bytes")));
    }
    Ok(())
}

/// A message body: not empty or blank, no U+0000, within the size limit.
pub(crate) fn body(value: &str, max_bytes: usize) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid("body contains U+0000"));
    }
    if value.trim().is_empty() {
        return Err(Error::invalid("body is empty"));
    }
    text("body", value, max_bytes)
}

/// A conversation context: empty means none.
pub(crate) fn context(value: Option<&str>, max_bytes: usize) -> Result<Option<String>> {
    match value {
        None | Some("") => Ok(None),
        Some(c) => {
            text("context", c, max_bytes)?;
            Ok(Some(c.to_owned()))
        }
    }
}

/// An idempotency key: not empty, no U+0000, within the size limit.
pub(crate) fn client_msg_id(value: &str, max_bytes: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid("client_msg_id is empty"));
    }
    text("client_msg_id", value, max_bytes)
}

/// Metadata: a JSON object with no U+0000 in any key or string, within the size limit.
pub(crate) fn metadata(value: &serde_json::Value, max_bytes: usize) -> Result<()> {
    if !value.is_object() {
        return Err(Error::invalid("metadata must be a JSON object"));
    }
    if contains_nul(value) {
        return Err(Error::invalid("metadata contains U+0000"));
    }
    let size = serde_json::to_vec(value).map_err(Error::backend)?.len();
    if size > max_bytes {
        return Err(Error::too_large(format!("metadata is over {max_bytes} bytes")));
    }
    Ok(())
}

fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v))
        }
        _ => false,
    }
}

/// A page size: the default when absent; out of range is refused, never clamped.
pub(crate) fn page(field: &str, limit: Option<usize>, size: PageSize) -> Result<usize> {
    match limit {
        None => Ok(size.default),
        Some(n) if (1..=size.max).contains(&n) => Ok(n),
        Some(_) => Err(Error::invalid(format!("{field} must be between 1 and {}", size.max))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_rules() {
        assert_eq!(body(" \n\t", 10).unwrap_err().code(), "bad_request");
        assert_eq!(body("a\0", 10).unwrap_err().code(), "bad_request");
        assert_eq!(body("abcdefghijk", 10).unwrap_err().code(), "too_large");
        assert!(body("héllo", 10).is_ok());
    }

    #[test]
    fn metadata_rules() {
        assert_eq!(metadata(&json!([1]), 100).unwrap_err().code(), "bad_request");
        assert_eq!(metadata(&json!({"a": {"b\u{0}": 1}}), 100).unwrap_err().code(), "bad_request");
        assert_eq!(metadata(&json!({"a": "x".repeat(100)}), 100).unwrap_err().code(), "too_large");
        assert!(metadata(&json!({"a": [1, "b"]}), 100).is_ok());
    }

    #[test]
    fn pages_are_never_clamped() {
        let size = PageSize::new(20, 50);
        assert_eq!(page("limit", None, size).unwrap(), 20);
        assert_eq!(page("limit", Some(50), size).unwrap(), 50);
        assert!(page("limit", Some(0), size).is_err());
        assert!(page("limit", Some(51), size).is_err());
    }

    #[test]
    fn empty_context_is_none() {
        assert_eq!(context(Some(""), 8).unwrap(), None);
        assert_eq!(context(Some("abcdefghi"), 8).unwrap_err().code(), "too_large");
    }
}
