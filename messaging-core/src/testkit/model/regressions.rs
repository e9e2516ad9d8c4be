//! Sequences the model-based runs found where a store (or the messenger over it) broke a
//! rule, kept as explicit regression cases: `model_tests!` stamps one `#[tokio::test]` per
//! function here into every store crate, replaying it with [`replay`](super::replay).
//!
//! Each is the shrunk sequence, minimized by hand, with the rule it checks.

use super::ops::{Body, Ctx, Op, Pick, To, Who};

/// A reaction on a tombstone while one member blocks the other answers `conflict` (the
/// tombstone), as the messenger documents and as it did when the message was not in its
/// cache; it answered `forbidden` when this messenger had sent the message itself (the
/// cached path skipped the tombstone check until the store's transaction, after blocks).
#[must_use]
pub fn react_on_a_tombstone_while_blocked_is_conflict() -> Vec<Op> {
    vec![
        // User 2 writes to user 1 (member order follows the ids: "Member(0)" means the
        // user after the peer, see `Model::resolve`).
        Op::Send {
            actor: Who::Member(0),
            to: To::Peer { peer: 1, context: Ctx::None },
            body: Body::Words(vec![0]),
            key: None,
            reply_to: None,
        },
        Op::Block { actor: 1, user: 2 },
        Op::Moderate { message: Pick::Nth(0) },
        Op::React { actor: Who::Author, message: Pick::Nth(0), emoji: 0, add: true },
    ]
}
