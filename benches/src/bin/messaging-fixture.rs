//! `messaging-fixture`: a SQLite database of a given size built through the library, the
//! source of the move benchmark (`scripts/bench-move.sh`, docs/benchmarks.md "The move").
//!
//! `--conversations` conversations between distinct pairs of users, each with `--per`
//! messages alternating between its two members, every tenth with an attachment and every
//! fiftieth a system message, a few reactions and edits, and each member's read marker
//! halfway: the shape of a marketplace's inquiries, not one conversation a million deep.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use messaging_core::model::{Attachment, ReactionState};
use messaging_core::{Messenger, SendMessage, UserId};
use messaging_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// Builds a SQLite database of `conversations × per` messages.
#[derive(Debug, Parser)]
#[command(name = "messaging-fixture")]
struct Args {
    /// The database to create (it must not exist).
    #[arg(long)]
    path: PathBuf,
    /// Conversations, each between two users of their own.
    #[arg(long, default_value_t = 5_000)]
    conversations: u64,
    /// Messages per conversation.
    #[arg(long, default_value_t = 200)]
    per: u64,
    /// Conversations filled at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.path.exists() {
        return Err(
            format!("{} exists: the fixture starts from nothing", args.path.display()).into()
        );
    }
    let began = Instant::now();
    // A fixture, not data to keep: NORMAL builds it faster, and the move reads it the same.
    let options = SqliteOptions::default().synchronous(Synchronous::Normal);
    let store = SqliteStore::open_with(&args.path, options).await?;
    let messenger = Messenger::new(Arc::new(store.clone())).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.conversations {
        let (messenger, per) = (messenger.clone(), args.per);
        tasks.spawn(async move { conversation(&messenger, i, per).await });
        if tasks.len() >= args.concurrency.max(1)
            && let Some(done) = tasks.join_next().await
        {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    store.close().await?;
    #[allow(clippy::print_stdout, reason = "the tool's report")]
    {
        println!(
            "{}: {} conversations × {} messages in {:.1} s",
            args.path.display(),
            args.conversations,
            args.per,
            began.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// One conversation of `per` messages (see the module docs).
async fn conversation(messenger: &Messenger, i: u64, per: u64) -> messaging_core::Result<()> {
    let (a, b) = (UserId::new(), UserId::new());
    let context = format!("listing:{}", i % 997);
    let opened = messenger.open(a, b, Some(&context)).await?;
    let id = opened.conversation.id;
    let mut last = None;
    for n in 0..per {
        let sender = if n % 2 == 0 { a } else { b };
        let mut message = SendMessage::to_conversation(
            id,
            format!("message {n} of conversation {i}: is it still for sale?"),
        );
        if n % 10 == 3 {
            message = message.attachment(Attachment::new(
                format!("https://files.example/{i}/{n}.jpg"),
                "image/jpeg",
            ));
        }
        let sent = if n % 50 == 49 {
            messenger.service().post(message).await?
        } else {
            messenger.send(sender, message).await?
        };
        if n % 20 == 5 {
            messenger
                .react(if n % 2 == 0 { b } else { a }, sent.message.id, "👍", ReactionState::Added)
                .await?;
        }
        if n % 40 == 8 {
            messenger.edit(sender, sent.message.id, "edited: still for sale?").await?;
        }
        last = Some(sent.message.seq);
    }
    if let Some(last) = last {
        messenger.mark_read(a, id, last / 2).await?;
        messenger.mark_read(b, id, last / 2).await?;
    }
    Ok(())
}
