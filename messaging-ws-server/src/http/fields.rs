//! An HTTP request's parameters as one JSON object: the path's ids, the query's values and
//! the body's fields, so a route's operation is parsed by the same code as a WebSocket
//! frame (`request::op_from_fields`) and fails with the same messages.
//!
//! Query rules (docs/protocol.md "HTTP API"): an empty value counts as absent, a repeated
//! parameter is `bad_request`, booleans are `true`/`false`, numbers are decimal integers;
//! a value of the wrong shape stays a string, which the operation's parser refuses with
//! the parameter's name.

use messaging_core::Error;
use serde_json::{Map, Number, Value};

/// Query parameters that are integers in the operations.
const INTEGERS: &[&str] = &["limit", "before_seq", "after_seq", "up_to_seq"];
/// Query parameters that are booleans.
const BOOLEANS: &[&str] = &["archived"];
/// Query parameters that are comma-separated lists.
const LISTS: &[&str] = &["user_ids"];

/// The query string's parameters, typed as the operations expect them.
pub(crate) fn from_query(query: Option<&str>) -> Result<Map<String, Value>, Error> {
    let mut fields = Map::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if fields.contains_key(name.as_ref()) {
            return Err(Error::invalid(format!("`{name}` is given twice")));
        }
        if value.is_empty() {
            // Absent, but still counted for the repeat rule.
            fields.insert(name.into_owned(), Value::Null);
            continue;
        }
        let typed = if INTEGERS.contains(&name.as_ref()) {
            value
                .parse::<u64>()
                .map(|n| Value::Number(Number::from(n)))
                .unwrap_or(Value::String(value.into_owned()))
        } else if BOOLEANS.contains(&name.as_ref()) {
            match value.as_ref() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(Error::invalid(format!("`{name}` must be true or false"))),
            }
        } else if LISTS.contains(&name.as_ref()) {
            Value::Array(value.split(',').map(|item| Value::String(item.to_owned())).collect())
        } else {
            Value::String(value.into_owned())
        };
        fields.insert(name.into_owned(), typed);
    }
    Ok(fields)
}

/// A request body: a JSON object (an empty body is an empty object).
pub(crate) fn from_body(body: &[u8]) -> Result<Map<String, Value>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Error::invalid("the body is not a JSON object")),
        Err(error) => Err(Error::invalid(format!("the body is not valid JSON: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_typed_and_repeats_refused() {
        let fields = from_query(Some("limit=5&archived=true&context=a%20b&before=")).unwrap();
        assert_eq!(fields["limit"], 5);
        assert_eq!(fields["archived"], true);
        assert_eq!(fields["context"], "a b");
        assert_eq!(fields["before"], Value::Null, "empty is absent");
        assert_eq!(from_query(Some("limit=-1")).unwrap()["limit"], "-1", "left to the parser");
        assert!(from_query(Some("limit=1&limit=2")).is_err());
        assert!(from_query(Some("archived=yes")).is_err());
        assert_eq!(
            from_query(Some("user_ids=a,b")).unwrap()["user_ids"],
            serde_json::json!(["a", "b"])
        );
    }

    #[test]
    fn bodies_are_objects() {
        assert!(from_body(b"").unwrap().is_empty());
        assert!(from_body(b"[1]").is_err());
        assert!(from_body(b"{").is_err());
        assert_eq!(from_body(br#"{"body":"x"}"#).unwrap()["body"], "x");
    }
}
