//! Append throughput over PostgreSQL for a fixed time: `senders` users each send into
//! their own conversation, awaiting every durable reply, for `seconds`. Steadier than the
//! criterion bursts for comparing write-path changes.
//!
//! ```sh
//! scripts/pg.sh run --durable -- cargo run --release -p messaging-benches \
//!     --example pg_append_probe -- 256 10
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_benches::PgServer;
use messaging_core::{Error, Messenger, Result, SendMessage, UserId};
use messaging_store_pg::PgOptions;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let number = |arg: Option<String>, default: u64| -> Result<u64> {
        arg.map_or(Ok(default), |a| {
            a.parse().map_err(|_| Error::invalid(format!("not a number: {a}")))
        })
    };
    let senders = number(args.next(), 64)?;
    let seconds = number(args.next(), 10)?;
    let server = PgServer::from_env()
        .ok_or_else(|| Error::invalid("MESSAGING_PG_URL is unset (run it under scripts/pg.sh)"))?;
    let database = server.create_database("probe").await?;
    let messenger = Messenger::new(Arc::new(database.connect(PgOptions::default()).await?)).await?;
    let mut pairs = Vec::new();
    for _ in 0..senders {
        let (a, b) = (UserId::new(), UserId::new());
        pairs.push((a, messenger.open(a, b, None).await?.conversation.id));
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for (user, conversation) in pairs {
        let messenger = messenger.clone();
        tasks.spawn(async move {
            let mut sent = 0_u64;
            while Instant::now() < deadline {
                let to = SendMessage::to_conversation(conversation, "hello there, how are you?");
                messenger.send(user, to).await?;
                sent += 1;
            }
            Ok::<u64, Error>(sent)
        });
    }
    let mut total = 0;
    while let Some(joined) = tasks.join_next().await {
        total += joined.map_err(|e| Error::unavailable(e.to_string()))??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "a rate for people to read")]
    let rate = total as f64 / elapsed;
    tracing_free_print(&format!(
        "{senders} senders: {total} messages in {elapsed:.1} s = {rate:.0}/s"
    ));
    drop(messenger);
    database.drop_database().await
}

#[allow(clippy::print_stdout, reason = "the report is the program's output")]
fn tracing_free_print(line: &str) {
    println!("{line}");
}
