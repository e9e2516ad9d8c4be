//! The operations a case is made of, and the proptest strategy that draws them.
//!
//! An [`Op`] names its targets abstractly ("the 3rd conversation", "the author of the 5th
//! message") rather than by id, so that a sequence stays meaningful while proptest shrinks
//! it: removing a step shifts what an index points at, never makes the sequence invalid.
//! The reference model resolves these names against its own state before a step runs
//! (`Model::resolve` in the reference model); an index past the end wraps
//! around, and [`Pick::Unknown`] names an id the store has never seen (`not_found`).
//!
//! Values come from small sets on purpose: four users, four contexts (one of them the
//! empty string, which means none), a seven-word vocabulary (so searches hit), three
//! idempotency keys per sender (so retries happen), four emoji plus one invalid one.

use proptest::collection::vec;
use proptest::prelude::*;

/// How many users a case has.
pub const USERS: usize = 4;

/// The words message bodies are made of (mixed case: search is case-insensitive).
pub const VOCABULARY: [&str; 7] =
    ["apple", "Apple", "BANANA", "banana", "cherry", "date", "eggplant"];

/// The queries searched after every step, for every user.
pub const QUERIES: [&str; 4] = ["apple", "banana", "cherry date", "Eggplant"];

/// The emoji reactions use; the last one (with a space) is invalid.
pub const EMOJI: [&str; 5] = ["👍", "❤", "❤️", "🎉", "no good"];

/// One step of a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `Messenger::open` by user `actor` with user `peer`.
    Open {
        /// The caller (a user index).
        actor: u8,
        /// The peer (a user index; may equal `actor`: `bad_request`).
        peer: u8,
        /// The context.
        context: Ctx,
    },
    /// `ServiceHandle::open` of two users.
    ServiceOpen {
        /// One user (index).
        a: u8,
        /// The other (index; may be the same: `bad_request`).
        b: u8,
        /// The context.
        context: Ctx,
    },
    /// `Messenger::send`.
    Send {
        /// Who sends.
        actor: Who,
        /// Where to.
        to: To,
        /// The body.
        body: Body,
        /// `client_msg_id` `k0` or `k1`, if any.
        key: Option<u8>,
        /// `reply_to_seq`, if any (0: `bad_request`).
        reply_to: Option<u8>,
    },
    /// A system message: `ServiceHandle::post`.
    Post {
        /// The conversation.
        conversation: Pick,
        /// The body.
        body: Body,
        /// `client_msg_id`, if any (the host's own key space per conversation).
        key: Option<u8>,
    },
    /// `Messenger::edit`.
    Edit {
        /// Who edits.
        actor: Who,
        /// Which message.
        message: Pick,
        /// The new body.
        body: Body,
    },
    /// `Messenger::delete`.
    Delete {
        /// Who deletes.
        actor: Who,
        /// Which message.
        message: Pick,
    },
    /// Moderation: `ServiceHandle::delete_message`.
    Moderate {
        /// Which message.
        message: Pick,
    },
    /// `Messenger::mark_read`.
    Read {
        /// Who reads.
        actor: Who,
        /// Which conversation.
        conversation: Pick,
        /// Up to which seq.
        up_to: UpTo,
    },
    /// `Messenger::mark_delivered`.
    Delivered {
        /// Whose device.
        actor: Who,
        /// Which conversation.
        conversation: Pick,
        /// Up to which seq.
        up_to: UpTo,
    },
    /// `Messenger::block`.
    Block {
        /// Who blocks (index).
        actor: u8,
        /// Whom (index; the same: `bad_request`).
        user: u8,
    },
    /// `Messenger::unblock`.
    Unblock {
        /// Who unblocks (index).
        actor: u8,
        /// Whom (index).
        user: u8,
    },
    /// `Messenger::react`.
    React {
        /// Who reacts.
        actor: Who,
        /// Which message.
        message: Pick,
        /// Which of [`EMOJI`].
        emoji: u8,
        /// Added (`true`) or removed.
        add: bool,
    },
    /// `Messenger::mute`.
    Mute {
        /// Who mutes.
        actor: Who,
        /// Which conversation.
        conversation: Pick,
        /// Until when.
        until: MuteUntil,
    },
    /// `Messenger::archive`.
    Archive {
        /// Who archives.
        actor: Who,
        /// Which conversation.
        conversation: Pick,
        /// Archive (`true`) or unarchive.
        archived: bool,
    },
}

/// A conversation context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// None.
    None,
    /// `""`: the same as none.
    Empty,
    /// `"a"`.
    A,
    /// `"b"`.
    B,
}

impl Ctx {
    /// The context as passed to the messenger.
    #[must_use]
    pub fn as_param(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Empty => Some(""),
            Self::A => Some("a"),
            Self::B => Some("b"),
        }
    }
}

/// An existing object by index (wrapping), or one the store has never seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The n-th (modulo how many exist) in creation order; unknown when none exists.
    Nth(u8),
    /// An id nobody created.
    Unknown,
}

/// Who acts in an op on a conversation or a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Member 0 or 1 (by index modulo 2) of the conversation (of the message).
    Member(u8),
    /// The message's sender (member 0 for a system message; member 0 for conversation ops).
    Author,
    /// Any user, member or not.
    User(u8),
}

/// Where a send goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    /// An existing conversation (the actor is resolved against it).
    Conversation(Pick),
    /// A peer and context (opens as `open` would); the actor is `Who::User` or member 0.
    Peer {
        /// The peer (index).
        peer: u8,
        /// The context.
        context: Ctx,
    },
}

/// A message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Words of [`VOCABULARY`] joined by spaces.
    Words(Vec<u8>),
    /// Whitespace only (`bad_request`).
    Blank,
    /// One byte over `max_body_bytes` (`too_large`).
    TooLong,
}

/// A read or delivered marker target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpTo {
    /// The conversation's `last_seq` now.
    Latest,
    /// This seq (clamped by the rules when above `last_seq`).
    Seq(u8),
}

/// A mute's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuteUntil {
    /// A day after the case started.
    Day,
    /// A week after the case started.
    Week,
    /// Unmute.
    Unmute,
    /// An hour before the case started (`bad_request`).
    Past,
}

fn user() -> impl Strategy<Value = u8> {
    0..USERS as u8
}

fn ctx() -> impl Strategy<Value = Ctx> {
    prop_oneof![4 => Just(Ctx::None), 1 => Just(Ctx::Empty), 2 => Just(Ctx::A), 1 => Just(Ctx::B)]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![12 => any::<u8>().prop_map(Pick::Nth), 1 => Just(Pick::Unknown)]
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![8 => (0..2_u8).prop_map(Who::Member), 4 => Just(Who::Author), 1 => user().prop_map(Who::User)]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        20 => vec(0..VOCABULARY.len() as u8, 1..4).prop_map(Body::Words),
        1 => Just(Body::Blank),
        1 => Just(Body::TooLong),
    ]
}

fn key() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![1 => Just(None), 1 => (0..2_u8).prop_map(Some)]
}

fn up_to() -> impl Strategy<Value = UpTo> {
    prop_oneof![3 => Just(UpTo::Latest), 2 => (0..8_u8).prop_map(UpTo::Seq)]
}

fn to() -> impl Strategy<Value = To> {
    prop_oneof![
        3 => pick().prop_map(To::Conversation),
        2 => (user(), ctx()).prop_map(|(peer, context)| To::Peer { peer, context }),
    ]
}

/// One op, weighted towards sends (most of what users do).
pub fn op() -> impl Strategy<Value = Op> {
    let reply = prop_oneof![6 => Just(None), 1 => (0..6_u8).prop_map(Some)];
    prop_oneof![
        3 => (user(), user(), ctx()).prop_map(|(actor, peer, context)| Op::Open { actor, peer, context }),
        1 => (user(), user(), ctx()).prop_map(|(a, b, context)| Op::ServiceOpen { a, b, context }),
        10 => (who(), to(), body(), key(), reply)
            .prop_map(|(actor, to, body, key, reply_to)| Op::Send { actor, to, body, key, reply_to }),
        2 => (pick(), body(), key()).prop_map(|(conversation, body, key)| Op::Post { conversation, body, key }),
        3 => (who(), pick(), body()).prop_map(|(actor, message, body)| Op::Edit { actor, message, body }),
        2 => (who(), pick()).prop_map(|(actor, message)| Op::Delete { actor, message }),
        1 => pick().prop_map(|message| Op::Moderate { message }),
        3 => (who(), pick(), up_to())
            .prop_map(|(actor, conversation, up_to)| Op::Read { actor, conversation, up_to }),
        2 => (who(), pick(), up_to())
            .prop_map(|(actor, conversation, up_to)| Op::Delivered { actor, conversation, up_to }),
        2 => (user(), user()).prop_map(|(actor, user)| Op::Block { actor, user }),
        2 => (user(), user()).prop_map(|(actor, user)| Op::Unblock { actor, user }),
        4 => (who(), pick(), prop_oneof![12 => 0..4_u8, 1 => Just(4_u8)], any::<bool>())
            .prop_map(|(actor, message, emoji, add)| Op::React { actor, message, emoji, add }),
        2 => (who(), pick(), prop_oneof![
                Just(MuteUntil::Day), Just(MuteUntil::Week), Just(MuteUntil::Unmute), Just(MuteUntil::Past)
            ])
            .prop_map(|(actor, conversation, until)| Op::Mute { actor, conversation, until }),
        2 => (who(), pick(), any::<bool>())
            .prop_map(|(actor, conversation, archived)| Op::Archive { actor, conversation, archived }),
    ]
}

/// A case: up to `max_len` ops (at least one).
pub fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    vec(op(), 1..=max_len.max(1))
}
