//! The application's own access rules.
//!
//! Membership and blocks are core rules that always hold; an [`AccessPolicy`] adds the
//! host's rules on top: who may open a conversation with whom, and who may send in one.
//! Built-ins: [`AllowAll`] and [`FirstDegree`] (only users connected in the host's
//! [`SocialGraph`]). Policies compose with [`AccessPolicyExt::and`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::id::UserId;
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

/// The host application's rules for opening conversations and sending.
///
/// ```
/// use async_trait::async_trait;
/// use messaging_core::{AccessPolicy, Conversation, Decision, UserId};
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
///     async fn may_send(
///         &self,
///         _from: UserId,
///         _conversation: &Conversation,
///     ) -> messaging_core::Result<Decision> {
///         Ok(Decision::Allow)
///     }
/// }
/// ```
#[async_trait]
pub trait AccessPolicy: Send + Sync {
    /// Whether `from` may open (or reopen) a conversation with `to` about `context`.
    async fn may_open(&self, from: UserId, to: UserId, context: Option<&str>) -> Result<Decision>;

    /// Whether `from`, a member, may send in `conversation`.
    async fn may_send(&self, from: UserId, conversation: &Conversation) -> Result<Decision>;
}

/// Everyone may open and send (blocks and membership still apply).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

#[async_trait]
impl AccessPolicy for AllowAll {
    async fn may_open(&self, _: UserId, _: UserId, _: Option<&str>) -> Result<Decision> {
        Ok(Decision::Allow)
    }

    async fn may_send(&self, _: UserId, _: &Conversation) -> Result<Decision> {
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

    async fn may_send(&self, from: UserId, conversation: &Conversation) -> Result<Decision> {
        match conversation.peer_of(from) {
            Some(peer) => self.decide(from, peer).await,
            None => Ok(Decision::Deny("not a member".into())),
        }
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

    async fn may_send(&self, from: UserId, conversation: &Conversation) -> Result<Decision> {
        match self.0.may_send(from, conversation).await? {
            Decision::Allow => self.1.may_send(from, conversation).await,
            deny => Ok(deny),
        }
    }
}

#[async_trait]
impl AccessPolicy for Arc<dyn AccessPolicy> {
    async fn may_open(&self, from: UserId, to: UserId, context: Option<&str>) -> Result<Decision> {
        (**self).may_open(from, to, context).await
    }

    async fn may_send(&self, from: UserId, conversation: &Conversation) -> Result<Decision> {
        (**self).may_send(from, conversation).await
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
