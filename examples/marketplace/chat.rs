//! What the marketplace asks of the messaging library: the conversation about a listing,
//! the seller's inbox of it, and the notice that it sold.
//!
//! A conversation about listing 42 has the context `listing:42`, so one buyer and one
//! seller have one conversation per listing. The app opens it through the service handle
//! (as the application, with the listing in its metadata) once it has checked the
//! listing itself: it exists, it is open, the buyer is not its seller. Users must not open
//! such conversations by themselves through `/chat` (they would skip those checks, and
//! could slip a conversation between two strangers into a listing's inquiries), so the
//! messenger's [`ListingContexts`] policy refuses them; the service handle does not ask
//! the policy.
//!
//! "Sold" is a row in the app's database and a system message in each conversation; no
//! transaction spans the two files. Instead the notice is idempotent (one
//! `client_msg_id` per conversation) and both sides look again: a sale posts to every
//! conversation it finds after the row changed, and a contact that finds the listing sold
//! after opening its conversation posts the notice there itself, so a conversation opened
//! during a sale is told either way.

use async_trait::async_trait;
use messaging_core::{
    AccessPolicy, Conversation, ConversationsPage, ConversationsQuery, Decision, Message,
    Messenger, Outgoing, SendMessage, UserId,
};
use serde::Serialize;

use crate::error::AppError;
use crate::listings::Listing;

/// The system message a sale posts.
pub(crate) const SOLD_NOTICE: &str = "This item has been sold";
/// Its idempotency key (system messages have their own key space per conversation).
const SOLD_KEY: &str = "listing-sold";
/// Conversations read per page while announcing a sale.
const PAGE: usize = 100;
/// Walks over a listing's conversations before a sale's notice gives up (see
/// [`announce_sold`]); a retry of the sale finishes.
const MAX_WALKS: usize = 5;

/// The context of the conversations about listing `id`.
pub(crate) fn context_of(id: i64) -> String {
    format!("listing:{id}")
}

/// The messenger's policy: conversations about a listing are opened by the app only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListingContexts;

#[async_trait]
impl AccessPolicy for ListingContexts {
    async fn may_open(
        &self,
        _from: UserId,
        _to: UserId,
        context: Option<&str>,
    ) -> messaging_core::Result<Decision> {
        Ok(match context {
            Some(context) if context.starts_with("listing:") => Decision::Deny(
                "conversations about a listing start from the listing (POST /listings/{id}/contact)"
                    .into(),
            ),
            _ => Decision::Allow,
        })
    }

    /// Sends in existing conversations are the members' business; a send that would open
    /// one was asked [`may_open`](Self::may_open) first.
    async fn may_send(&self, _send: &Outgoing<'_>) -> messaging_core::Result<Decision> {
        Ok(Decision::Allow)
    }
}

/// What a contact did (the route's answer).
#[derive(Debug, Serialize)]
pub(crate) struct Contacted {
    pub(crate) conversation: Conversation,
    /// Whether this contact opened the conversation (a buyer's second contact finds it).
    pub(crate) opened: bool,
    pub(crate) message: Message,
    /// Whether the message is new (`false`: a retry with the same `client_msg_id`).
    pub(crate) created: bool,
}

/// `buyer` writes `body` to the seller of `listing`: the conversation about it is opened
/// (or found) and the message sent as the buyer. The caller has checked the listing; the
/// message is checked here first, so a refused message opens nothing.
pub(crate) async fn contact(
    messenger: &Messenger,
    listing: &Listing,
    buyer: UserId,
    body: &str,
    client_msg_id: Option<String>,
) -> Result<Contacted, AppError> {
    check_message(messenger, body, client_msg_id.as_deref())?;
    let metadata = serde_json::json!({
        "listing_id": listing.id,
        "title": listing.title,
        "price_cents": listing.price_cents,
    });
    let context = context_of(listing.id);
    let opened =
        messenger.service().open(buyer, listing.seller_id, Some(&context), Some(metadata)).await?;
    let mut message = SendMessage::to_conversation(opened.conversation.id, body);
    if let Some(key) = client_msg_id {
        message = message.client_msg_id(key);
    }
    let sent = messenger.send(buyer, message).await?;
    Ok(Contacted {
        conversation: opened.conversation,
        opened: opened.created,
        message: sent.message,
        created: sent.created,
    })
}

/// The library's send rules, checked before anything is opened: a body with text, within
/// the messenger's size limit, an idempotency key within its limit.
fn check_message(
    messenger: &Messenger,
    body: &str,
    client_msg_id: Option<&str>,
) -> Result<(), AppError> {
    let limits = messenger.limits();
    if body.trim().is_empty() {
        return Err(AppError::bad_request("message must not be empty"));
    }
    if body.contains('\0') {
        return Err(AppError::bad_request("message must not contain U+0000"));
    }
    if body.len() > limits.max_body_bytes {
        return Err(AppError::too_large(format!(
            "message is longer than {} bytes",
            limits.max_body_bytes
        )));
    }
    if let Some(key) = client_msg_id
        && (key.is_empty() || key.len() > limits.max_client_msg_id_bytes || key.contains('\0'))
    {
        return Err(AppError::bad_request(format!(
            "client_msg_id must be 1 to {} bytes",
            limits.max_client_msg_id_bytes
        )));
    }
    Ok(())
}

/// A page of `seller`'s conversations about listing `id`, as the seller sees them (last
/// message, unread count, read markers).
pub(crate) async fn inquiries(
    messenger: &Messenger,
    seller: UserId,
    id: i64,
    mut query: ConversationsQuery,
) -> Result<ConversationsPage, AppError> {
    query.context = Some(context_of(id));
    Ok(messenger.conversations(seller, query).await?)
}

/// Posts the sale's notice into `conversation` (nothing when it is there already);
/// whether it posted now.
pub(crate) async fn notify_sold(
    messenger: &Messenger,
    conversation: &Conversation,
) -> Result<bool, AppError> {
    let notice = SendMessage::to_conversation(conversation.id, SOLD_NOTICE).client_msg_id(SOLD_KEY);
    Ok(messenger.service().post(notice).await?.created)
}

/// Posts the sale's notice into every conversation about listing `listing` (the seller's
/// with each buyer); how many were told now.
///
/// The library pages a context's conversations by last activity, so a conversation that
/// gets a message during the walk moves ahead of it and is not seen by that walk. The
/// walk is therefore repeated until one finds nobody left to tell (the notice being
/// idempotent, a repeat costs reads only): usually two walks.
pub(crate) async fn announce_sold(
    messenger: &Messenger,
    listing: &Listing,
) -> Result<u64, AppError> {
    let service = messenger.service();
    let context = context_of(listing.id);
    let mut told = 0;
    for _ in 0..MAX_WALKS {
        let mut told_now = 0;
        let mut before = None;
        loop {
            let page =
                service.conversations_by_context(&context, Some(PAGE), before.as_deref()).await?;
            // Only the app opens these (see `ListingContexts`): each is the seller's.
            for conversation in
                page.conversations.iter().filter(|c| c.has_member(listing.seller_id))
            {
                told_now += u64::from(notify_sold(messenger, conversation).await?);
            }
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        told += told_now;
        if told_now == 0 {
            return Ok(told);
        }
    }
    Err(AppError::unavailable("the listing is busy; mark it sold again to finish telling buyers"))
}
