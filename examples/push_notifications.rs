//! A host's push-notification worker: a durable consumer of the library's event log sends
//! a mobile push for each new message to each recipient who is offline and has not muted
//! the conversation. Its position is stored in the database, so after a crash or a
//! restart it resumes where it left off: a message sent while the worker was down is
//! pushed when it comes back, and one it had handled is not pushed twice.
//!
//! Run with `cargo run --example push_notifications`. It prints the pushes it would send,
//! checks them and exits non-zero when they differ from what it expects.

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{
    ConsumerOptions, ConsumerStart, Event, LogEntry, Messenger, SendMessage, Timestamp, UserId,
};
use messaging_store_sqlite::SqliteStore;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The worker's consumer: its name is its stored position.
const WORKER: &str = "push-notifications";

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("push.db")).await?;
    let messenger = Messenger::new(Arc::new(store)).await?;
    let (ana, ben, cleo, dev) = (UserId::new(), UserId::new(), UserId::new(), UserId::new());
    let names = [(ana, "Ana"), (ben, "Ben"), (cleo, "Cleo"), (dev, "Dev")];
    let name = |user: UserId| names.iter().find(|(u, _)| *u == user).map_or("?", |(_, n)| *n);

    // The worker reads the log from its beginning (a worker added to a running app would
    // start at the head, `ConsumerStart::Head`, when first claimed: no history pushed).
    // A short lease, so that a crashed worker's successor takes over within a second (the
    // default, 20 s, suits workers that may pause that long between batches).
    let options =
        ConsumerOptions::default().start(ConsumerStart::Beginning).lease(Duration::from_secs(1));
    let mut worker = messenger.consumer(WORKER, options.clone())?;

    // Ben has the app open; Cleo and Dev do not, and Dev muted his conversation with Ana.
    let bens_phone = messenger.connect(ben).await?;
    let to_ben = messenger.send(ana, SendMessage::to_peer(ben, None, "Lunch?")).await?;
    let to_cleo =
        messenger.send(ana, SendMessage::to_peer(cleo, None, "Your order shipped")).await?;
    let to_dev = messenger.send(ana, SendMessage::to_peer(dev, None, "Saw your listing")).await?;
    let muted_until = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000);
    messenger.mute(dev, to_dev.message.conversation_id, Some(muted_until)).await?;
    messenger
        .send(ana, SendMessage::to_conversation(to_dev.message.conversation_id, "Still there?"))
        .await?;
    let _ = to_ben;

    let pushes = handle_until_idle(&messenger, &mut worker, &name).await?;
    check(pushes == ["push to Cleo: Ana: Your order shipped"], &pushes)?;
    report("only the offline, unmuted recipient got a push");

    // The worker goes down (dropped without a goodbye, as in a crash); a message is sent
    // meanwhile; a new worker process resumes from the stored position.
    drop(worker);
    messenger
        .send(ana, SendMessage::to_conversation(to_cleo.message.conversation_id, "Tracking: 1Z999"))
        .await?;
    let mut restarted = messenger.consumer(WORKER, options)?;
    let pushes = handle_until_idle(&messenger, &mut restarted, &name).await?;
    check(pushes == ["push to Cleo: Ana: Tracking: 1Z999"], &pushes)?;
    report("after a restart: the message sent while down is pushed, nothing twice");

    restarted.release().await?;
    bens_phone.close().await?;
    report("push flow: ok");
    Ok(())
}

/// Handles batches until none comes for a moment: each batch's pushes sent, then its last
/// position committed (a crash before the commit sends that batch again: at least once).
async fn handle_until_idle(
    messenger: &Messenger,
    worker: &mut messaging_core::Consumer,
    name: &impl Fn(UserId) -> &'static str,
) -> Result<Vec<String>> {
    let mut pushes = Vec::new();
    loop {
        // Long enough for a successor to take a crashed worker's lease over.
        let Ok(batch) = tokio::time::timeout(Duration::from_secs(3), worker.next_batch()).await
        else {
            return Ok(pushes);
        };
        let batch = batch?;
        for entry in &batch {
            pushes.extend(pushes_for(messenger, entry, name).await?);
        }
        if let Some(last) = batch.last() {
            worker.commit(last.logged.position).await?;
        }
    }
}

/// The pushes one log entry calls for: a new message, to each offline, unmuted recipient.
async fn pushes_for(
    messenger: &Messenger,
    entry: &LogEntry,
    name: &impl Fn(UserId) -> &'static str,
) -> Result<Vec<String>> {
    let Event::MessageCreated(message) = &entry.logged.event else { return Ok(Vec::new()) };
    let now = Timestamp::now();
    let candidates: Vec<UserId> = entry
        .recipients
        .iter()
        .filter(|r| Some(r.user_id) != entry.actor)
        .filter(|r| r.muted_until.is_none_or(|until| until <= now))
        .map(|r| r.user_id)
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let online = messenger.service().online(&candidates).await?;
    let sender = entry.actor.map_or("the app", name);
    let pushes = candidates
        .iter()
        .zip(online)
        .filter(|(_, online)| !online)
        .map(|(user, _)| format!("push to {}: {sender}: {}", name(*user), message.body))
        .collect::<Vec<_>>();
    for push in &pushes {
        report(push);
    }
    Ok(pushes)
}

fn check(ok: bool, pushes: &[String]) -> Result<()> {
    if ok { Ok(()) } else { Err(format!("unexpected pushes: {pushes:?}").into()) }
}

#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}
