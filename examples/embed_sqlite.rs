//! Embedding the library: two users talk through a SQLite file.
//!
//! Run with `cargo run --example embed_sqlite`. It opens (or creates) `embed_sqlite.db` in a
//! temporary directory, so every run starts fresh.

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{Event, HistoryQuery, Messenger, Push, SendMessage, UserId};
use messaging_store_sqlite::SqliteStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("embed_sqlite.db")).await?;
    let messenger = Messenger::new(Arc::new(store)).await?;

    let (alice, bob) = (UserId::new(), UserId::new());
    let mut bobs_phone = messenger.connect(bob).await?;

    // Alice writes about a listing: the conversation is opened on the first message.
    let opened = messenger.open(alice, bob, Some("listing:42")).await?;
    let conversation = opened.conversation.id;
    messenger
        .send(alice, SendMessage::to_conversation(conversation, "Hi! Is the bike still for sale?"))
        .await?;
    messenger
        .send(bob, SendMessage::to_conversation(conversation, "It is. Want to see it tomorrow?"))
        .await?;
    messenger
        .send(
            alice,
            SendMessage::to_conversation(conversation, "Yes, 10am works.").client_msg_id("a-3"),
        )
        .await?;

    // Bob's session was subscribed before anything happened: events arrive live.
    let mut live = Vec::new();
    while live.len() < 4 {
        match tokio::time::timeout(Duration::from_secs(5), bobs_phone.recv()).await?? {
            Push::Event(event) => live.push(event.get().event.name()),
            Push::Signal(_) => {}
        }
    }
    report(&format!("bob received live: {}", live.join(", ")));

    let unread = messenger.unread(bob).await?;
    report(&format!("bob has {} unread in {} conversation(s)", unread.total, unread.conversations));

    let receipt = messenger.mark_read(bob, conversation, 3).await?;
    report(&format!("bob read up to seq {}", receipt.seq));
    if let Push::Event(event) = bobs_phone.recv().await?
        && let Event::Receipt(r) = &event.get().event
    {
        report(&format!("receipt pushed to bob's session: read_seq {}", r.seq));
    }
    report(&format!("bob now has {} unread", messenger.unread(bob).await?.total));

    report("history (as alice sees it):");
    let page = messenger.history(alice, conversation, HistoryQuery::default()).await?;
    for message in &page.messages {
        let who = if message.sender_id == Some(alice) { "alice" } else { "bob" };
        report(&format!("  #{} {who}: {}", message.seq, message.body));
    }
    bobs_phone.close().await?;
    Ok(())
}

#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}
