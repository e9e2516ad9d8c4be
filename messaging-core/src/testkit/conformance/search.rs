//! Full-text search: whole words, case-insensitive, every word required, plain text (no
//! operator ever reaches the engine), scoped to the caller, never tombstones, edits
//! reindexed, newest first, parameter rules.

use crate::Messenger;
use crate::id::MessageId;
use crate::model::Message;
use crate::testkit::Fixture;
use crate::testkit::support::{Must, after_millisecond, assert_code, open, send, two_users};
use crate::{ConversationId, UserId};

async fn found(
    m: &Messenger,
    user: UserId,
    query: &str,
    c: Option<ConversationId>,
) -> Vec<MessageId> {
    let hits = m.search(user, query, c, None).await.must(&format!("search {query:?}"));
    hits.iter().map(|m| m.id).collect()
}

/// Words match whole and case-insensitively; every word of the query must be present.
pub async fn search_matches_words_case_insensitively(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let hello = send(&m, alice, c.id, "Hello World, the BIKE is still available!").await;
    let other = send(&m, bob, c.id, "is the bike red? Straße café").await;
    assert_eq!(found(&m, bob, "hello", None).await, [hello.id]);
    assert_eq!(found(&m, bob, "WORLD", None).await, [hello.id]);
    assert_eq!(found(&m, bob, "wOrLd HeLLo", None).await, [hello.id], "all words, any order");
    assert_eq!(found(&m, bob, "available world", None).await, [hello.id]);
    assert!(found(&m, bob, "hello red", None).await.is_empty(), "every word is required");
    assert!(found(&m, bob, "hell", None).await.is_empty(), "no prefix matching");
    assert!(found(&m, bob, "worlds", None).await.is_empty(), "no stemming");
    let bikes = found(&m, alice, "bike", None).await;
    assert_eq!(bikes.len(), 2, "both messages contain the word");
    assert!(bikes.contains(&hello.id) && bikes.contains(&other.id));
    assert_eq!(found(&m, alice, "STRASSE", None).await.len(), 0, "lowercased, not folded");
    assert_eq!(found(&m, alice, "straße CAFÉ", None).await, [other.id], "unicode words");
    assert_eq!(found(&m, alice, "\"bike\"", None).await.len(), 2, "quotes are not syntax");
    let hits = m.search(bob, "hello", None, None).await.must("search");
    assert_eq!(hits, vec![hello], "hits are whole messages");
}

/// Only the caller's conversations are searched, never another user's; `conversation_id`
/// narrows the search and → `not_found` for a non-member.
pub async fn search_is_scoped_to_the_caller(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let (carol, dave) = two_users();
    let ab = open(&m, alice, bob, None).await;
    let ac = open(&m, alice, carol, None).await;
    let cd = open(&m, carol, dave, None).await;
    let in_ab = send(&m, bob, ab.id, "secret plan").await;
    let in_ac = send(&m, alice, ac.id, "secret recipe").await;
    let in_cd = send(&m, dave, cd.id, "secret meeting").await;
    let mut mine = found(&m, alice, "secret", None).await;
    mine.sort();
    let mut want = vec![in_ab.id, in_ac.id];
    want.sort();
    assert_eq!(mine, want, "alice finds her two conversations' messages only");
    assert_eq!(found(&m, bob, "secret", None).await, [in_ab.id]);
    assert_eq!(found(&m, dave, "secret", None).await, [in_cd.id]);
    assert_eq!(found(&m, alice, "secret", Some(ac.id)).await, [in_ac.id], "narrowed");
    assert!(found(&m, alice, "plan", Some(ac.id)).await.is_empty());
    assert_code(m.search(alice, "secret", Some(cd.id), None).await, "not_found", "non-member");
    assert_code(
        m.search(alice, "secret", Some(ConversationId::new()), None).await,
        "not_found",
        "unknown",
    );
    assert!(found(&m, UserId::new(), "secret", None).await.is_empty(), "a stranger finds nothing");
}

/// Deleted messages are never found; an edited message is found by its new body and not
/// by its old one.
pub async fn search_skips_tombstones_and_follows_edits(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let deleted = send(&m, alice, c.id, "ephemeral words here").await;
    let edited = send(&m, alice, c.id, "original wording").await;
    assert_eq!(found(&m, bob, "ephemeral", None).await, [deleted.id]);
    m.delete(alice, deleted.id).await.must("delete");
    assert!(found(&m, bob, "ephemeral", None).await.is_empty(), "never tombstones");
    assert!(found(&m, bob, "words", Some(c.id)).await.is_empty());
    m.edit(alice, edited.id, "revised phrasing").await.must("edit");
    assert!(found(&m, bob, "original", None).await.is_empty(), "not by the old body");
    let hits = m.search(bob, "revised", None, None).await.must("search");
    assert_eq!(hits.len(), 1, "by the new body");
    assert_eq!(hits[0].body, "revised phrasing");
    assert!(hits[0].edited_at.is_some());
}

/// Operator characters and words of full-text engines are plain text: never an error; a
/// query without any word → an empty result; `AND` finds the word "and".
pub async fn search_operators_are_plain_text(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let and = send(&m, alice, c.id, "salt and pepper, near the door; not now or never").await;
    for query in [
        "\"",
        "*",
        "-",
        "AND",
        "NEAR(",
        "(",
        ")",
        "\"unbalanced",
        "salt*",
        "-salt",
        "salt -pepper",
        "salt AND",
        "OR",
        "NOT",
        "salt OR pepper",
        "NEAR(salt pepper)",
        "body:salt",
        "^salt",
        "{salt}",
        "salt + pepper",
        "'",
        "''",
        "\\",
        "%",
        "_",
        "salt\"pepper",
        ":",
        "a:b:c",
        "@",
        "NEAR/2",
        "*salt*",
        "((((",
        "\"\"",
        "😀",
        "\u{200b}",
    ] {
        m.search(alice, query, None, None)
            .await
            .must(&format!("query {query:?} is never an error"));
    }
    assert_eq!(found(&m, alice, "AND", None).await, [and.id], "AND is the word 'and'");
    assert_eq!(found(&m, alice, "NEAR(", None).await, [and.id], "NEAR( is the word 'near'");
    assert_eq!(found(&m, alice, "NOT or", None).await, [and.id]);
    assert_eq!(found(&m, alice, "salt*", None).await, [and.id], "* separates words");
    assert_eq!(found(&m, alice, "-pepper", None).await, [and.id], "- is not negation");
    assert_eq!(found(&m, alice, "\"salt pepper\"", None).await, [and.id]);
    assert!(found(&m, alice, "salt -absent", None).await.is_empty(), "every word is required");
    for wordless in ["!!!", "* - ( ) \"", "   ", "..."] {
        assert!(found(&m, alice, wordless, None).await.is_empty(), "{wordless:?}: no word, no hit");
    }
}

/// An empty query → `bad_request`; over 256 bytes → `too_large` (256 is accepted);
/// `limit` outside 1–50 → `bad_request`; results newest first, at most `limit`.
pub async fn search_parameter_rules_and_order(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    assert_code(m.search(alice, "", None, None).await, "bad_request", "empty query");
    assert_code(m.search(alice, &"a".repeat(257), None, None).await, "too_large", "257 bytes");
    m.search(alice, &"a".repeat(256), None, None).await.must("256 bytes");
    m.search(alice, &"é".repeat(128), None, None).await.must("256 bytes in 2-byte characters");
    assert_code(m.search(alice, &"é".repeat(129), None, None).await, "too_large", "258 bytes");
    assert_code(m.search(alice, "x", None, Some(0)).await, "bad_request", "limit 0");
    assert_code(m.search(alice, "x", None, Some(51)).await, "bad_request", "limit 51");

    let mut sent: Vec<Message> = Vec::new();
    for i in 0..6 {
        if let Some(previous) = sent.last() {
            after_millisecond(previous.created_at).await;
        }
        let sender = if i % 2 == 0 { alice } else { bob };
        sent.push(send(&m, sender, c.id, &format!("ticket number {i}")).await);
    }
    let newest_first: Vec<MessageId> = sent.iter().rev().map(|m| m.id).collect();
    assert_eq!(found(&m, alice, "ticket", None).await, newest_first, "newest first");
    let limited = m.search(alice, "ticket", None, Some(4)).await.must("limit 4");
    let limited: Vec<MessageId> = limited.iter().map(|m| m.id).collect();
    assert_eq!(limited, newest_first[..4], "the newest `limit` hits");
    let fifty = m.search(alice, "number", Some(c.id), Some(50)).await.must("limit 50");
    assert_eq!(fifty.len(), 6);
}
