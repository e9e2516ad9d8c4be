//! The application's own access rules.
//!
//! Membership and blocks are core rules that always hold; an [`AccessPolicy`] adds the
//! host's rules on top: who may open a conversation with whom, and who may send to whom
//! (told as the facts of the send, [`Outgoing`], also before the first message creates
//! the conversation).
//! Built-ins: [`AllowAll`] and [`FirstDegree`] (only users connected in the host's
//! [`SocialGraph`]). Policies compose with [`AccessPolicyExt::and`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::id::{ConversationId, UserId};
use crate::model::Conversation;

/// What a policy says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with a reason for the caller (answered as `forbidden`).
    Deny(String),
}

impl Decision {
    /// Turns a denial into [`Error::Forbidden`].
    pub fn into_result(self) -> Result<()> {
        match self {
            Self::Allow => Ok(()),
            Self::Deny(why) => Err(Error::Forbidden(why)),
        }
    }
}

/// What a policy is asked about a send (and an edit or typing, which follow the same rule):
/// who writes to whom, about what, and in which conversation if it exists yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outgoing<'a> {
    /// The writer, a member (or about to be).
    pub from: UserId,
    /// The other member.
    pub to: UserId,
    /// The conversation's context.
    pub context: Option<&'a str>,
    /// The conversation; `None` when this send is the first and creates it.
    pub conversation_id: Option<ConversationId>,
}

impl<'a> Outgoing<'a> {
    /// `from`'s send within `conversation`; `NotFound` when `from` is not a member.
    pub(crate) fn within(from: UserId, conversation: &'a Conversation) -> Result<Self> {
        let to = conversation
            .peer_of(from)
            .ok_or_else(|| Error::not_found("no such conversation or message"))?;
        Ok(Self {
            from,
            to,
            context: conversation.context.as_deref(),
            conversation_id: Some(conversation.id),
        })
    }
}

/// The host application's rules for opening conversations and sending.
///
/// ```
/// use async_trait::async_trait;
/// use messaging_core::{AccessPolicy, Decision, Outgoing, UserId};
///
/// /// Only conversations about a listing may be opened.
/// struct ListingsOnly;
///
/// #[async_trait]
/// impl AccessPolicy for ListingsOnly {
///     async fn may_open(
///         &self,
///         _from: UserId,
///         _to: UserId,
///         context: Option<&str>,
///     ) -> messaging_core::Result<Decision> {
///         Ok(match context {
///             Some(c) if c.starts_with("listing:") => Decision::Allow,
///             _ => Decision::Deny("conversations need a listing".into()),
///         })
///     }
///
///     async fn may_send(&self, send: &Outgoing<'_>) -> messaging_core::Result<Decision> {
///         // The same rule for every message, the first included.
///         self.may_open(send.from, send.to, send.context).await
///     }
/// }
/// ```
#[async_trait]
pub trait AccessPolicy: Send + Sync {
    /// Whether `from` may open (or reopen) a conversation with `to` about `context`.
    async fn may_open(&self, from: UserId, to: UserId, context: Option<&str>) -> Result<Decision>;

    /// Whether `send.from` may send to `send.to` (asked for every send, edit and typing
    /// notice; for a first send by peer, after [`may_open`](Self::may_open)).
    async fn may_send(&self, send: &Outgoing<'_>) -> Result<Decision>;
}

/// Everyone may open and send (blocks and membership still apply).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

#[async_trait]
impl AccessPolicy for AllowAll {
    async fn may_open(&self, _: UserId, _: UserId, _: Option<&str>) -> Result<Decision> {
        Ok(Decision::Allow)
    }

    async fn may_send(&self, _: &Outgoing<'_>) -> Result<Decision> {
        Ok(Decision::Allow)
    }
}

/// The host's knowledge of who is connected to whom (friends, matches, contacts), e.g. a
/// call to its connections service.
///
/// ```
/// use std::collections::HashSet;
/// use async_trait::async_trait;
/// use messaging_core::{SocialGraph, UserId};
///
/// struct Friends(HashSet<(UserId, UserId)>);
///
/// #[async_trait]
/// impl SocialGraph for Friends {
///     async fn connected(&self, a: UserId, b: UserId) -> messaging_core::Result<bool> {
///         Ok(self.0.contains(&(a, b)) || self.0.contains(&(b, a)))
///     }
/// }
/// ```
#[async_trait]
pub trait SocialGraph: Send + Sync {
    /// Whether `a` and `b` are directly connected (the relation is symmetric).
    async fn connected(&self, a: UserId, b: UserId) -> Result<bool>;
}

/// Only first-degree connections of the [`SocialGraph`] may open conversations and send.
#[derive(Clone)]
pub struct FirstDegree {
    graph: Arc<dyn SocialGraph>,
}

impl FirstDegree {
    /// A policy over the host's graph.
    pub fn new(graph: Arc<dyn SocialGraph>) -> Self {
        Self { graph }
    }

    async fn decide(&self, a: UserId, b: UserId) -> Result<Decision> {
        Ok(if self.graph.connected(a, b).await? {
            Decision::Allow
        } else {
            Decision::Deny("only connected users may message each other".into())
        })
    }
}

impl std::fmt::Debug for FirstDegree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FirstDegree")
    }
}

#[async_trait]
impl AccessPolicy for FirstDegree {
    async fn may_open(&self, from: UserId, to: UserId, _: Option<&str>) -> Result<Decision> {
        self.decide(from, to).await
    }

    async fn may_send(&self, send: &Outgoing<'_>) -> Result<Decision> {
        self.decide(send.from, send.to).await
    }
}

/// Both policies must allow; the first denial wins (the second is not asked).
#[derive(Clone)]
pub struct And<A, B>(pub A, pub B);

#[async_trait]
impl<A: AccessPolicy, B: AccessPolicy> AccessPolicy for And<A, B> {
    async fn may_open(&self, from: UserId, to: UserId, context: Option<&str>) -> Result<Decision> {
        match self.0.may_open(from, to, context).await? {
            Decision::Allow => self.1.may_open(from, to, context).await,
            deny => Ok(deny),
        }
    }

    async fn may_send(&self, send: &Outgoing<'_>) -> Result<Decision> {
        match self.0.may_send(send).await? {
            Decision::Allow => self.1.may_send(send).await,
            deny => Ok(deny),
        }
    }
}

#[async_trait]
impl AccessPolicy for Arc<dyn AccessPolicy> {
    async fn may_open(&self, from: UserId, to: UserId, context: Option<&str>) -> Result<Decision> {
        (**self).may_open(from, to, context).await
    }

    async fn may_send(&self, send: &Outgoing<'_>) -> Result<Decision> {
        (**self).may_send(send).await
    }
}

/// Composition of policies.
///
/// ```
/// use std::sync::Arc;
/// use messaging_core::{AccessPolicyExt, AllowAll, FirstDegree, SocialGraph};
///
/// fn policy(graph: Arc<dyn SocialGraph>) -> impl messaging_core::AccessPolicy {
///     AllowAll.and(FirstDegree::new(graph))
/// }
/// ```
pub trait AccessPolicyExt: AccessPolicy + Sized {
    /// A policy that allows only what both allow.
    fn and<B: AccessPolicy>(self, other: B) -> And<Self, B> {
        And(self, other)
    }
}

impl<P: AccessPolicy> AccessPolicyExt for P {}
