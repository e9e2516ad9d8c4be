//! Input validation shared by every operation of the service.
//!
//! Order of checks inside one value: forbidden characters and emptiness first
//! (`Invalid`), then size (`TooLarge`), so a client learns the most specific reason.

use crate::error::{Error, Result};
use crate::limits::PageSize;
use crate::model::Attachment;

/// Largest attachment URL, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Largest attachment MIME type, in bytes.
const MAX_MIME_BYTES: usize = 127;
/// Largest attachment name, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// Largest emoji, in bytes.
const MAX_EMOJI_BYTES: usize = 32;

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

/// A message body: not empty or blank (unless the message has attachments), no U+0000,
/// within the size limit.
pub(crate) fn body(value: &str, has_attachments: bool, max_bytes: usize) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid("body contains U+0000"));
    }
    if value.trim().is_empty() && !has_attachments {
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

/// A message's attachments: at most `max` (`Invalid` above), each with an `http(s)://` URL
/// that has a host, a `type/subtype` MIME type and sizes within the protocol's limits.
pub(crate) fn attachments(list: &[Attachment], max: usize) -> Result<()> {
    if list.len() > max {
        return Err(Error::invalid(format!("a message holds at most {max} attachments")));
    }
    list.iter().try_for_each(attachment)
}

fn attachment(attachment: &Attachment) -> Result<()> {
    // The URL is stored and served as sent, and the URL parser is lenient where a client
    // may not be: it also reads `https:host`, `https:///host` and `\` as `/`, and strips or
    // encodes spaces, tabs and newlines, none of which would be fixed in what clients get.
    if !has_web_scheme(&attachment.url) {
        return Err(Error::invalid("attachment url must be https:// or http:// with a host"));
    }
    if attachment.url.chars().any(|c| is_blank_or_control(c) || c == '\\') {
        return Err(Error::invalid(
            "attachment url contains whitespace, a control character or a backslash",
        ));
    }
    text("attachment url", &attachment.url, MAX_URL_BYTES)?;
    let url = url::Url::parse(&attachment.url)
        .map_err(|_| Error::invalid("attachment url is not a URL"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid("attachment url must be https:// or http:// with a host"));
    }
    text("attachment mime", &attachment.mime, MAX_MIME_BYTES)?;
    if !is_mime_type(&attachment.mime) {
        return Err(Error::invalid("attachment mime must be type/subtype"));
    }
    if let Some(name) = &attachment.name {
        text("attachment name", name, MAX_NAME_BYTES)?;
    }
    Ok(())
}

/// Starts with `https://` or `http://` (the scheme in any case, as URLs allow) and then
/// the host, not another `/`.
fn has_web_scheme(url: &str) -> bool {
    ["https://", "http://"].iter().any(|scheme| {
        url.get(..scheme.len()).is_some_and(|start| start.eq_ignore_ascii_case(scheme))
            && !url[scheme.len()..].starts_with('/')
    })
}

/// Whitespace (`char::is_whitespace`) or a control character: refused in emoji and URLs.
fn is_blank_or_control(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// `type/subtype`: two non-empty runs of RFC 6838 name characters around one `/`.
fn is_mime_type(value: &str) -> bool {
    let name = |part: &str| {
        !part.is_empty()
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    value.split_once('/').is_some_and(|(kind, sub)| name(kind) && name(sub))
}

/// An emoji as reactions carry it: not empty, at most 32 bytes, no whitespace and no
/// control characters (compared byte for byte afterwards: no normalisation).
pub(crate) fn emoji(value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid("emoji is empty"));
    }
    if value.chars().any(is_blank_or_control) {
        return Err(Error::invalid("emoji contains whitespace or a control character"));
    }
    if value.len() > MAX_EMOJI_BYTES {
        return Err(Error::too_large(format!("emoji is over {MAX_EMOJI_BYTES} bytes")));
    }
    Ok(())
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
        assert_eq!(body(" \n\t", false, 10).unwrap_err().code(), "bad_request");
        assert!(body("", true, 10).is_ok(), "an attachment may go without text");
        assert_eq!(body("a\0", true, 10).unwrap_err().code(), "bad_request");
        assert_eq!(body("abcdefghijk", false, 10).unwrap_err().code(), "too_large");
        assert!(body("héllo", false, 10).is_ok());
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

    fn file(url: &str, mime: &str) -> Attachment {
        Attachment {
            url: url.to_owned(),
            mime: mime.to_owned(),
            name: None,
            size: Some(10),
            width: None,
            height: None,
            duration_ms: None,
        }
    }

    #[test]
    fn attachment_rules() {
        let ok = file("https://cdn.example.com/a/b.jpg?x=1", "image/jpeg");
        assert!(attachments(std::slice::from_ref(&ok), 10).is_ok());
        assert!(
            attachments(&[file("http://10.0.0.1:8080/f", "application/vnd.ms-excel")], 1).is_ok()
        );
        for url in ["HTTPS://h/f", "https://[::1]:8443/f", "https://h/caf%C3%A9", "https://h/café"]
        {
            assert!(attachments(&[file(url, "image/png")], 1).is_ok(), "{url}");
        }
        assert_eq!(attachments(&vec![ok.clone(); 11], 10).unwrap_err().code(), "bad_request");
        for url in [
            "ftp://h/f",
            "https://",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "/relative",
            "data:image/png;base64,AA",
            "https:example.com/f",
            "https:/example.com/f",
            " https://h/f",
            "https://h/f ",
            "https://h/a b",
            "https://h/a\tb",
            "https://h/a\nb",
            "https://h/\u{7f}",
            "https://h/\u{a0}",
            "https:///h/f",
            "https://h\\f",
        ] {
            assert_eq!(
                attachments(&[file(url, "image/png")], 10).unwrap_err().code(),
                "bad_request",
                "{url}"
            );
        }
        let long = format!("https://h/{}", "a".repeat(2048));
        assert_eq!(attachments(&[file(&long, "image/png")], 10).unwrap_err().code(), "too_large");
        for mime in ["image", "image/", "/png", "image/png/x", "ima ge/png", "image/png\0"] {
            assert_eq!(
                attachments(&[file("https://h/f", mime)], 10).unwrap_err().code(),
                "bad_request",
                "{mime}"
            );
        }
        let mut named = ok.clone();
        named.name = Some("n".repeat(256));
        assert_eq!(attachments(&[named], 10).unwrap_err().code(), "too_large");
        let mut nul = ok;
        nul.name = Some("a\0b".to_owned());
        assert_eq!(attachments(&[nul], 10).unwrap_err().code(), "bad_request");
    }

    #[test]
    fn emoji_rules() {
        for good in ["👍", "❤", "❤️", "👩‍👩‍👧", ":+1:", "x"] {
            assert!(emoji(good).is_ok(), "{good}");
        }
        for bad in ["", " ", "👍 ", "a\tb", "\u{7}", "\u{85}", "\u{2003}"] {
            assert_eq!(emoji(bad).unwrap_err().code(), "bad_request", "{bad:?}");
        }
        assert_eq!(emoji(&"👍".repeat(9)).unwrap_err().code(), "too_large", "36 bytes");
        assert_eq!(emoji(&format!("{} ", "👍".repeat(9))).unwrap_err().code(), "bad_request");
        assert!(emoji(&"👍".repeat(8)).is_ok(), "32 bytes");
    }

    #[test]
    fn empty_context_is_none() {
        assert_eq!(context(Some(""), 8).unwrap(), None);
        assert_eq!(context(Some("abcdefghi"), 8).unwrap_err().code(), "too_large");
    }
}
