//! The reference model: docs/protocol.md's rules over plain vectors, written for the test.
//!
//! It shares no code with [`Messenger`](crate::Messenger) or the memory store on purpose:
//! a rule implemented wrongly in one place must not be implemented wrongly here by
//! construction. Where the protocol leaves an order of checks open, the model follows the
//! order the messenger documents on its methods (validation of the value, then lookups,
//! then state), and says so at that rule.
//!
//! What only the store can decide (ids, timestamps) the model does not predict: the
//! harness binds them from the reply of the step that created them (`bind_*`), and from
//! then on every read must show exactly those values.

use std::collections::{BTreeSet, HashMap};

use crate::id::{ConversationId, MessageId, UserId};
use crate::model::ReceiptKind;
use crate::time::Timestamp;

use super::ops::{Body, EMOJI, MuteUntil, Op, Pick, To, USERS, UpTo, VOCABULARY, Who};

/// A message by the model's naming: (conversation index, seq).
pub(crate) type MsgName = (usize, u64);

/// The protocol's limits the model needs (the defaults of [`Limits`](crate::Limits)).
pub(crate) const MAX_BODY_BYTES: usize = 8192;
const MAX_REACTIONS_PER_USER: usize = 20;

/// An op resolved against the model: concrete users, conversations and messages (`None`:
/// an id nobody created), concrete strings.
#[derive(Clone, Debug)]
pub(crate) enum Call {
    Open { actor: usize, peer: usize, context: Option<&'static str>, service: bool },
    Send { actor: usize, to: Dest, body: String, key: Option<String>, reply_to: Option<u64> },
    Post { conv: Option<usize>, body: String, key: Option<String> },
    Edit { actor: usize, msg: Option<MsgName>, body: String },
    Delete { actor: usize, msg: Option<MsgName> },
    Moderate { msg: Option<MsgName> },
    Mark { actor: usize, conv: Option<usize>, kind: ReceiptKind, up_to: u64 },
    Block { actor: usize, user: usize, on: bool },
    React { actor: usize, msg: Option<MsgName>, emoji: &'static str, add: bool },
    Mute { actor: usize, conv: Option<usize>, until: Option<Timestamp> },
    Archive { actor: usize, conv: Option<usize>, archived: bool },
}

/// Where a resolved send goes.
#[derive(Clone, Debug)]
pub(crate) enum Dest {
    Conv(Option<usize>),
    Peer { peer: usize, context: Option<&'static str> },
}

/// What the model says a step answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    Err(&'static str),
    Opened { conv: usize, created: bool },
    Sent { msg: MsgName, created: bool },
    Message(MsgName),
    Receipt { conv: usize, user: usize, kind: ReceiptKind, seq: u64, moved: bool },
    Unit,
    Summary { conv: usize, user: usize },
}

/// One member's state in a conversation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Member {
    pub(crate) read: u64,
    pub(crate) delivered: u64,
    pub(crate) muted_until: Option<Timestamp>,
    pub(crate) archived: bool,
}

/// A message.
#[derive(Clone, Debug)]
pub(crate) struct Msg {
    pub(crate) id: Option<MessageId>,
    pub(crate) sender: Option<usize>,
    pub(crate) body: String,
    pub(crate) reply_to: Option<u64>,
    pub(crate) key: Option<String>,
    /// Emoji in order of first reaction, users in order of reaction.
    pub(crate) reactions: Vec<(String, Vec<usize>)>,
    pub(crate) deleted: bool,
    pub(crate) created_at: Option<Timestamp>,
    pub(crate) edited_at: Option<Timestamp>,
}

/// A conversation.
#[derive(Clone, Debug)]
pub(crate) struct Conv {
    pub(crate) id: Option<ConversationId>,
    /// Ascending by user id, as the protocol lists members.
    pub(crate) members: [usize; 2],
    pub(crate) context: Option<&'static str>,
    pub(crate) created_at: Option<Timestamp>,
    /// Index `seq - 1`.
    pub(crate) messages: Vec<Msg>,
    /// Parallel to `members`.
    pub(crate) state: [Member; 2],
}

impl Conv {
    pub(crate) fn slot(&self, user: usize) -> Option<usize> {
        self.members.iter().position(|m| *m == user)
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.messages.len() as u64
    }

    /// Last activity: the newest message's time, else creation (edits, deletes,
    /// reactions and receipts are not activity).
    pub(crate) fn activity(&self) -> Option<Timestamp> {
        match self.messages.last() {
            Some(m) => m.created_at,
            None => self.created_at,
        }
    }

    /// Messages not sent by `user`, after their read marker, not deleted.
    pub(crate) fn unread(&self, slot: usize) -> u64 {
        let user = self.members[slot];
        let read = self.state[slot].read;
        self.messages
            .iter()
            .skip(read as usize)
            .filter(|m| m.sender != Some(user) && !m.deleted)
            .count() as u64
    }
}

/// A durable event, naming what it carries.
#[derive(Clone, Debug)]
pub(crate) enum Ev {
    ConversationCreated(usize),
    MessageCreated(MsgName),
    MessageEdited(MsgName),
    MessageDeleted(MsgName),
    Receipt { conv: usize, user: usize, kind: ReceiptKind, seq: u64 },
    Reaction { msg: MsgName, user: usize, emoji: &'static str, added: bool },
    MemberUpdated { conv: usize, user: usize },
}

/// An event of the log and the users it is for.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) audience: Vec<usize>,
    pub(crate) event: Ev,
}

/// The whole state of a case.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) users: Vec<UserId>,
    pub(crate) convs: Vec<Conv>,
    /// Every message in creation order.
    pub(crate) order: Vec<MsgName>,
    /// (blocker, blocked).
    blocks: BTreeSet<(usize, usize)>,
    pub(crate) log: Vec<Entry>,
    /// When a marker moved to a value: (conversation, user, kind, seq).
    pub(crate) receipt_at: HashMap<(usize, usize, ReceiptKind, u64), Timestamp>,
    /// [`MuteUntil::Day`], [`MuteUntil::Week`], [`MuteUntil::Past`].
    mute_times: [Timestamp; 3],
}

impl Model {
    /// A model of `users` (at least [`USERS`]), for a case that started at `start`.
    pub(crate) fn new(users: Vec<UserId>, start: Timestamp) -> Self {
        const HOUR: i64 = 3_600_000;
        let at = |hours: i64| Timestamp::from_millis(start.as_millis() + hours * HOUR);
        Self {
            users,
            convs: Vec::new(),
            order: Vec::new(),
            blocks: BTreeSet::new(),
            log: Vec::new(),
            receipt_at: HashMap::new(),
            mute_times: [at(24), at(24 * 7), at(-1)],
        }
    }

    pub(crate) fn msg(&self, (conv, seq): MsgName) -> &Msg {
        &self.convs[conv].messages[seq as usize - 1]
    }

    fn msg_mut(&mut self, (conv, seq): MsgName) -> &mut Msg {
        &mut self.convs[conv].messages[seq as usize - 1]
    }

    fn blocked_between(&self, a: usize, b: usize) -> bool {
        self.blocks.contains(&(a, b)) || self.blocks.contains(&(b, a))
    }

    /// Why `actor` may not change message `name` (edit or react), in the protocol's order:
    /// a tombstone is `conflict` before a block between the members is `forbidden`.
    fn refuse_change(&self, name: MsgName, actor: usize) -> Option<Expect> {
        if self.msg(name).deleted {
            return Some(Expect::Err("conflict"));
        }
        let c = &self.convs[name.0];
        let peer = c.members[1 - c.slot(actor).unwrap_or(0)];
        self.blocked_between(actor, peer).then_some(Expect::Err("forbidden"))
    }

    fn find(&self, a: usize, b: usize, context: Option<&str>) -> Option<usize> {
        self.convs
            .iter()
            .position(|c| c.context == context && c.members.contains(&a) && c.members.contains(&b))
    }

    fn pick_conv(&self, pick: Pick) -> Option<usize> {
        match pick {
            Pick::Nth(n) if !self.convs.is_empty() => Some(n as usize % self.convs.len()),
            _ => None,
        }
    }

    fn pick_msg(&self, pick: Pick) -> Option<MsgName> {
        match pick {
            Pick::Nth(n) if !self.order.is_empty() => {
                Some(self.order[n as usize % self.order.len()])
            }
            _ => None,
        }
    }

    /// The user `who` names in conversation `conv` (user 0 without one).
    fn who_in(&self, who: Who, conv: Option<usize>, author: Option<usize>) -> usize {
        match (who, conv) {
            (Who::User(u), _) => u as usize % USERS,
            (Who::Author, Some(c)) => author.unwrap_or(self.convs[c].members[0]),
            (Who::Member(i), Some(c)) => self.convs[c].members[i as usize % 2],
            (_, None) => 0,
        }
    }

    /// Resolves `op`'s abstract names against the current state.
    pub(crate) fn resolve(&self, op: &Op) -> Call {
        let u = |i: u8| i as usize % USERS;
        match op {
            Op::Open { actor, peer, context } => Call::Open {
                actor: u(*actor),
                peer: u(*peer),
                context: context.as_param(),
                service: false,
            },
            Op::ServiceOpen { a, b, context } => {
                Call::Open { actor: u(*a), peer: u(*b), context: context.as_param(), service: true }
            }
            Op::Send { actor, to, body, key, reply_to } => {
                let (actor, to) = match to {
                    To::Conversation(pick) => {
                        let conv = self.pick_conv(*pick);
                        (self.who_in(*actor, conv, None), Dest::Conv(conv))
                    }
                    To::Peer { peer, context } => {
                        let peer = u(*peer);
                        // Member(i)/Author: a user other than the peer; User: anyone.
                        let actor = match actor {
                            Who::User(x) => u(*x),
                            Who::Member(i) => (peer + 1 + *i as usize % 2) % USERS,
                            Who::Author => (peer + 1) % USERS,
                        };
                        (actor, Dest::Peer { peer, context: context.as_param() })
                    }
                };
                Call::Send {
                    actor,
                    to,
                    body: body_text(body),
                    key: key.map(|k| format!("k{k}")),
                    reply_to: reply_to.map(u64::from),
                }
            }
            Op::Post { conversation, body, key } => Call::Post {
                conv: self.pick_conv(*conversation),
                body: body_text(body),
                key: key.map(|k| format!("k{k}")),
            },
            Op::Edit { actor, message, body } => {
                let msg = self.pick_msg(*message);
                Call::Edit { actor: self.msg_actor(*actor, msg), msg, body: body_text(body) }
            }
            Op::Delete { actor, message } => {
                let msg = self.pick_msg(*message);
                Call::Delete { actor: self.msg_actor(*actor, msg), msg }
            }
            Op::Moderate { message } => Call::Moderate { msg: self.pick_msg(*message) },
            Op::Read { actor, conversation, up_to }
            | Op::Delivered { actor, conversation, up_to } => {
                let conv = self.pick_conv(*conversation);
                let kind = if matches!(op, Op::Read { .. }) {
                    ReceiptKind::Read
                } else {
                    ReceiptKind::Delivered
                };
                let up_to = match up_to {
                    UpTo::Latest => conv.map_or(1, |c| self.convs[c].last_seq()),
                    UpTo::Seq(s) => u64::from(*s),
                };
                Call::Mark { actor: self.who_in(*actor, conv, None), conv, kind, up_to }
            }
            Op::Block { actor, user } => Call::Block { actor: u(*actor), user: u(*user), on: true },
            Op::Unblock { actor, user } => {
                Call::Block { actor: u(*actor), user: u(*user), on: false }
            }
            Op::React { actor, message, emoji, add } => {
                let msg = self.pick_msg(*message);
                Call::React {
                    actor: self.msg_actor(*actor, msg),
                    msg,
                    emoji: EMOJI[*emoji as usize % EMOJI.len()],
                    add: *add,
                }
            }
            Op::Mute { actor, conversation, until } => {
                let conv = self.pick_conv(*conversation);
                let until = match until {
                    MuteUntil::Day => Some(self.mute_times[0]),
                    MuteUntil::Week => Some(self.mute_times[1]),
                    MuteUntil::Unmute => None,
                    MuteUntil::Past => Some(self.mute_times[2]),
                };
                Call::Mute { actor: self.who_in(*actor, conv, None), conv, until }
            }
            Op::Archive { actor, conversation, archived } => {
                let conv = self.pick_conv(*conversation);
                Call::Archive { actor: self.who_in(*actor, conv, None), conv, archived: *archived }
            }
        }
    }

    fn msg_actor(&self, who: Who, msg: Option<MsgName>) -> usize {
        let author = msg.and_then(|m| self.msg(m).sender);
        self.who_in(who, msg.map(|(c, _)| c), author)
    }

    fn emit(&mut self, audience: Vec<usize>, event: Ev) {
        self.log.push(Entry { audience, event });
    }

    fn create(&mut self, a: usize, b: usize, context: Option<&'static str>) -> usize {
        let mut members = [a, b];
        members.sort_by_key(|m| self.users[*m]);
        self.convs.push(Conv {
            id: None,
            members,
            context,
            created_at: None,
            messages: Vec::new(),
            state: [Member::default(), Member::default()],
        });
        let conv = self.convs.len() - 1;
        self.emit(members.to_vec(), Ev::ConversationCreated(conv));
        conv
    }

    fn append(
        &mut self,
        conv: usize,
        sender: Option<usize>,
        body: String,
        key: Option<String>,
        reply_to: Option<u64>,
    ) -> MsgName {
        let c = &mut self.convs[conv];
        c.messages.push(Msg {
            id: None,
            sender,
            body,
            reply_to,
            key,
            reactions: Vec::new(),
            deleted: false,
            created_at: None,
            edited_at: None,
        });
        let name = (conv, c.last_seq());
        let audience = c.members.to_vec();
        self.order.push(name);
        self.emit(audience, Ev::MessageCreated(name));
        name
    }

    fn find_key(&self, conv: usize, sender: Option<usize>, key: Option<&str>) -> Option<MsgName> {
        let key = key?;
        let c = &self.convs[conv];
        let at =
            c.messages.iter().position(|m| m.sender == sender && m.key.as_deref() == Some(key))?;
        Some((conv, at as u64 + 1))
    }

    fn remove(&mut self, name: MsgName) {
        if self.msg(name).deleted {
            return;
        }
        let m = self.msg_mut(name);
        m.deleted = true;
        m.body.clear();
        m.reactions.clear();
        let audience = self.convs[name.0].members.to_vec();
        self.emit(audience, Ev::MessageDeleted(name));
    }

    /// Applies `call` by the protocol's rules; what it should answer.
    pub(crate) fn apply(&mut self, call: &Call) -> Expect {
        match call {
            Call::Open { actor, peer, context, service } => {
                self.open(*actor, *peer, *context, *service)
            }
            Call::Send { actor, to, body, key, reply_to } => {
                self.send(*actor, to, body, key.as_deref(), *reply_to)
            }
            Call::Post { conv, body, key } => {
                if let Some(code) = body_error(body) {
                    return Expect::Err(code);
                }
                let Some(conv) = *conv else { return Expect::Err("not_found") };
                if let Some(original) = self.find_key(conv, None, key.as_deref()) {
                    return Expect::Sent { msg: original, created: false };
                }
                let msg = self.append(conv, None, body.clone(), key.clone(), None);
                Expect::Sent { msg, created: true }
            }
            Call::Edit { actor, msg, body } => self.edit(*actor, *msg, body),
            Call::Delete { actor, msg } => {
                // Only the sender; anyone else (member or not) and system messages: not_found.
                let Some(name) = msg.filter(|m| self.msg(*m).sender == Some(*actor)) else {
                    return Expect::Err("not_found");
                };
                self.remove(name);
                Expect::Message(name)
            }
            Call::Moderate { msg } => {
                let Some(name) = *msg else { return Expect::Err("not_found") };
                self.remove(name);
                Expect::Message(name)
            }
            Call::Mark { actor, conv, kind, up_to } => self.mark(*actor, *conv, *kind, *up_to),
            Call::Block { actor, user, on } => {
                if actor == user {
                    return Expect::Err("bad_request");
                }
                if *on {
                    self.blocks.insert((*actor, *user));
                } else {
                    self.blocks.remove(&(*actor, *user));
                }
                Expect::Unit
            }
            Call::React { actor, msg, emoji, add } => self.react(*actor, *msg, emoji, *add),
            Call::Mute { actor, conv, until } => {
                // The time is checked before membership (a parameter before any lookup).
                if until.is_some_and(|t| t == self.mute_times[2]) {
                    return Expect::Err("bad_request");
                }
                self.settle(*actor, *conv, |m| {
                    let changed = m.muted_until != *until;
                    m.muted_until = *until;
                    changed
                })
            }
            Call::Archive { actor, conv, archived } => self.settle(*actor, *conv, |m| {
                let changed = m.archived != *archived;
                m.archived = *archived;
                changed
            }),
        }
    }

    fn open(
        &mut self,
        actor: usize,
        peer: usize,
        context: Option<&'static str>,
        _service: bool,
    ) -> Expect {
        // Missing and empty contexts are the same. The host's open skips the access policy
        // (allow-all here anyway) but not blocks.
        let context = context.filter(|c| !c.is_empty());
        if actor == peer {
            return Expect::Err("bad_request");
        }
        if self.blocked_between(actor, peer) {
            return Expect::Err("forbidden");
        }
        if let Some(conv) = self.find(actor, peer, context) {
            return Expect::Opened { conv, created: false };
        }
        let conv = self.create(actor, peer, context);
        Expect::Opened { conv, created: true }
    }

    fn send(
        &mut self,
        actor: usize,
        to: &Dest,
        body: &str,
        key: Option<&str>,
        reply_to: Option<u64>,
    ) -> Expect {
        // Validation first: the body, then reply_to_seq 0.
        if let Some(code) = body_error(body) {
            return Expect::Err(code);
        }
        if reply_to == Some(0) {
            return Expect::Err("bad_request");
        }
        // The target: a conversation the actor is in (not_found), or a distinct peer.
        let (peer, context, existing) = match to {
            Dest::Conv(conv) => {
                let Some(conv) = conv.filter(|c| self.convs[*c].slot(actor).is_some()) else {
                    return Expect::Err("not_found");
                };
                let c = &self.convs[conv];
                let peer = c.members[1 - c.slot(actor).unwrap_or(0)];
                (peer, c.context, Some(conv))
            }
            Dest::Peer { peer, context } => {
                let context = context.filter(|c| !c.is_empty());
                if *peer == actor {
                    return Expect::Err("bad_request");
                }
                (*peer, context, self.find(actor, *peer, context))
            }
        };
        // A retry is recognised after membership, before blocks.
        if self.blocked_between(actor, peer) {
            if let Some(original) = existing.and_then(|c| self.find_key(c, Some(actor), key)) {
                return Expect::Sent { msg: original, created: false };
            }
            return Expect::Err("forbidden");
        }
        // Sending to a peer opens the conversation as `open` would, then sends.
        let conv = match existing {
            Some(conv) => conv,
            None => self.create(actor, peer, context),
        };
        if let Some(original) = self.find_key(conv, Some(actor), key) {
            return Expect::Sent { msg: original, created: false };
        }
        if reply_to.is_some_and(|seq| seq > self.convs[conv].last_seq()) {
            return Expect::Err("not_found");
        }
        let msg = self.append(conv, Some(actor), body.to_owned(), key.map(str::to_owned), reply_to);
        Expect::Sent { msg, created: true }
    }

    fn edit(&mut self, actor: usize, msg: Option<MsgName>, body: &str) -> Expect {
        // The messenger's documented order: characters and size before any lookup, then
        // the sender (not_found), emptiness, a tombstone (conflict), blocks (forbidden).
        if body.len() > MAX_BODY_BYTES {
            return Expect::Err("too_large");
        }
        let Some(name) = msg.filter(|m| self.msg(*m).sender == Some(actor)) else {
            return Expect::Err("not_found");
        };
        if body.trim().is_empty() {
            return Expect::Err("bad_request");
        }
        if let Some(refusal) = self.refuse_change(name, actor) {
            return refusal;
        }
        self.msg_mut(name).body = body.to_owned();
        let audience = self.convs[name.0].members.to_vec();
        self.emit(audience, Ev::MessageEdited(name));
        Expect::Message(name)
    }

    fn mark(&mut self, actor: usize, conv: Option<usize>, kind: ReceiptKind, up_to: u64) -> Expect {
        let Some((conv, slot)) = conv.and_then(|c| Some((c, self.convs[c].slot(actor)?))) else {
            return Expect::Err("not_found");
        };
        let c = &mut self.convs[conv];
        let target = up_to.min(c.messages.len() as u64);
        let marker = match kind {
            ReceiptKind::Read => &mut c.state[slot].read,
            ReceiptKind::Delivered => &mut c.state[slot].delivered,
        };
        let moved = target > *marker;
        if moved {
            *marker = target;
            let audience = c.members.to_vec();
            self.emit(audience, Ev::Receipt { conv, user: actor, kind, seq: target });
        }
        let seq = match kind {
            ReceiptKind::Read => self.convs[conv].state[slot].read,
            ReceiptKind::Delivered => self.convs[conv].state[slot].delivered,
        };
        Expect::Receipt { conv, user: actor, kind, seq, moved }
    }

    fn react(
        &mut self,
        actor: usize,
        msg: Option<MsgName>,
        emoji: &'static str,
        add: bool,
    ) -> Expect {
        // The emoji first, then membership (not_found), a tombstone (conflict), blocks.
        if emoji.is_empty()
            || emoji.len() > 32
            || emoji.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Expect::Err("bad_request");
        }
        let Some(name) = msg.filter(|m| self.convs[m.0].slot(actor).is_some()) else {
            return Expect::Err("not_found");
        };
        if let Some(refusal) = self.refuse_change(name, actor) {
            return refusal;
        }
        let m = self.msg_mut(name);
        let has = m.reactions.iter().any(|(e, users)| *e == emoji && users.contains(&actor));
        if add == has {
            return Expect::Message(name);
        }
        if add {
            let mine = m.reactions.iter().filter(|(_, users)| users.contains(&actor)).count();
            if mine >= MAX_REACTIONS_PER_USER {
                return Expect::Err("conflict");
            }
            match m.reactions.iter_mut().find(|(e, _)| *e == emoji) {
                Some((_, users)) => users.push(actor),
                None => m.reactions.push((emoji.to_owned(), vec![actor])),
            }
        } else {
            for (e, users) in &mut m.reactions {
                if *e == emoji {
                    users.retain(|u| *u != actor);
                }
            }
            m.reactions.retain(|(_, users)| !users.is_empty());
        }
        let audience = self.convs[name.0].members.to_vec();
        self.emit(audience, Ev::Reaction { msg: name, user: actor, emoji, added: add });
        Expect::Message(name)
    }

    /// A member's own setting: `change` says whether it changed anything; a change emits
    /// `member.updated` to that member only.
    fn settle(
        &mut self,
        actor: usize,
        conv: Option<usize>,
        change: impl FnOnce(&mut Member) -> bool,
    ) -> Expect {
        let Some((conv, slot)) = conv.and_then(|c| Some((c, self.convs[c].slot(actor)?))) else {
            return Expect::Err("not_found");
        };
        if change(&mut self.convs[conv].state[slot]) {
            self.emit(vec![actor], Ev::MemberUpdated { conv, user: actor });
        }
        Expect::Summary { conv, user: actor }
    }

    /// Whether a mute is in force (every mute the cases set is in the future).
    pub(crate) fn muted(member: &Member) -> bool {
        member.muted_until.is_some()
    }

    /// The message ids of `conv` the store must know, for the driver.
    pub(crate) fn conv_id(&self, conv: Option<usize>) -> Option<ConversationId> {
        conv.and_then(|c| self.convs[c].id)
    }

    /// The stored id of a message, for the driver.
    pub(crate) fn msg_id(&self, msg: Option<MsgName>) -> Option<MessageId> {
        msg.and_then(|m| self.msg(m).id)
    }

    /// Binds a created message's id and time from the store's reply.
    pub(crate) fn bind_message(&mut self, name: MsgName, id: MessageId, created_at: Timestamp) {
        let m = self.msg_mut(name);
        m.id = Some(id);
        m.created_at = Some(created_at);
    }

    /// Binds a conversation's id and creation time.
    pub(crate) fn bind_conversation(
        &mut self,
        conv: usize,
        id: ConversationId,
        created_at: Timestamp,
    ) {
        self.convs[conv].id = Some(id);
        self.convs[conv].created_at = Some(created_at);
    }

    /// Binds the time of an edit.
    pub(crate) fn bind_edit(&mut self, name: MsgName, edited_at: Option<Timestamp>) {
        self.msg_mut(name).edited_at = edited_at;
    }

    /// The conversation whose stored id is `id`.
    pub(crate) fn conv_named(&self, id: ConversationId) -> Option<usize> {
        self.convs.iter().position(|c| c.id == Some(id))
    }

    /// The message whose stored id is `id`.
    pub(crate) fn msg_named(&self, id: MessageId) -> Option<MsgName> {
        self.order.iter().copied().find(|m| self.msg(*m).id == Some(id))
    }

    /// The index of a user id.
    pub(crate) fn user_named(&self, id: UserId) -> Option<usize> {
        self.users.iter().position(|u| *u == id)
    }

    /// Every message of `user`'s conversations that contains every word of `query`
    /// (words: runs of letters, compared case-insensitively), not deleted.
    pub(crate) fn search(&self, user: usize, query: &str) -> Vec<MsgName> {
        let words = |text: &str| -> Vec<String> {
            text.split_whitespace().map(str::to_lowercase).collect()
        };
        let wanted = words(query);
        self.order
            .iter()
            .copied()
            .filter(|(c, _)| self.convs[*c].slot(user).is_some())
            .filter(|name| {
                let m = self.msg(*name);
                let have = words(&m.body);
                !m.deleted && wanted.iter().all(|w| have.contains(w))
            })
            .collect()
    }
}

/// The text of a body.
pub(crate) fn body_text(body: &Body) -> String {
    match body {
        Body::Words(words) => {
            let words: Vec<&str> =
                words.iter().map(|w| VOCABULARY[*w as usize % VOCABULARY.len()]).collect();
            words.join(" ")
        }
        Body::Blank => " \t ".to_owned(),
        Body::TooLong => "x".repeat(MAX_BODY_BYTES + 1),
    }
}

/// A send's body check: blank → `bad_request`, over the limit → `too_large`.
fn body_error(body: &str) -> Option<&'static str> {
    if body.trim().is_empty() {
        Some("bad_request")
    } else if body.len() > MAX_BODY_BYTES {
        Some("too_large")
    } else {
        None
    }
}
