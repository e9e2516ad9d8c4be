//! What stored values mean, shared by the SQL that writes them and the SQL that reads them.
//!
//! The writer stores event kinds and activity buckets, the read queries and the search
//! indexer interpret them: their meaning lives here, below all three, so none of them has
//! to import another for it.

/// Event kinds as stored in `events.kind`. Numbers are never reused: a build meets the
/// kinds of newer builds in the log (and skips them, see [`kind::is_known`]).
pub(crate) mod kind {
    pub(crate) const CONVERSATION_CREATED: i64 = 1;
    pub(crate) const MESSAGE_CREATED: i64 = 2;
    pub(crate) const MESSAGE_EDITED: i64 = 3;
    pub(crate) const MESSAGE_DELETED: i64 = 4;
    pub(crate) const RECEIPT_READ: i64 = 5;
    pub(crate) const RECEIPT_DELIVERED: i64 = 6;
    /// Since schema 5: `message_pk`, `user_id` and `emoji` say who put which emoji on.
    pub(crate) const REACTION_ADDED: i64 = 7;
    /// Since schema 5: as [`REACTION_ADDED`], taken off.
    pub(crate) const REACTION_REMOVED: i64 = 8;
    /// Since schema 5: `user_id` is the member whose settings changed.
    pub(crate) const MEMBER_UPDATED: i64 = 9;
    /// Since schema 5: the conversation's metadata was replaced.
    pub(crate) const CONVERSATION_UPDATED: i64 = 10;

    /// Whether this build knows the kind (a newer build may log kinds it does not).
    pub(crate) fn is_known(kind: i64) -> bool {
        (CONVERSATION_CREATED..=CONVERSATION_UPDATED).contains(&kind)
    }

    /// Whether an event of this kind may change a message's words, which the search index
    /// follows: only these cost the indexer a delete and an insert.
    pub(crate) fn changes_words(kind: i64) -> bool {
        matches!(kind, MESSAGE_CREATED | MESSAGE_EDITED | MESSAGE_DELETED)
    }
}

/// The conversation list index's coarse key for an activity time (ms): its second. A
/// conversation busier than a message a second moves its index entries once a second; a
/// page reads every conversation of its first second, sorted by the exact time.
pub(crate) fn activity_bucket(at_millis: i64) -> i64 {
    at_millis.div_euclid(1_000)
}

#[cfg(test)]
mod tests {
    use super::kind;

    #[test]
    fn only_message_text_events_reach_the_search_index() {
        let indexed: Vec<i64> = (0..=12).filter(|k| kind::changes_words(*k)).collect();
        assert_eq!(indexed, [kind::MESSAGE_CREATED, kind::MESSAGE_EDITED, kind::MESSAGE_DELETED]);
        let known: Vec<i64> = (0..=12).filter(|k| kind::is_known(*k)).collect();
        assert_eq!(known, (1..=10).collect::<Vec<_>>());
    }
}
