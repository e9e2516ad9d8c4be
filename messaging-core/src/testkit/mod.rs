//! The conformance suite: one set of cases, run by every store.
//!
//! A store crate proves that it keeps the storage contract (see [`crate::store`]) and that
//! the rules of docs/protocol.md hold over it by running these cases against fresh instances of
//! itself. The cases use the real store passed in, never a stand-in, and most of them go
//! through a real [`Messenger`], so they check what clients will see.
//!
//! # Running the suite against a store
//!
//! 1. Enable the feature in the store crate's dev-dependencies:
//!
//!    ```toml
//!    [dev-dependencies]
//!    messaging-core = { workspace = true, features = ["testkit"] }
//!    tokio = { workspace = true, features = ["full"] }
//!    tempfile.workspace = true
//!    ```
//!
//! 2. Write `tests/conformance.rs` with an `async fn() -> Fixture` factory that builds a
//!    fresh, empty store (a new file, a new database) every time it is called, and stamp
//!    the cases out with the macros. Each case becomes one `#[tokio::test]` (multi-thread
//!    runtime, two workers) named after it, so `cargo test conformance::sync` runs a
//!    concern and a failure names the case:
//!
//!    ```ignore
//!    use std::sync::Arc;
//!    use messaging_core::testkit::Fixture;
//!    use messaging_store_sqlite::{SqliteOptions, SqliteStore};
//!
//!    async fn fresh() -> Fixture {
//!        let dir = tempfile::tempdir().unwrap();
//!        let store = SqliteStore::open_with(dir.path().join("m.db"), SqliteOptions::default())
//!            .await
//!            .unwrap();
//!        // The guard keeps the directory until the case ends.
//!        Fixture::new(Arc::new(store)).with_guard(dir)
//!    }
//!
//!    mod sqlite {
//!        messaging_core::conformance_tests!(super::fresh);
//!        messaging_core::service_scenarios!(super::fresh);
//!    }
//!    ```
//!
//! 3. A store whose writers can commit out of log-position order (several writers on one
//!    database, as with PostgreSQL) also implements [`CommitHold`], declares it with
//!    [`Fixture::with_commit_hold`], and adds `messaging_core::interleaving_tests!(…)`.
//!    A single-writer store (SQLite) cannot interleave commits and leaves that macro out.
//!
//! 4. A store that keeps its data when closed declares how to reopen it with
//!    [`Fixture::with_reopen`]: the cases about what survives reopening (revocations) then
//!    check it too. A store in memory declares none, and those cases stop before that step.
//!
//! Never share a connection pool between tests: every test has its own runtime, and a
//! pool created on one runtime breaks on another. Cases wait for pushes with
//! [`PUSH_TIMEOUT`], so a missing event fails the case instead of hanging it.
//!
//! The three groups:
//!
//! - [`conformance`] (`conformance_tests!`): every storage promise and every docs/protocol.md
//!   rule a store carries, including the raw [`Store`] contracts (idempotent `append`,
//!   racing `open_direct`, `read_events` bounds, the feed's start and order).
//! - [`scenarios`] (`service_scenarios!`): the service over the store: access policies
//!   (with a host-side [`Connections`] graph), fan-out, typing, lag, presence.
//! - [`interleaving`] (`interleaving_tests!`): out-of-order commits, through
//!   [`CommitHold`].
//!
//! Beside them, [`model`] (`model_tests!`): model-based property tests, random sequences
//! of every operation by four users compared after each step with a reference model of
//! docs/protocol.md (proptest, a fixed seed; `MESSAGING_MODEL_CASES` for longer runs),
//! and the regression sequences they found.
//!
//! # docs/protocol.md rules and the cases that check them
//!
//! Operations, "Rules":
//!
//! | Rule | Case(s) |
//! |---|---|
//! | `open`/`send` with `peer` equal to the caller → `bad_request` | `open_with_self_is_bad_request` |
//! | The access policy may refuse → `forbidden` | `first_degree_refuses_strangers_and_allows_connections`, `blocks_apply_on_top_of_the_policy` |
//! | While either user blocks the other, `open`, `send`, `typing` → `forbidden` both ways | `block_forbids_open_send_typing_both_ways`, `blocks_apply_on_top_of_the_policy`, `unblock_restores_and_self_block_is_refused` |
//! | … `history`, `read`, `delivered`, `conversations` unaffected | `block_leaves_reading_alone` |
//! | (v1.1) … `edit` and `typing` too; `delete` unaffected | `block_forbids_edit_but_not_delete`, `block_forbids_open_send_typing_both_ways` |
//! | (v1.1) `edit` and `typing` also need the policy's consent | `policy_governs_edit_and_typing` |
//! | (v1.1) A page is cut by `reply_budget_bytes`: items nearest the anchor, at least one, `has_more`/`next` | `pages_are_cut_by_the_reply_budget` |
//! | (v1.1) `block` beyond `max_blocks_per_user` → `conflict` | `blocks_per_user_are_bounded` |
//! | (v1.1) Health: a probe commit goes through the write path and logs nothing | `probe_commit_logs_nothing` |
//! | (v1.1) A `started` repeated within `expires_in_ms / 2` may be dropped; a change of state never | `typing_repeats_are_thinned` |
//! | `send` with `peer` opens exactly as `open` (same checks, same `conversation.created`) | `send_to_peer_opens_like_open`, `contexts_separate_conversations`, `block_forbids_open_send_typing_both_ways`, `first_degree_refuses_strangers_and_allows_connections` |
//! | A conversation the caller is not in, or that does not exist → `not_found` | `non_members_get_not_found`, `search_is_scoped_to_the_caller` |
//! | Empty or whitespace-only `body` → `bad_request`; over `max_body_bytes` → `too_large` | `body_rules` |
//! | `send` is idempotent on (sender, conversation, `client_msg_id`) | `idempotent_retry_returns_original`, `concurrent_retries_store_one_message`, `store_append_is_idempotent`, `idempotent_retry_pushes_one_event` |
//! | … a retry returns the original in its current state (whatever its body; a tombstone if deleted) and emits no event | `idempotent_retry_returns_original`, `retry_returns_current_state`, `head_counts_events` |
//! | … recognised after the membership check, before policy and block checks | `non_members_get_not_found`, `retry_while_blocked_returns_original`, `first_degree_refuses_strangers_and_allows_connections` |
//! | `history`: ascending seq; latest / `before_seq` / `after_seq` windows; `has_more` | `history_windows`, `history_at_depth` |
//! | … both `before_seq` and `after_seq` → `bad_request` | `history_parameter_rules` |
//! | … tombstones included; keyset pagination whatever the depth | `history_includes_tombstones`, `history_at_depth` |
//! | `read`/`delivered` only move forward; a lower value returns the current one; above `last_seq` is clamped | `receipts_only_move_forward`, `read_and_delivered_are_independent` |
//! | Only `read`/`delivered` move markers (sending moves neither) | `sending_moves_no_marker`, `read_and_delivered_are_independent` |
//! | A `receipt.*` event only when a marker moves | `receipts_only_move_forward`, `head_counts_events` |
//! | Unread = the peer's messages with `seq > read_seq`, not deleted; `unread.conversations` | `unread_counts`, `conversation_summary_fields`, `sending_moves_no_marker` |
//! | `edit`/`delete`: only the sender; anyone else (member or not) → `not_found` | `edit_by_sender_only`, `delete_makes_one_tombstone`, `non_members_get_not_found` |
//! | Editing a deleted message → `conflict` | `delete_makes_one_tombstone` |
//! | Deleting twice returns the tombstone again, no second event | `delete_makes_one_tombstone`, `head_counts_events` |
//! | `conversations` ordered by last activity (new messages; not edits or deletes), newest first | `conversations_ordered_by_activity` |
//! | … `next` is null exactly when nothing follows the page | `conversations_paging` |
//! | … a bounded number of queries whatever the page size (no N+1) | not observable through the [`Store`] trait: each store documents and reviews its queries |
//! | `search`: plain text, words case-insensitive, no operators, never an error for its content | `search_matches_words_case_insensitively`, `search_operators_are_plain_text` |
//! | … newest first; only the caller's conversations; never tombstones | `search_parameter_rules_and_order`, `search_is_scoped_to_the_caller`, `search_skips_tombstones_and_follows_edits` |
//! | `presence` answers only for users sharing a conversation; `last_seen` null while online | `presence_visibility_and_last_seen`, `presence_follows_first_and_last_session` |
//!
//! Parameters and objects (rules stated outside the table, which stores carry too):
//!
//! | Rule | Case(s) |
//! |---|---|
//! | Ranges (`limit`s, `user_ids` count, empty query) → `bad_request`, never clamped | `history_parameter_rules`, `conversations_parameter_rules`, `sync_rejects_cursors_never_issued`, `search_parameter_rules_and_order`, `presence_visibility_and_last_seen` |
//! | Byte limits → `too_large` (body, metadata, context, `client_msg_id`, query) | `body_rules`, `metadata_rules`, `context_and_client_msg_id_limits`, `search_parameter_rules_and_order` |
//! | U+0000 in any string → `bad_request` | `nul_is_refused_everywhere` |
//! | `metadata` is a JSON object, compared as a value | `metadata_rules`, `metadata_round_trips_as_json` |
//! | `seq` per conversation from 1 without gaps; `last_seq` 0 without messages | `send_assigns_seq_and_updates_conversation`, `concurrent_sends_get_gap_free_seqs`, `concurrent_senders_across_writers`, `open_creates_once_then_finds` |
//! | A tombstone: `deleted`, body `""`, metadata null | `delete_makes_one_tombstone`, `retry_returns_current_state` |
//! | A missing or empty context is null; one conversation per (pair, context) | `contexts_separate_conversations`, `open_creates_once_then_finds`, `open_concurrently_from_both_sides_creates_one`, `store_open_direct_race_creates_one` |
//! | Summary: `last_message` (tombstone included), `unread_count`, `read_seq`, `peer_read_seq`, `peer_delivered_seq` | `conversation_summary_fields`, `read_and_delivered_are_independent` |
//! | Timestamps with millisecond precision, equal everywhere | `timestamps_agree_everywhere` |
//!
//! Events:
//!
//! | Rule | Case(s) |
//! |---|---|
//! | Durable events go to every open session of every member, the causing session included | `fanout_reaches_every_session_of_both_members` |
//! | Ephemeral events do not go to the sessions of the user who caused them | `typing_reaches_only_the_peer`, `presence_follows_first_and_last_session` |
//! | `conversation.created` only when a conversation is created | `open_creates_once_then_finds`, `open_concurrently_from_both_sides_creates_one`, `send_to_peer_opens_like_open` |
//! | `message.created` / `message.edited` / `message.deleted` (tombstone) carry the message | `send_assigns_seq_and_updates_conversation`, `edit_by_sender_only`, `delete_makes_one_tombstone`, `fanout_reaches_every_session_of_both_members` |
//! | `receipt.read` / `receipt.delivered` carry the marker | `receipts_only_move_forward`, `read_and_delivered_are_independent` |
//! | `typing` carries its fields and `expires_in_ms`; never stored | `typing_reaches_only_the_peer` |
//! | `presence` to users sharing a conversation at the first session and the last close | `presence_follows_first_and_last_session` |
//! | Every durable event after `hello.cursor`, and none at or before it, is pushed | `sync_is_bounded_by_hello_cursor`, `hello_cursor_race_loses_nothing` |
//! | A pushed event is committed (the feed runs after commit, in position order) | `pushes_arrive_after_commit`, `feed_sees_only_committed_state`, `feed_starts_at_head_and_is_dense`, `sync_skips_nothing_when_commits_land_out_of_order` |
//! | An overflowing queue is reported as lagged; `sync` recovers everything | `lagging_subscriber_is_told_so` |
//!
//! v1.1 (richer messages, settings, the service handle):
//!
//! | Rule | Case(s) |
//! |---|---|
//! | Attachments: kept in order with every field, an empty body allowed with them, validated (`bad_request`), erased (with reactions) on delete in every read and `sync` | `attachments_round_trip_and_are_erased_on_delete` |
//! | `reply_to_seq`: an existing seq of the same conversation (`not_found`; a tombstone allowed; 0 `bad_request`) | `replies_must_name_an_existing_seq` |
//! | System messages: no sender, `kind: system`, unread for both, nobody edits or deletes them (`not_found`), their own `client_msg_id` space; `send` says `created` | `system_messages_have_no_sender_and_are_unread_for_both`, `idempotent_retry_returns_original` |
//! | The nil UUID is no user id (revocations included) | `the_nil_user_id_is_refused` |
//! | Reactions: order of emoji and users, re-adds last, no-ops emit nothing, events as of the change with the message current, not activity, not unread | `reactions_keep_their_order_and_idempotence` |
//! | … members only, `conflict` on a tombstone and beyond the per-user bound, `forbidden` when blocked, emoji validated | `reaction_rules_and_bound` |
//! | … concurrent reactions never lost (two store objects when the store has them) | `concurrent_reactions_are_never_lost` |
//! | `mute`: out of unread totals until it passes (then reads none, nothing emitted); a past time `bad_request` | `mute_leaves_unread_totals_until_it_passes` |
//! | `archive`: its own list, sticky across new messages, still unread | `archive_has_its_own_list_and_is_sticky` |
//! | `member.updated` to that member only, only on a change, current settings in `sync` | `member_updated_goes_to_that_member_only`, `mute_leaves_unread_totals_until_it_passes`, `archive_has_its_own_list_and_is_sticky` |
//! | `conversation` op; `conversations` filtered by `context` | `conversation_op_and_context_filter` |
//! | Receipts carry `at` (as of the event); summaries `peer_read_at` / `peer_delivered_at` | `receipts_only_move_forward`, `read_and_delivered_are_independent` |
//! | `blocks`: ascending, paged | `blocks_are_listed_in_order` |
//! | Service: open without the policy, not past blocks, existing unchanged, metadata at creation; `post_as` is the member's send; blocks on a user's behalf | `service_opens_without_the_policy_but_not_past_blocks` |
//! | Service: any history, one conversation, moderation deletes, metadata → `conversation.updated` | `service_reads_moderates_and_sets_metadata` |
//! | Service: every conversation of one context, newest activity first, paged | `service_lists_every_conversation_of_a_context` |
//! | Service: account deletion tombstones every message of the user (archived conversations, long histories), one event each, others' kept | `service_deletes_every_message_of_a_user` |
//! | Service: `revoke` keeps the later time (never backwards, across reopening), other users untouched, no event | `revocations_persist_and_never_move_backwards` |
//! | Service: `revoke` refuses every token of the user issued at or before its time in whole seconds (floored), or without `iat`; later ones accepted | `token_accepted_follows_the_revocations_second` |
//! | Service: `revoke` closes every session of the user (the `revoked` signal to that user only) | `revocation_signal_reaches_the_users_sessions_only` |
//! | … on every instance: another store object on the database sees it (sessions there: the store's own tests) | `revocations_are_seen_through_another_store_object` |
//!
//! Durable consumers (webhooks):
//!
//! | Rule | Case(s) |
//! |---|---|
//! | Every durable event, in log order, with `actor` (`null` for the host's calls and system messages), its recipients with their mutes, and `removed_attachments` on `message.deleted` | `read_log_names_actors_recipients_and_removed_files` |
//! | In log order, in batches, every event at least once, none skipped | `a_consumer_from_the_beginning_reads_everything_once_in_order`, `a_crash_replays_from_the_last_commit`, `advanced_positions_are_stored_at_renewal_or_release` |
//! | With no position stored, the head is stored at once: no history replayed | `a_consumer_from_the_head_reads_only_later_events` |
//! | The delivered position is stored and survives restarts; it never moves backwards | `consumer_positions_survive_reopening`, `consumer_commits_never_move_backwards` |
//! | One holder at a time; another takes over when it dies (its lease expired) or lets go | `a_live_lease_excludes_another_holder_until_it_expires`, `release_lets_another_holder_claim_at_once` (two instances: the PostgreSQL store's own tests) |
//! | Consumer names and options out of range → `bad_request` | `consumer_names_and_options_are_checked` |
//!
//! Resuming: `sync`:
//!
//! | Rule | Case(s) |
//! |---|---|
//! | From a cursor: every durable event visible to the caller after it, in order, `limit`, `has_more`, the cursor to continue | `sync_is_exactly_once_from_any_cursor`, `read_events_bounds_and_audience` |
//! | Only the caller's events | `sync_only_returns_the_callers_events`, `read_events_bounds_and_audience` |
//! | Bounded by the session's `hello.cursor` (`has_more: false`, cursor = hello at the end) | `sync_is_bounded_by_hello_cursor`, `sync_is_exactly_once_from_any_cursor` |
//! | Without a cursor: no events and `hello.cursor` | `sync_without_cursor_returns_hello_cursor` |
//! | A cursor the server never issued → `bad_request` | `sync_rejects_cursors_never_issued` |
//! | Sync from the stored cursor, then pushed cursors: every event once, no subscribe race | `hello_cursor_race_loses_nothing`, `lagging_subscriber_is_told_so` |
//! | … none skipped even when writers commit out of order | `sync_skips_nothing_when_commits_land_out_of_order`, `pushed_cursor_resume_skips_nothing_out_of_order` |
//! | Events carry current state: tombstones in every event of a deleted message, latest bodies | `sync_serves_current_state` |
//!
//! Storage contract promises beyond the protocol: `head_counts_events` (one position per
//! event, dense), `read_events_bounds_and_audience`, `feed_starts_at_head_and_is_dense`
//! (`start(head)` first, then dense batches with their audience), `store_append_is_idempotent`,
//! `store_open_direct_race_creates_one`, `failed_writes_leave_no_trace` (a failing write
//! committed beside others takes no position and feeds nothing).
//!
//! Not here: what only a transport can show (JSON framing, authentication, rate limits,
//! heartbeats, close codes, ids that are not UUIDs); the server's end-to-end tests cover it.

#![allow(clippy::expect_used, clippy::panic)]

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::store::Store;
use crate::{Messenger, MessengerBuilder};

pub mod conformance;
mod hold;
pub mod interleaving;
mod macros;
pub mod model;
pub mod scenarios;
pub(crate) mod support;

pub use hold::{CommitHold, HeldCommit, HoldPoint};
pub use support::{Connections, FeedRecorder, PUSH_TIMEOUT};

// The suite reports a failure by panicking, like any test: `expect` and `panic!` name the
// step that failed.

/// One fresh store for one case.
pub struct Fixture {
    /// The store under test (fresh: no data of another case).
    pub store: Arc<dyn Store>,
    /// The store's [`CommitHold`] capability, for the interleaving cases.
    pub commit_hold: Option<Arc<dyn CommitHold>>,
    /// A second store object on the same database (another process's writer), for the
    /// interleaving cases; without one they use [`Fixture::store`] twice.
    pub peer_store: Option<Arc<dyn Store>>,
    reopen: Option<Reopen>,
    guard: Box<dyn Any + Send + Sync>,
}

/// Closes a fixture's store and opens its database again (see [`Fixture::with_reopen`]).
type Reopen = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>> + Send + Sync>;

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("commit_hold", &self.commit_hold.is_some())
            .field("reopen", &self.reopen.is_some())
            .finish_non_exhaustive()
    }
}

/// What a factory may return: a [`Fixture`], or `None` to skip the case.
pub trait IntoFixture {
    /// The fixture, or `None` to skip.
    fn into_fixture(self) -> Option<Fixture>;
}

impl IntoFixture for Fixture {
    fn into_fixture(self) -> Option<Fixture> {
        Some(self)
    }
}

impl IntoFixture for Option<Fixture> {
    fn into_fixture(self) -> Option<Fixture> {
        self
    }
}

impl Fixture {
    /// A fixture over `store`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, commit_hold: None, peer_store: None, reopen: None, guard: Box::new(()) }
    }

    /// Keeps `guard` (e.g. a temporary directory) alive as long as the fixture.
    #[must_use]
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        let previous = std::mem::replace(&mut self.guard, Box::new(()));
        self.guard = Box::new((previous, guard));
        self
    }

    /// Declares the store's [`CommitHold`] capability (needed by the interleaving cases).
    #[must_use]
    pub fn with_commit_hold(mut self, hold: Arc<dyn CommitHold>) -> Self {
        self.commit_hold = Some(hold);
        self
    }

    /// Adds a second store object on the same database, as another process would open it.
    #[must_use]
    pub fn with_peer_store(mut self, peer: Arc<dyn Store>) -> Self {
        self.peer_store = Some(peer);
        self
    }

    /// Declares how to reopen the store, for the cases that check what survives it:
    /// `reopen` closes the fixture's store (every write it answered is durable) and opens
    /// the same database again as a new store object, which it returns. The fixture's
    /// store (and messengers over it) must not be used after a reopen. A store that keeps
    /// nothing once dropped (in memory) declares none.
    ///
    /// ```ignore
    /// let reopen_path = path.clone();
    /// Fixture::new(store.clone()).with_reopen(move || {
    ///     let (store, path) = (store.clone(), reopen_path.clone());
    ///     async move {
    ///         store.close().await.unwrap();
    ///         Arc::new(SqliteStore::open(&path).await.unwrap()) as Arc<dyn Store>
    ///     }
    /// })
    /// ```
    #[must_use]
    pub fn with_reopen<F, Fut>(mut self, reopen: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Arc<dyn Store>> + Send + 'static,
    {
        self.reopen = Some(Arc::new(move || Box::pin(reopen())));
        self
    }

    /// The store reopened (see [`Fixture::with_reopen`]), or `None` when the store
    /// declared no way to reopen it.
    pub async fn reopen(&self) -> Option<Arc<dyn Store>> {
        match &self.reopen {
            Some(reopen) => Some(reopen().await),
            None => None,
        }
    }

    /// A [`Messenger`] over the peer store (see [`Fixture::with_peer_store`]), or over the
    /// store itself when there is none.
    pub async fn peer_messenger(&self) -> Messenger {
        let store = self.peer_store.clone().unwrap_or_else(|| self.store.clone());
        Messenger::new(store).await.expect("Messenger::new over the fixture's peer store")
    }

    /// A [`Messenger`] with the defaults over the store.
    pub async fn messenger(&self) -> Messenger {
        Messenger::new(self.store.clone()).await.expect("Messenger::new over the fixture's store")
    }

    /// A [`Messenger`] over the store, configured by `configure`.
    pub async fn messenger_with(
        &self,
        configure: impl FnOnce(MessengerBuilder) -> MessengerBuilder,
    ) -> Messenger {
        configure(Messenger::builder(self.store.clone()))
            .build()
            .await
            .expect("building a Messenger over the fixture's store")
    }

    /// The [`CommitHold`] capability; panics with an explanation when the store has none.
    #[must_use]
    pub fn commit_hold(&self) -> Arc<dyn CommitHold> {
        self.commit_hold.clone().expect(
            "this case needs Fixture::with_commit_hold: only stores whose writers can commit \
             out of position order run `interleaving_tests!`",
        )
    }
}

#[cfg(test)]
mod tests {
    /// Every case is stamped by its macro and named in the rule table above.
    #[test]
    fn every_case_is_stamped_and_documented() {
        let macros = include_str!("macros.rs");
        let docs = include_str!("mod.rs");
        let sources = [
            include_str!("conformance/blocks.rs"),
            include_str!("conformance/bounds.rs"),
            include_str!("conformance/consumers.rs"),
            include_str!("conformance/conversations.rs"),
            include_str!("conformance/feed.rs"),
            include_str!("conformance/history.rs"),
            include_str!("conformance/listing.rs"),
            include_str!("conformance/messages.rs"),
            include_str!("conformance/presence.rs"),
            include_str!("conformance/reactions.rs"),
            include_str!("conformance/receipts.rs"),
            include_str!("conformance/revocation.rs"),
            include_str!("conformance/rich.rs"),
            include_str!("conformance/service.rs"),
            include_str!("conformance/settings.rs"),
            include_str!("conformance/search.rs"),
            include_str!("conformance/sync.rs"),
            include_str!("conformance/validation.rs"),
            include_str!("scenarios.rs"),
            include_str!("interleaving.rs"),
        ];
        let mut cases = 0;
        for source in sources {
            for line in source.lines() {
                let Some(rest) = line.strip_prefix("pub async fn ") else {
                    continue;
                };
                let name = rest.split('(').next().unwrap();
                cases += 1;
                assert!(macros.contains(&format!(" {name},")), "{name} is not stamped by a macro");
                assert!(docs.contains(&format!("`{name}`")), "{name} is not in the rule table");
            }
        }
        assert!(cases >= 60, "found {cases} cases");
    }
}
