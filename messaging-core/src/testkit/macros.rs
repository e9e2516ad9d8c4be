//! The macros that stamp one `#[tokio::test]` per case into a store crate's test file.
//!
//! Each takes the path of an `async fn() -> Fixture` factory, called once per test, so
//! every case gets a fresh store and its own runtime (never share a pool across tests). A
//! factory may return `Option<Fixture>` instead: `None` skips the case (for a store whose
//! server is not reachable; say so once, loudly, and offer a way to make it fail instead).
//! The using crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dependency:
//! `#[tokio::test]` expands to paths of the `tokio` crate the caller sees.

/// Stamps one test per case of a list; used by the public macros below.
#[doc(hidden)]
#[macro_export]
macro_rules! __messaging_testkit_cases {
    ($factory:path, $module:ident; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $crate::testkit::IntoFixture::into_fixture($factory().await)
                else {
                    return;
                };
                ::std::boxed::Box::pin($crate::testkit::$module::$case(fixture)).await;
            }
        )+
    };
}

/// Stamps out the store conformance suite: one `#[tokio::test]` per case of
/// [`testkit::conformance`](crate::testkit::conformance), each named as its case.
///
/// ```ignore
/// async fn fresh() -> messaging_core::testkit::Fixture {
///     // a new, empty store, e.g. in a temporary directory kept by `with_guard`
/// #   unimplemented!()
/// }
/// mod conformance {
///     messaging_core::conformance_tests!(super::fresh);
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::__messaging_testkit_cases!($factory, conformance;
            // conversations
            open_creates_once_then_finds,
            open_with_self_is_bad_request,
            open_concurrently_from_both_sides_creates_one,
            store_open_direct_race_creates_one,
            contexts_separate_conversations,
            send_to_peer_opens_like_open,
            non_members_get_not_found,
            // messages
            send_assigns_seq_and_updates_conversation,
            concurrent_sends_get_gap_free_seqs,
            idempotent_retry_returns_original,
            concurrent_retries_store_one_message,
            store_append_is_idempotent,
            retry_returns_current_state,
            retry_while_blocked_returns_original,
            edit_by_sender_only,
            delete_makes_one_tombstone,
            metadata_round_trips_as_json,
            timestamps_agree_everywhere,
            // validation
            body_rules,
            nul_is_refused_everywhere,
            metadata_rules,
            context_and_client_msg_id_limits,
            // history
            history_windows,
            history_parameter_rules,
            history_at_depth,
            history_includes_tombstones,
            // receipts
            receipts_only_move_forward,
            read_and_delivered_are_independent,
            sending_moves_no_marker,
            unread_counts,
            // listing
            conversations_ordered_by_activity,
            conversations_paging,
            conversations_parameter_rules,
            conversation_summary_fields,
            // search
            search_matches_words_case_insensitively,
            search_is_scoped_to_the_caller,
            search_skips_tombstones_and_follows_edits,
            search_operators_are_plain_text,
            search_parameter_rules_and_order,
            // blocks
            block_forbids_open_send_typing_both_ways,
            block_leaves_reading_alone,
            unblock_restores_and_self_block_is_refused,
            block_forbids_edit_but_not_delete,
            // bounds
            pages_are_cut_by_the_reply_budget,
            blocks_per_user_are_bounded,
            probe_commit_logs_nothing,
            // presence
            presence_visibility_and_last_seen,
            // sync
            sync_without_cursor_returns_hello_cursor,
            sync_rejects_cursors_never_issued,
            sync_is_exactly_once_from_any_cursor,
            sync_is_bounded_by_hello_cursor,
            sync_serves_current_state,
            sync_only_returns_the_callers_events,
            hello_cursor_race_loses_nothing,
            // feed
            head_counts_events,
            read_events_bounds_and_audience,
            feed_starts_at_head_and_is_dense,
            pushes_arrive_after_commit,
            feed_sees_only_committed_state,
            failed_writes_leave_no_trace,
            // richer messages (v1.1)
            attachments_round_trip_and_are_erased_on_delete,
            replies_must_name_an_existing_seq,
            system_messages_have_no_sender_and_are_unread_for_both,
            the_nil_user_id_is_refused,
            // reactions
            reactions_keep_their_order_and_idempotence,
            reaction_rules_and_bound,
            concurrent_reactions_are_never_lost,
            // member settings, one conversation, blocks list
            mute_leaves_unread_totals_until_it_passes,
            archive_has_its_own_list_and_is_sticky,
            member_updated_goes_to_that_member_only,
            conversation_op_and_context_filter,
            blocks_are_listed_in_order,
            // the host's service handle
            service_opens_without_the_policy_but_not_past_blocks,
            service_reads_moderates_and_sets_metadata,
            service_lists_every_conversation_of_a_context,
            service_deletes_every_message_of_a_user,
            // revoked tokens
            revocations_persist_and_never_move_backwards,
            token_accepted_follows_the_revocations_second,
            revocation_signal_reaches_the_users_sessions_only,
            revocations_are_seen_through_another_store_object,
            // durable consumers (webhooks)
            read_log_names_actors_recipients_and_removed_files,
            a_consumer_from_the_beginning_reads_everything_once_in_order,
            a_consumer_from_the_head_reads_only_later_events,
            consumer_positions_survive_reopening,
            consumer_commits_never_move_backwards,
            a_live_lease_excludes_another_holder_until_it_expires,
            release_lets_another_holder_claim_at_once,
            a_crash_replays_from_the_last_commit,
            advanced_positions_are_stored_at_renewal_or_release,
            consumer_names_and_options_are_checked,
        );
    };
}

/// Stamps out the service scenarios of [`testkit::scenarios`](crate::testkit::scenarios)
/// (policies, fan-out, typing, lag, presence over a real store): one `#[tokio::test]` per
/// scenario, named as it.
#[macro_export]
macro_rules! service_scenarios {
    ($factory:path) => {
        $crate::__messaging_testkit_cases!($factory, scenarios;
            first_degree_refuses_strangers_and_allows_connections,
            blocks_apply_on_top_of_the_policy,
            fanout_reaches_every_session_of_both_members,
            typing_reaches_only_the_peer,
            lagging_subscriber_is_told_so,
            idempotent_retry_pushes_one_event,
            presence_follows_first_and_last_session,
            policy_governs_edit_and_typing,
            typing_repeats_are_thinned,
        );
    };
}

/// Stamps out the out-of-order-commit cases of
/// [`testkit::interleaving`](crate::testkit::interleaving), for stores whose writers can
/// commit out of position order; the factory's fixtures must carry
/// [`Fixture::with_commit_hold`](crate::testkit::Fixture::with_commit_hold).
#[macro_export]
macro_rules! interleaving_tests {
    ($factory:path) => {
        $crate::__messaging_testkit_cases!($factory, interleaving;
            sync_skips_nothing_when_commits_land_out_of_order,
            pushed_cursor_resume_skips_nothing_out_of_order,
            concurrent_senders_across_writers,
        );
    };
}

/// Stamps out the model-based property test ([`testkit::model`](crate::testkit::model)):
/// one `#[test]` named `model_based` running `cases` random op sequences (or
/// `MESSAGING_MODEL_CASES`), each on a fresh fixture from the factory, on a runtime of its
/// own; and one `#[tokio::test]` per regression sequence of
/// [`testkit::model::regressions`](crate::testkit::model::regressions), named after it.
///
/// ```ignore
/// async fn fresh() -> messaging_core::testkit::Fixture {
///     // a new, empty store
/// #   unimplemented!()
/// }
/// mod model {
///     messaging_core::model_tests!(super::fresh, 32);
/// }
/// ```
#[macro_export]
macro_rules! model_tests {
    ($factory:path, $cases:expr) => {
        #[test]
        fn model_based() {
            $crate::testkit::model::check($factory, $cases);
        }

        $crate::__messaging_model_regressions!($factory;
            react_on_a_tombstone_while_blocked_is_conflict,
        );
    };
}

/// Stamps one `#[tokio::test]` per sequence of `testkit::model::regressions`.
#[doc(hidden)]
#[macro_export]
macro_rules! __messaging_model_regressions {
    ($factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $crate::testkit::IntoFixture::into_fixture($factory().await)
                else {
                    return;
                };
                let ops = $crate::testkit::model::regressions::$case();
                ::std::boxed::Box::pin($crate::testkit::model::replay(&fixture, &ops)).await;
            }
        )+
    };
}
