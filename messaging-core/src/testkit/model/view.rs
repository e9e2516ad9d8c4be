//! What a client sees, in the model's naming: the shapes both sides are reduced to before
//! they are compared.
//!
//! A store's objects carry ids and times the model cannot predict. [`Naming`] turns them
//! into the model's names (a conversation's index, a message's (conversation, seq), a
//! user's index) and fails on an id the model never bound; times stay as they are, since
//! the model holds the values bound from the step that created them. The model renders its
//! own state into the same shapes, so one `==` compares everything a rule determines.

use crate::error::Result as CoreResult;
use crate::id::UserId;
use crate::model::{
    Conversation, ConversationSummary, Event, LoggedEvent, Message, MessageKind, ReactionState,
    ReceiptKind,
};
use crate::time::Timestamp;

use super::reference::{Ev, Model, MsgName};

/// A message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MsgView {
    pub(crate) name: MsgName,
    pub(crate) sender: Option<usize>,
    pub(crate) system: bool,
    pub(crate) body: String,
    pub(crate) reply_to_seq: Option<u64>,
    pub(crate) reactions: Vec<(String, Vec<usize>)>,
    pub(crate) client_msg_id: Option<String>,
    pub(crate) created_at: Option<Timestamp>,
    pub(crate) edited_at: Option<Timestamp>,
    pub(crate) deleted: bool,
    /// Metadata and attachments: the cases set none, so both must stay empty.
    pub(crate) extras: bool,
}

/// A conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConvView {
    pub(crate) name: usize,
    pub(crate) members: [Option<usize>; 2],
    pub(crate) context: Option<String>,
    pub(crate) created_at: Option<Timestamp>,
    pub(crate) last_message_at: Option<Timestamp>,
    pub(crate) last_seq: u64,
    pub(crate) metadata: bool,
}

/// A conversation as one member lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SummaryView {
    pub(crate) conversation: ConvView,
    pub(crate) last_message: Option<MsgView>,
    pub(crate) unread_count: u64,
    pub(crate) read_seq: u64,
    pub(crate) peer_read_seq: u64,
    pub(crate) peer_delivered_seq: u64,
    pub(crate) muted_until: Option<Timestamp>,
    pub(crate) archived: bool,
    pub(crate) peer_read_at: Option<Timestamp>,
    pub(crate) peer_delivered_at: Option<Timestamp>,
}

/// A durable event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EventView {
    ConversationCreated(ConvView),
    MessageCreated(MsgView),
    MessageEdited(MsgView),
    MessageDeleted(MsgView),
    Receipt {
        conv: usize,
        user: Option<usize>,
        kind: ReceiptKind,
        seq: u64,
        at: Option<Timestamp>,
    },
    Reaction {
        message: MsgView,
        user: Option<usize>,
        emoji: String,
        added: bool,
    },
    MemberUpdated {
        conv: usize,
        user: Option<usize>,
        muted_until: Option<Timestamp>,
        archived: bool,
    },
    /// A kind the model never produces.
    Other(&'static str),
}

/// Maps a store's ids to the model's names.
pub(crate) struct Naming<'a> {
    pub(crate) model: &'a Model,
}

impl Naming<'_> {
    fn user(&self, id: UserId) -> Option<usize> {
        self.model.user_named(id)
    }

    fn conv(&self, id: crate::id::ConversationId) -> Result<usize, String> {
        self.model
            .conv_named(id)
            .ok_or_else(|| format!("a conversation id the model never bound: {id:?}"))
    }

    /// A message in the model's naming.
    pub(crate) fn message(&self, m: &Message) -> Result<MsgView, String> {
        let name = self.model.msg_named(m.id).ok_or_else(|| {
            format!("a message id the model never bound: {:?} (seq {})", m.id, m.seq)
        })?;
        let conv = self.conv(m.conversation_id)?;
        if (conv, m.seq) != name {
            return Err(format!(
                "message {name:?} is served as conversation {conv} seq {} (id {:?})",
                m.seq, m.id
            ));
        }
        Ok(MsgView {
            name,
            sender: m.sender_id.and_then(|u| self.user(u)),
            system: m.kind == MessageKind::System,
            body: m.body.clone(),
            reply_to_seq: m.reply_to_seq,
            reactions: m
                .reactions
                .iter()
                .map(|r| {
                    (
                        r.emoji.clone(),
                        r.user_ids.iter().map(|u| self.user(*u).unwrap_or(usize::MAX)).collect(),
                    )
                })
                .collect(),
            client_msg_id: m.client_msg_id.clone(),
            created_at: Some(m.created_at),
            edited_at: m.edited_at,
            deleted: m.deleted,
            extras: m.metadata.is_some() || !m.attachments.is_empty(),
        })
    }

    /// A conversation in the model's naming.
    pub(crate) fn conversation(&self, c: &Conversation) -> Result<ConvView, String> {
        Ok(ConvView {
            name: self.conv(c.id)?,
            members: c.members.map(|u| self.user(u)),
            context: c.context.clone(),
            created_at: Some(c.created_at),
            last_message_at: c.last_message_at,
            last_seq: c.last_seq,
            metadata: c.metadata.is_some(),
        })
    }

    /// A summary in the model's naming.
    pub(crate) fn summary(&self, s: &ConversationSummary) -> Result<SummaryView, String> {
        Ok(SummaryView {
            conversation: self.conversation(&s.conversation)?,
            last_message: s.last_message.as_ref().map(|m| self.message(m)).transpose()?,
            unread_count: s.unread_count,
            read_seq: s.read_seq,
            peer_read_seq: s.peer_read_seq,
            peer_delivered_seq: s.peer_delivered_seq,
            muted_until: s.muted_until,
            archived: s.archived,
            peer_read_at: s.peer_read_at,
            peer_delivered_at: s.peer_delivered_at,
        })
    }

    /// A logged event in the model's naming, with its position.
    pub(crate) fn event(&self, e: &LoggedEvent) -> Result<(u64, EventView), String> {
        let view = match &e.event {
            Event::ConversationCreated(c) => EventView::ConversationCreated(self.conversation(c)?),
            Event::MessageCreated(m) => EventView::MessageCreated(self.message(m)?),
            Event::MessageEdited(m) => EventView::MessageEdited(self.message(m)?),
            Event::MessageDeleted(m) => EventView::MessageDeleted(self.message(m)?),
            Event::Receipt(r) => EventView::Receipt {
                conv: self.conv(r.conversation_id)?,
                user: self.user(r.user_id),
                kind: r.kind,
                seq: r.seq,
                at: Some(r.at),
            },
            Event::Reaction(r) => EventView::Reaction {
                message: self.message(&r.message)?,
                user: self.user(r.user_id),
                emoji: r.emoji.clone(),
                added: r.state == ReactionState::Added,
            },
            Event::MemberUpdated(s) => EventView::MemberUpdated {
                conv: self.conv(s.conversation_id)?,
                user: self.user(s.user_id),
                muted_until: s.muted_until,
                archived: s.archived,
            },
            other => EventView::Other(other.name()),
        };
        Ok((e.position, view))
    }
}

/// The model's side: its state rendered into the same shapes.
pub(crate) struct Render<'a> {
    pub(crate) model: &'a Model,
}

impl Render<'_> {
    /// A message in its current state.
    pub(crate) fn message(&self, name: MsgName) -> MsgView {
        let m = self.model.msg(name);
        MsgView {
            name,
            sender: m.sender,
            system: m.sender.is_none(),
            body: m.body.clone(),
            reply_to_seq: m.reply_to,
            reactions: m.reactions.clone(),
            client_msg_id: m.key.clone(),
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted: m.deleted,
            extras: false,
        }
    }

    /// A conversation in its current state.
    pub(crate) fn conversation(&self, conv: usize) -> ConvView {
        let c = &self.model.convs[conv];
        ConvView {
            name: conv,
            members: c.members.map(Some),
            context: c.context.map(str::to_owned),
            created_at: c.created_at,
            last_message_at: c.messages.last().and_then(|m| m.created_at),
            last_seq: c.last_seq(),
            metadata: false,
        }
    }

    /// `conv` as member `user` lists it.
    pub(crate) fn summary(&self, conv: usize, user: usize) -> SummaryView {
        let c = &self.model.convs[conv];
        let slot = c.slot(user).unwrap_or(0);
        let (mine, theirs) = (&c.state[slot], &c.state[1 - slot]);
        let peer = c.members[1 - slot];
        let at = |kind, seq| {
            if seq == 0 {
                None
            } else {
                self.model.receipt_at.get(&(conv, peer, kind, seq)).copied()
            }
        };
        SummaryView {
            conversation: self.conversation(conv),
            last_message: (c.last_seq() > 0).then(|| self.message((conv, c.last_seq()))),
            unread_count: c.unread(slot),
            read_seq: mine.read,
            peer_read_seq: theirs.read,
            peer_delivered_seq: theirs.delivered,
            muted_until: mine.muted_until,
            archived: mine.archived,
            peer_read_at: at(ReceiptKind::Read, theirs.read),
            peer_delivered_at: at(ReceiptKind::Delivered, theirs.delivered),
        }
    }

    /// An event of the log, carrying its objects in their current state.
    pub(crate) fn event(&self, ev: &Ev) -> EventView {
        match ev {
            Ev::ConversationCreated(c) => EventView::ConversationCreated(self.conversation(*c)),
            Ev::MessageCreated(m) => EventView::MessageCreated(self.message(*m)),
            Ev::MessageEdited(m) => EventView::MessageEdited(self.message(*m)),
            Ev::MessageDeleted(m) => EventView::MessageDeleted(self.message(*m)),
            Ev::Receipt { conv, user, kind, seq } => EventView::Receipt {
                conv: *conv,
                user: Some(*user),
                kind: *kind,
                seq: *seq,
                at: self.model.receipt_at.get(&(*conv, *user, *kind, *seq)).copied(),
            },
            Ev::Reaction { msg, user, emoji, added } => EventView::Reaction {
                message: self.message(*msg),
                user: Some(*user),
                emoji: (*emoji).to_owned(),
                added: *added,
            },
            Ev::MemberUpdated { conv, user } => {
                let c = &self.model.convs[*conv];
                let member = &c.state[c.slot(*user).unwrap_or(0)];
                EventView::MemberUpdated {
                    conv: *conv,
                    user: Some(*user),
                    muted_until: member.muted_until,
                    archived: member.archived,
                }
            }
        }
    }
}

/// The protocol code of a result's error, or `"ok"`.
pub(crate) fn code<T>(result: &CoreResult<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}
