//! The host's side: a dating app's matching backend opens the conversation when two users
//! match, posts a system message, and the users take it from there (a reply with a photo,
//! a reaction), all on one SQLite file.
//!
//! Run with `cargo run --example match_service`. It checks what each user sees and exits
//! non-zero when anything differs from what the protocol promises.

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{
    Attachment, Event, MessageKind, Messenger, Push, ReactionState, SendMessage, Session, UserId,
};
use messaging_store_sqlite::SqliteStore;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("match_service.db")).await?;
    let messenger = Messenger::new(Arc::new(store)).await?;
    let (ana, ben) = (UserId::new(), UserId::new());
    let mut bens_phone = messenger.connect(ben).await?;

    // The matching backend, as the application itself: no access policy to satisfy, one
    // conversation per match (its id is the context), the match details as metadata.
    let service = messenger.service();
    let metadata = serde_json::json!({"matched_on": "hiking", "score": 0.92});
    let opened = service.open(ana, ben, Some("match:8812"), Some(metadata)).await?;
    let conversation = opened.conversation.id;
    report(&format!("service opened the match conversation (created: {})", opened.created));
    let posted = service
        .post(
            SendMessage::to_conversation(conversation, "You matched! Say hi 👋")
                .client_msg_id("match-8812-welcome"),
        )
        .await?;
    check(posted.message.kind == MessageKind::System && posted.message.sender_id.is_none())?;
    report("service posted a system message (no sender)");
    let both_unread = (messenger.unread(ana).await?.total, messenger.unread(ben).await?.total);
    check(both_unread == (1, 1))?;
    report("the system message is unread for both: 1 and 1");

    // Ana replies to it with a photo (metadata only: the file is in the app's own storage).
    let photo = Attachment {
        name: Some("summit.jpg".into()),
        width: Some(1600),
        height: Some(1200),
        ..Attachment::new("https://media.example.com/u/ana/summit.jpg", "image/jpeg")
    };
    let reply = messenger
        .send(
            ana,
            SendMessage::to_conversation(conversation, "Hi! Last weekend:")
                .attachment(photo)
                .reply_to(posted.message.seq),
        )
        .await?
        .message;
    check(reply.reply_to_seq == Some(posted.message.seq) && reply.attachments.len() == 1)?;
    check(reply.attachments[0].name.as_deref() == Some("summit.jpg"))?;
    report(&format!(
        "ana replied to #{} with {} attachment(s)",
        posted.message.seq,
        reply.attachments.len()
    ));

    // Ben reacts; his phone sees everything in order, the last event with the reaction.
    let reacted = messenger.react(ben, reply.id, "😍", ReactionState::Added).await?;
    let names = next_events(&mut bens_phone, 4).await?;
    check(
        names == ["conversation.created", "message.created", "message.created", "reaction.added"],
    )?;
    report(&format!("ben's phone received: {}", names.join(", ")));
    let summary = &reacted.reactions[0];
    check(summary.emoji == "😍" && summary.user_ids == [ben])?;
    report(&format!("ben reacted {} to ana's photo", summary.emoji));

    // Neither user can edit or delete the app's message.
    check(messenger.delete(ana, posted.message.id).await.is_err())?;
    check(messenger.edit(ben, posted.message.id, "mine now").await.is_err())?;
    report("users cannot edit or delete the system message");
    bens_phone.close().await?;
    report("match flow: ok");
    Ok(())
}

/// The names of the next `n` durable events on `session`.
async fn next_events(session: &mut Session, n: usize) -> Result<Vec<&'static str>> {
    let mut names = Vec::new();
    while names.len() < n {
        if let Push::Event(event) =
            tokio::time::timeout(Duration::from_secs(5), session.recv()).await??
        {
            if let Event::Reaction(change) = &event.get().event {
                check(change.message.reactions.len() == 1)?;
            }
            names.push(event.get().event.name());
        }
    }
    Ok(names)
}

fn check(ok: bool) -> Result<()> {
    if ok { Ok(()) } else { Err("the match flow did not go as the protocol promises".into()) }
}

#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}
