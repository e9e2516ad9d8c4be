//! What callers ask of the writer, each kind of change with the type of its answer.
//!
//! A [`Change`] carries the caller's request together with the channel its answer goes
//! back on, and that channel is typed by the kind of change: an open can only be answered
//! with an [`Opened`], an append with an [`Appended`]. An answer of the wrong kind cannot be
//! written, so no caller has to handle one. The writer keeps each answer beside its request
//! until the batch has committed (a reply means durable), then sends it.

use messaging_core::Error;
use messaging_core::Result;
use messaging_core::id::UserId;
use messaging_core::model::Message;
use messaging_core::store::{
    Appended, DeleteMessage, Deleted, EditMessage, MarkUpdate, Marked, MemberUpdate, MemberUpdated,
    MetadataUpdate, MetadataUpdated, NewConversation, NewMessage, Opened, Reacted, ReactionUpdate,
};
use messaging_core::time::Timestamp;
use tokio::sync::oneshot;

use crate::write::Blocking;

/// A request, the caller waiting for its answer, and the answer of the latest attempt.
pub(crate) struct Pending<R, T> {
    /// What the caller asked for.
    pub(crate) request: R,
    reply: oneshot::Sender<Result<T>>,
    /// Set by the batch that runs the request; sent once that batch committed.
    outcome: Option<Result<T>>,
}

impl<R, T> Pending<R, T> {
    /// `request`, to be answered on `reply`.
    pub(crate) fn new(request: R, reply: oneshot::Sender<Result<T>>) -> Self {
        Self { request, reply, outcome: None }
    }

    /// Records the answer of the running attempt.
    pub(crate) fn set(&mut self, outcome: Result<T>) {
        self.outcome = Some(outcome);
    }
}

/// A change to make, with its caller's typed reply channel.
pub(crate) enum Change {
    Open(Pending<NewConversation, Opened>),
    Append(Pending<NewMessage, Appended>),
    Edit(Pending<EditMessage, Message>),
    Delete(Pending<DeleteMessage, Deleted>),
    Mark(Pending<MarkUpdate, Marked>),
    /// Run together with the batch's other reactions (see `reactions.rs`).
    React(Pending<ReactionUpdate, Reacted>),
    UpdateMember(Pending<MemberUpdate, MemberUpdated>),
    SetMetadata(Pending<MetadataUpdate, MetadataUpdated>),
    /// Blocks, unless the blocker blocks that many others already.
    Block(Pending<(Blocking, usize), ()>),
    Unblock(Pending<Blocking, ()>),
    LastSeen(Pending<(UserId, Timestamp), ()>),
    /// Keeps the later of the user's stored revocation time and this one.
    Revoke(Pending<(UserId, Timestamp), ()>),
    /// Rewrites the probe row: a durable commit that nobody sees (see `StoreHealth`).
    Probe(Pending<(), ()>),
}

/// Runs `$body` with `$pending` bound to the [`Pending`] of any kind of change: for what
/// does not depend on the type of the answer.
macro_rules! with_pending {
    ($change:expr, $pending:ident => $body:expr) => {
        match $change {
            Change::Open($pending) => $body,
            Change::Append($pending) => $body,
            Change::Edit($pending) => $body,
            Change::Delete($pending) => $body,
            Change::Mark($pending) => $body,
            Change::React($pending) => $body,
            Change::UpdateMember($pending) => $body,
            Change::SetMetadata($pending) => $body,
            Change::Block($pending) => $body,
            Change::Unblock($pending) => $body,
            Change::LastSeen($pending) => $body,
            Change::Revoke($pending) => $body,
            Change::Probe($pending) => $body,
        }
    };
}

impl Change {
    /// Whether the caller stopped waiting (its request's deadline passed and its future
    /// was dropped): such a change must never be committed.
    pub(crate) fn abandoned(&self) -> bool {
        with_pending!(self, pending => pending.reply.is_closed())
    }

    /// Forgets the answer of an attempt that did not commit.
    pub(crate) fn forget_outcome(&mut self) {
        with_pending!(self, pending => pending.outcome = None);
    }

    /// Answers `error` (the change cannot be made now).
    pub(crate) fn fail(&mut self, error: Error) {
        with_pending!(self, pending => pending.outcome = Some(Err(error)));
    }

    /// Sends the caller its answer.
    pub(crate) fn answer(self) {
        with_pending!(self, pending => {
            let outcome = pending
                .outcome
                .unwrap_or_else(|| Err(Error::unavailable("the change was not run")));
            // The caller may have stopped waiting meanwhile; the change stands.
            let _ = pending.reply.send(outcome);
        });
    }
}
