//! The reply byte budget: how many items of a page fit in `Limits::reply_budget_bytes`.
//!
//! Why: a page's item count alone does not bound its size. JSON escaping turns one byte of
//! a body into up to six (`\u0001`), so 500 events of 8 KiB bodies made one `sync` reply
//! of 24.6 MB (measured 2026-12, hardening review). Pages are cut by their items' encoded
//! size, measured with the same serializer the transports use, without allocating the
//! encoding.

use serde::Serialize;

use crate::model::{Event, LoggedEvent};

/// What a pushed or synced event adds around its object (`{"event":"…","cursor":"…",
/// "data":{…}}`), counted generously.
const EVENT_ENVELOPE_BYTES: usize = 128;

/// The length of `value` encoded as JSON.
#[must_use]
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    // Writing to a counter fails only if serialization itself fails (a map with non-string
    // keys): count such an item as too large to share a page.
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// The encoded length of a logged event as `sync` serves it.
#[must_use]
pub(crate) fn event_len(event: &LoggedEvent) -> usize {
    let object = match &event.event {
        Event::ConversationCreated(conversation) | Event::ConversationUpdated(conversation) => {
            encoded_len(conversation)
        }
        Event::MessageCreated(m) | Event::MessageEdited(m) | Event::MessageDeleted(m) => {
            encoded_len(m)
        }
        // The message, plus the user id and the emoji (escaped at most sixfold).
        Event::Reaction(r) => encoded_len(&r.message) + 64 + r.emoji.len() * 6,
        Event::Receipt(_) | Event::MemberUpdated(_) => 160,
    };
    object.saturating_add(EVENT_ENVELOPE_BYTES)
}

/// How many items, taken from the front of `items`, fit in `budget` bytes: at least one
/// (a page always makes progress), at most all.
#[must_use]
pub(crate) fn fitting<'a, T: 'a>(
    items: impl IntoIterator<Item = &'a T>,
    budget: usize,
    len: impl Fn(&T) -> usize,
) -> usize {
    let mut used = 0_usize;
    let mut count = 0;
    for item in items {
        used = used.saturating_add(len(item)).saturating_add(1);
        if used > budget && count > 0 {
            break;
        }
        count += 1;
    }
    count
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_counted() {
        assert_eq!(encoded_len("a"), 3);
        assert_eq!(encoded_len("\u{1}"), 8);
        assert_eq!(encoded_len(&serde_json::json!({"k": [1, 2]})), r#"{"k":[1,2]}"#.len());
    }

    #[test]
    fn a_page_holds_at_least_one_item_and_stops_at_the_budget() {
        let sizes = [10_usize, 10, 10, 10];
        assert_eq!(fitting(&sizes, 1_000, |s| *s), 4);
        assert_eq!(fitting(&sizes, 22, |s| *s), 2);
        assert_eq!(fitting(&sizes, 5, |s| *s), 1);
        assert_eq!(fitting(&[] as &[usize], 5, |s| *s), 0);
    }
}
