//! The read pool and the SQL of every read, one module per concern:
//!
//! - `pool`: the read-only connections, each query on a blocking thread, bounded in time;
//! - `conversations`: lookups, a member's list and summary, a context's listing, peers;
//! - `messages`: messages, history windows, search, unread totals;
//! - `events`: the log's head and marks, `read_events` and `read_log`;
//! - `social`: blocks, last-seen times and revocations;
//! - `export`: the whole store, section by section, for a move to another store.
//!
//! Every function takes a `Connection`: the pool's, or the writer's inside its transaction
//! (which uses the same lookups by pair, by idempotency key, by id).

mod conversations;
mod events;
mod export;
mod messages;
mod pool;
mod social;

pub(crate) use conversations::{
    conversation, conversations, conversations_by_context, find_direct, peers, summary,
};
pub(crate) use events::{audience_indexed_upto, head, instance, read_events, read_log};
pub(crate) use export::{count as export_count, export};
pub(crate) use messages::{find_by_client_msg_id, history, message, search, unread};
pub(crate) use pool::{ReadPool, open_read_only};
pub(crate) use social::{all_revocations, blocks, last_seen, revoked_at};
