//! The writes that change how a conversation is set rather than what it holds: a member's
//! own settings (mute, archive) and the host's metadata.
//!
//! Both run inside the writer's batch transaction like every mutation (see `write.rs`):
//! they check before they write, so a caller's failure leaves the rest of the batch alone,
//! and they log their event only when something changed.

use messaging_core::Error;
use messaging_core::model::{Event, MemberSettings};
use messaging_core::store::{
    MemberChange, MemberUpdate, MemberUpdated, MetadataUpdate, MetadataUpdated,
};
use messaging_core::time::Timestamp;
use sqlx::{PgConnection, Row};

use crate::codec::{self, CONVERSATION_COLUMNS, trusted};
use crate::read;
use crate::write::{PendingEvent, Step};

/// Mutes, unmutes, archives or unarchives, as [`ConversationStore::update_member`]
/// describes; a change that leaves the settings as they read at `update.now` writes
/// nothing.
///
/// The mute lives on the member's `members` row, the archived flag on their `activity`
/// row (the list index's key, migration 0005). Both rows are locked before they are read:
/// a concurrent update of the same member then waits, and reads what this one wrote (the
/// lock's wait re-reads the rows it locks).
///
/// [`ConversationStore::update_member`]: messaging_core::store::ConversationStore::update_member
pub(crate) async fn update_member(
    conn: &mut PgConnection,
    update: &MemberUpdate,
    events: &mut Vec<PendingEvent>,
) -> Step<MemberUpdated> {
    let row = sqlx::query(
        "SELECT mb.muted_until, a.archived FROM members mb \
         JOIN activity a ON a.user_id = mb.user_id AND a.conversation_id = mb.conversation_id \
         WHERE mb.user_id = $1 AND mb.conversation_id = $2 FOR UPDATE OF mb, a",
    )
    .bind(update.user_id.as_uuid())
    .bind(update.conversation_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(Err(Error::not_found("no such conversation"))) };
    let mut settings = MemberSettings {
        conversation_id: update.conversation_id,
        user_id: update.user_id,
        muted_until: codec::optional_time(&row, 0)?,
        archived: row.try_get(1)?,
    };
    // A mute whose time has passed reads as none: unmuting it changes nothing.
    let muted_now = settings.muted_until.filter(|until| *until > update.now);
    let (user, conversation) = (update.user_id.as_uuid(), update.conversation_id.as_uuid());
    match update.change {
        MemberChange::Mute(until) if until != muted_now => {
            settings.muted_until = until;
            sqlx::query(
                "UPDATE members SET muted_until = $3 WHERE user_id = $1 AND conversation_id = $2",
            )
            .bind(user)
            .bind(conversation)
            .bind(until.map(Timestamp::as_millis))
            .execute(&mut *conn)
            .await?;
        }
        MemberChange::Archive(archived) if archived != settings.archived => {
            settings.archived = archived;
            // Moves the row's entry in `activity_order` to the other kind's range.
            sqlx::query(
                "UPDATE activity SET archived = $3 WHERE user_id = $1 AND conversation_id = $2",
            )
            .bind(user)
            .bind(conversation)
            .bind(archived)
            .execute(&mut *conn)
            .await?;
        }
        MemberChange::Mute(_) | MemberChange::Archive(_) => {
            return Ok(Ok(MemberUpdated { settings, changed: false }));
        }
    }
    let event = Event::MemberUpdated(settings);
    events.push(PendingEvent::new(event, &update.audience, Some(update.user_id)));
    Ok(Ok(MemberUpdated { settings, changed: true }))
}

/// Replaces the metadata unless it is the same JSON value (`jsonb` equality: key order
/// and number spelling do not count), in one statement that also locks the row; when
/// nothing changed, reads the conversation as it is (`None`: not found).
pub(crate) async fn set_metadata(
    conn: &mut PgConnection,
    update: &MetadataUpdate,
    events: &mut Vec<PendingEvent>,
) -> Step<MetadataUpdated> {
    let changed = sqlx::query(trusted(format!(
        "UPDATE conversations c SET metadata = $2 \
         WHERE c.id = $1 AND c.metadata IS DISTINCT FROM $2 RETURNING {CONVERSATION_COLUMNS}"
    )))
    .bind(update.conversation_id.as_uuid())
    .bind(&update.metadata)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = changed {
        let conversation = codec::conversation(&row, 0)?;
        let event = Event::ConversationUpdated(conversation.clone());
        // The host's call: no actor.
        events.push(PendingEvent::new(event, &update.audience, None));
        return Ok(Ok(MetadataUpdated { conversation, changed: true }));
    }
    Ok(match read::conversation(&mut *conn, update.conversation_id).await? {
        Some(conversation) => Ok(MetadataUpdated { conversation, changed: false }),
        None => Err(Error::not_found("no such conversation")),
    })
}
