//! Two messengers on one PostgreSQL database, as two server processes would be: Alice is
//! connected to the first, Bob writes through the second, and the message crosses over
//! through the database's log (NOTIFY wakes the other instance's tailer).
//!
//! `cargo run --example postgres_two_instances -- postgres://user@host/db`
//! (or set `DATABASE_URL`). With the test cluster:
//! `scripts/pg.sh run -- bash -c 'cargo run --example postgres_two_instances -- "$MESSAGING_PG_URL"'`

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{Event, Messenger, Push, SendMessage, UserId};
use messaging_store_pg::{PgOptions, PgStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .ok_or("usage: postgres_two_instances <postgres-url> (or DATABASE_URL)")?;

    // Two store objects: two writers, two log tailers, two listeners; one database.
    let first =
        Messenger::new(Arc::new(PgStore::connect(&url, PgOptions::default()).await?)).await?;
    let second =
        Messenger::new(Arc::new(PgStore::connect(&url, PgOptions::default()).await?)).await?;

    let (alice, bob) = (UserId::new(), UserId::new());
    let mut alice_on_first = first.connect(alice).await?;
    let sent = second
        .send(bob, SendMessage::to_peer(alice, Some("order:7"), "Your order shipped!"))
        .await?;
    report(&format!("bob sent #{} through the second instance", sent.seq));

    loop {
        match tokio::time::timeout(Duration::from_secs(5), alice_on_first.recv()).await?? {
            Push::Event(event) => match &event.get().event {
                Event::MessageCreated(message) => {
                    report(&format!(
                        "alice, on the first instance, received: {:?} (cursor {})",
                        message.body,
                        event.get().cursor()
                    ));
                    break;
                }
                other => {
                    report(&format!("alice, on the first instance, received {}", other.name()));
                }
            },
            Push::Signal(_) => {}
        }
    }
    alice_on_first.close().await?;
    Ok(())
}

#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}
