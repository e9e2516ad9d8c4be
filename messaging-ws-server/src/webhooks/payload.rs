//! A webhook request's body: `{"events":[…]}`, each event with its `position`, `cursor`,
//! name, `data` (what a session's push carries), `actor`, and `recipients` (the audience
//! without the actor, each with `online` and `muted`), and on `message.deleted` the
//! attachments the message had.

use messaging_core::{Attachment, LogEntry, Timestamp, UserId};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::frames;

#[derive(Serialize)]
struct Batch<'a> {
    events: Vec<Posted<'a>>,
}

#[derive(Serialize)]
struct Posted<'a> {
    position: u64,
    cursor: String,
    event: &'static str,
    data: Box<RawValue>,
    actor: Option<UserId>,
    recipients: Vec<Recipient>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_attachments: Option<&'a [Attachment]>,
}

#[derive(Serialize)]
struct Recipient {
    user_id: UserId,
    online: bool,
    muted: bool,
}

/// The users a batch's events are for, actors left out, each once: whose presence to ask.
pub(crate) fn recipients(entries: &[&LogEntry]) -> Vec<UserId> {
    let mut users: Vec<UserId> = entries
        .iter()
        .flat_map(|entry| {
            entry
                .recipients
                .iter()
                .map(|r| r.user_id)
                .filter(move |user| Some(*user) != entry.actor)
        })
        .collect();
    users.sort_unstable();
    users.dedup();
    users
}

/// The body posting `entries`; `online` says who of [`recipients`] has a live session,
/// `now` decides who is muted.
pub(crate) fn body(
    entries: &[&LogEntry],
    online: &[UserId],
    now: Timestamp,
) -> serde_json::Result<Vec<u8>> {
    let mut events = Vec::with_capacity(entries.len());
    for entry in entries {
        let event = &entry.logged.event;
        let data = String::from_utf8_lossy(&frames::event_data(event)).into_owned();
        let name = event.name();
        events.push(Posted {
            position: entry.logged.position,
            cursor: entry.logged.cursor().to_string(),
            event: name,
            data: RawValue::from_string(data)?,
            actor: entry.actor,
            recipients: entry
                .recipients
                .iter()
                .filter(|r| Some(r.user_id) != entry.actor)
                .map(|r| Recipient {
                    user_id: r.user_id,
                    online: online.binary_search(&r.user_id).is_ok(),
                    muted: r.muted_until.is_some_and(|until| until > now),
                })
                .collect(),
            removed_attachments: (name == "message.deleted")
                .then_some(entry.removed_attachments.as_slice()),
        });
    }
    serde_json::to_vec(&Batch { events })
}
