//! What stored values mean, shared by the SQL that writes them and the SQL that reads them.
//!
//! The writer stores event kinds and activity buckets, the read queries and the search
//! indexer interpret them: their meaning lives here, below all three, so none of them has
//! to import another for it.

/// Event kinds as stored in `events.kind`.
pub(crate) mod kind {
    pub(crate) const CONVERSATION_CREATED: i64 = 1;
    pub(crate) const MESSAGE_CREATED: i64 = 2;
    pub(crate) const MESSAGE_EDITED: i64 = 3;
    pub(crate) const MESSAGE_DELETED: i64 = 4;
    pub(crate) const RECEIPT_READ: i64 = 5;
    pub(crate) const RECEIPT_DELIVERED: i64 = 6;
}

/// The conversation list index's coarse key for an activity time (ms): its second. A
/// conversation busier than a message a second moves its index entries once a second; a
/// page reads every conversation of its first second, sorted by the exact time.
pub(crate) fn activity_bucket(at_millis: i64) -> i64 {
    at_millis.div_euclid(1_000)
}
