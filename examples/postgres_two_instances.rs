//! Two messengers on one PostgreSQL database, as two server processes would be: Alice is
//! connected to the first, Bob writes through the second, and the message crosses over
//! through the database's log (NOTIFY wakes the other instance's tailer). Each messenger
//! comes from `PgStore::messenger`, which wires the store's own fan-out and presence, so
//! typing and presence cross over too.
//!
//! `cargo run --example postgres_two_instances -- postgres://user@host/db`
//! (or set `DATABASE_URL`). With the test cluster:
//! `scripts/pg.sh run -- bash -c 'cargo run --example postgres_two_instances -- "$MESSAGING_PG_URL"'`

use std::time::Duration;

use messaging_core::fanout::Push;
use messaging_core::id::UserId;
use messaging_core::model::Event;
use messaging_core::{Limits, SendMessage};
use messaging_store_pg::{PgOptions, PgStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .ok_or("usage: postgres_two_instances <postgres-url> (or DATABASE_URL)")?;

    // Two store objects: two writers, two log tailers, two listeners; one database.
    let first_store = PgStore::connect(&url, PgOptions::default()).await?;
    let second_store = PgStore::connect(&url, PgOptions::default()).await?;
    let first = first_store.messenger(Limits::default()).await?;
    let second = second_store.messenger(Limits::default()).await?;

    let (alice, bob) = (UserId::new(), UserId::new());
    let mut alice_on_first = first.connect(alice).await?;
    let sent = second
        .send(bob, SendMessage::to_peer(alice, Some("order:7"), "Your order shipped!"))
        .await?;
    report(&format!("bob sent #{} through the second instance", sent.message.seq));

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
    // Queued writes finish, presence says goodbye, every task ends.
    first_store.close().await?;
    second_store.close().await?;
    Ok(())
}

#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}
