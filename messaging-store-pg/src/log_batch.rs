//! The statement that ends every writing batch: the batch's appends and its log in one
//! round trip.
//!
//! A batch of appends is the hot path, and on a loaded machine each round trip costs more
//! than the SQL it carries. So one statement (data-modifying CTEs) locks the conversations
//! in ascending id order, moves their `last_seq`, inserts the messages, moves the members'
//! activity (a HOT update, see migration 0003), then takes positions from `log_head`,
//! writes the event and audience rows and queues the NOTIFY. When the batch holds nothing
//! else, that statement runs on its own (its implicit transaction is the batch's): one
//! round trip per batch. The batch's reactions write their summaries in it too, each
//! guarded by the row version it was computed from (`reactions.rs`).
//!
//! Order inside the statement matters across processes: `log_head` is locked only after
//! every other row lock of the batch is held (its `WHERE` counts the other CTEs, which runs
//! them to completion first), so two writers never wait on each other in a cycle. The
//! conversations are locked in ascending id order by `locked` before `conv` updates them
//! (its `WHERE` counts `locked`, as `head` does).
//!
//! Every read of `conversations` names the batch's ids (`id = ANY($1)`), never only a join:
//! PostgreSQL keeps a prepared statement's generic plan for the connection's life, and a
//! plan made while the table was small joins by scanning the whole table, which a writer
//! then did twice per batch once the table held thousands of conversations.
//!
//! Seqs and positions are computed in SQL from the bases the statement returns; this module
//! builds the matching messages and events on the Rust side from the same ordinals.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use messaging_core::id::UserId;
use messaging_core::model::{Attachment, Event, Message};
use messaging_core::search::index_text;
use messaging_core::store::{Appended, NewMessage};
use messaging_core::{Error, Result};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::codec::{self, MESSAGE_COLUMNS, int, trusted, uint};
use crate::error::PgError;
use crate::event_rows::{self, EventRow};
use crate::reactions::Changed;
use crate::write::PendingEvent;

/// What the closing statement's error says when a reaction summary it was to write had
/// changed since the batch read it (see `reactions.rs`): the writer then runs the batch
/// again with the rows locked.
pub(crate) const STALE_REACTIONS: &str = "stale reaction summaries";

/// SQLSTATE of a NOT NULL violation: an append's conversation was not found (its `seq`
/// comes out NULL), which the writer turns into `not_found` for those appends.
pub(crate) const MISSING_CONVERSATION: &str = "23502";

const STATEMENT: &str = "\
WITH locked AS (
    SELECT id FROM conversations WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
), conv AS (
    UPDATE conversations c SET last_seq = c.last_seq + v.n, last_message_at = v.at
    FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[]) AS v(id, n, at)
    WHERE c.id = ANY($1::uuid[]) AND v.id = c.id AND (SELECT count(*) FROM locked) >= 0
    RETURNING c.id, c.last_seq - v.n AS base, c.user_lo, c.user_hi, v.at
), msgs AS (
    INSERT INTO messages (id, conversation_id, seq, sender_id, body, metadata, client_msg_id,
        created_at, words, attachments, reply_to_seq)
    SELECT v.id, v.c, c.base + v.o, v.s, v.body, v.meta::jsonb, v.key, v.at,
        to_tsvector('simple', v.words), v.att, v.reply
    FROM UNNEST($4::uuid[], $5::uuid[], $6::bigint[], $7::uuid[], $8::text[], $9::text[],
        $10::text[], $11::bigint[], $12::text[], $24::jsonb[], $25::bigint[])
        AS v(id, c, o, s, body, meta, key, at, words, att, reply)
    LEFT JOIN conv c ON c.id = v.c
    RETURNING 1
), moved AS (
    UPDATE activity a SET at = c.at
    FROM conv c CROSS JOIN LATERAL (VALUES (c.user_lo), (c.user_hi)) AS u(id)
    WHERE a.user_id = u.id AND a.conversation_id = c.id
    RETURNING 1
), head AS (
    UPDATE log_head SET position = position + $13
    WHERE (SELECT count(*) FROM conv) >= 0 AND (SELECT count(*) FROM msgs) >= 0
        AND (SELECT count(*) FROM moved) >= 0
    RETURNING position - $13 AS base, pg_notify($14, position::text)
), ev AS (
    INSERT INTO events (position, kind, conversation_id, message_id, user_id, seq, audience,
        at, emoji, actor, removed_attachments)
    SELECT h.base + v.o, v.k, v.c, v.m, v.u, v.s, string_to_array(v.a, ',')::uuid[], v.t, v.e,
        v.actor, v.removed
    FROM head h, UNNEST($15::bigint[], $16::smallint[], $17::uuid[], $18::uuid[], $19::uuid[],
        $20::bigint[], $21::text[], $26::bigint[], $27::text[], $28::uuid[], $29::jsonb[])
        AS v(o, k, c, m, u, s, a, t, e, actor, removed)
), aud AS (
    INSERT INTO event_audience (user_id, position)
    SELECT v.u, h.base + v.o FROM head h, UNNEST($22::uuid[], $23::bigint[]) AS v(u, o)
)
SELECT h.base, c.id, c.base FROM head h LEFT JOIN conv c ON true";

/// The closing statement of a batch that changed reaction summaries: [`STATEMENT`] after
/// the `reacted` CTE, which writes each summary (`$30`-`$32`: ids, row versions, summaries)
/// only where the row is still the version it was computed from. Both `locked` and `head`
/// check before they lock anything that every summary was written, and a count short of
/// the ids fails the statement with [`STALE_REACTIONS`] (a cast error, so nothing of it is
/// kept). So the messages are locked first, then the conversations, then `log_head`: the
/// order of the batches that lock the messages with `FOR UPDATE` before this statement,
/// so no two batches wait on each other in a cycle. Batches without reactions, the hot
/// path, run [`STATEMENT`] as it is.
static STATEMENT_WITH_REACTIONS: LazyLock<String> = LazyLock::new(|| {
    let check = format!(
        "(SELECT CASE WHEN count(*) = cardinality($30::uuid[]) THEN true \
         ELSE ('{STALE_REACTIONS}: ' || count(*))::bool END FROM reacted)"
    );
    let edits = [
        (
            "WITH locked AS (",
            "WITH reacted AS (
    UPDATE messages m SET reactions = v.r
    FROM UNNEST($30::uuid[], $31::bigint[], $32::jsonb[]) AS v(id, version, r)
    WHERE m.id = ANY($30::uuid[]) AND m.id = v.id AND m.xmin::text::bigint = v.version
    RETURNING 1
), locked AS (",
        ),
        (
            "WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            "WHERE id = ANY($1::uuid[]) AND {check} ORDER BY id FOR UPDATE",
        ),
        (
            "AND (SELECT count(*) FROM moved) >= 0",
            "AND (SELECT count(*) FROM moved) >= 0 AND {check}",
        ),
    ];
    let mut statement = STATEMENT.to_owned();
    for (anchor, replacement) in edits {
        // A statement that lost an anchor would write summaries unchecked: never run it.
        assert_eq!(statement.matches(anchor).count(), 1, "the anchor {anchor:?}");
        statement = statement.replacen(anchor, &replacement.replace("{check}", &check), 1);
    }
    statement
});

/// The appends of a batch, resolved against idempotency keys and grouped per conversation.
pub(crate) struct Appends<'a> {
    appends: &'a [&'a NewMessage],
    outcomes: Vec<Option<Result<Appended>>>,
    /// Later appends repeating an earlier one's key in this batch: (later, earlier).
    repeats: Vec<(usize, usize)>,
    /// The appends to store, grouped per conversation, ascending ids.
    fresh: BTreeMap<Uuid, Vec<usize>>,
}

impl<'a> Appends<'a> {
    /// Sorts out `appends`: the ones whose conversation is in `missing` fail as not found;
    /// keys repeated inside the batch resolve to their first occurrence. Keys stored by
    /// earlier batches are only looked up by [`Appends::resolve_stored`]: the unique index
    /// catches them otherwise, and the writer then retries the batch with the lookup.
    pub(crate) fn new(appends: &'a [&'a NewMessage], missing: &HashSet<Uuid>) -> Self {
        let mut plan = Self {
            appends,
            outcomes: (0..appends.len()).map(|_| None).collect(),
            repeats: Vec::new(),
            fresh: BTreeMap::new(),
        };
        for (i, new) in appends.iter().enumerate() {
            if missing.contains(new.conversation_id.as_uuid()) {
                plan.outcomes[i] = Some(Err(Error::not_found("no such conversation")));
            }
        }
        plan.group();
        plan
    }

    /// Looks up which keys of this batch are stored already; those appends return the
    /// stored message and are not written again.
    pub(crate) async fn resolve_stored(&mut self, conn: &mut PgConnection) -> Result<(), PgError> {
        let keyed: Vec<(usize, &NewMessage, &str)> = self
            .appends
            .iter()
            .enumerate()
            .filter(|(i, _)| self.outcomes[*i].is_none())
            .filter_map(|(i, m)| m.client_msg_id.as_deref().map(|k| (i, *m, k)))
            .collect();
        if keyed.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(trusted(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m \
             JOIN UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS k(c, s, key) \
               ON m.conversation_id = k.c AND m.sender_id = k.s AND m.client_msg_id = k.key"
        )))
        .bind(keyed.iter().map(|(_, m, _)| *m.conversation_id.as_uuid()).collect::<Vec<_>>())
        .bind(keyed.iter().map(|(_, m, _)| codec::sender(m.sender_id)).collect::<Vec<_>>())
        .bind(keyed.iter().map(|(_, _, k)| (*k).to_owned()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        let mut stored: HashMap<(Uuid, Uuid, String), Message> = HashMap::new();
        for row in &rows {
            let message = codec::message(row, 0)?;
            let key = message.client_msg_id.clone().unwrap_or_default();
            stored.insert(
                (*message.conversation_id.as_uuid(), codec::sender(message.sender_id), key),
                message,
            );
        }
        for (i, m, k) in keyed {
            let key = (*m.conversation_id.as_uuid(), codec::sender(m.sender_id), k.to_owned());
            if let Some(message) = stored.get(&key) {
                self.outcomes[i] = Some(Ok(Appended { message: message.clone(), created: false }));
            }
        }
        self.group();
        Ok(())
    }

    /// Whether an append still undecided both replies to a seq and carries a key: a retry
    /// of a stored message answers with it before its reply is checked (as a retry is never
    /// checked again), so the stored keys must be looked up first.
    pub(crate) fn keyed_replies(&self) -> bool {
        self.appends.iter().enumerate().any(|(i, new)| {
            self.outcomes[i].is_none() && new.reply_to_seq.is_some() && new.client_msg_id.is_some()
        })
    }

    /// Refuses (`not_found`) every append whose `reply_to_seq` names no message of its
    /// conversation: seqs run from 1 without gaps (a tombstone keeps its row and seq), so
    /// the seq exists when it is at most the conversation's `last_seq` plus the appends of
    /// this batch stored before it. Runs after the stored keys were resolved.
    ///
    /// `last_seq` is read without a lock, before the closing statement locks the
    /// conversations: it only grows, so a reply found valid here is valid against the seq
    /// the statement then assigns, and a seq the caller could have seen committed before
    /// asking is already counted. Only batches holding a reply pay this read.
    pub(crate) async fn check_replies(&mut self, conn: &mut PgConnection) -> Result<(), PgError> {
        let replying: Vec<Uuid> = self
            .appends
            .iter()
            .enumerate()
            .filter(|(i, new)| self.outcomes[*i].is_none() && new.reply_to_seq.is_some())
            .map(|(_, new)| *new.conversation_id.as_uuid())
            .collect();
        if replying.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query("SELECT id, last_seq FROM conversations WHERE id = ANY($1)")
            .bind(&replying)
            .fetch_all(&mut *conn)
            .await?;
        let mut last_seq: HashMap<Uuid, u64> = HashMap::new();
        for row in &rows {
            last_seq.insert(row.try_get(0)?, uint(row.try_get(1)?));
        }
        // Refusing an append moves the seqs of the later ones of its conversation, and may
        // make a repeat of its key the first occurrence: check again until nothing changes.
        loop {
            let mut refused = Vec::new();
            for (conversation, indexes) in &self.fresh {
                // A missing conversation: the closing statement answers its appends.
                let Some(&last) = last_seq.get(conversation) else { continue };
                let mut stored_before = 0_u64;
                for &i in indexes {
                    match self.appends[i].reply_to_seq {
                        Some(seq) if seq == 0 || seq > last.saturating_add(stored_before) => {
                            refused.push(i);
                        }
                        _ => stored_before += 1,
                    }
                }
            }
            if refused.is_empty() {
                return Ok(());
            }
            for i in refused {
                self.outcomes[i] =
                    Some(Err(Error::not_found("no message at reply_to_seq in this conversation")));
            }
            self.group();
        }
    }

    /// Recomputes `repeats` and `fresh` from the outcomes decided so far.
    fn group(&mut self) {
        self.repeats.clear();
        self.fresh.clear();
        let mut first_of_key: HashMap<(Uuid, Uuid, &str), usize> = HashMap::new();
        for (i, new) in self.appends.iter().enumerate() {
            if self.outcomes[i].is_some() {
                continue;
            }
            if let Some(key) = new.client_msg_id.as_deref() {
                let id = (*new.conversation_id.as_uuid(), codec::sender(new.sender_id), key);
                if let Some(first) = first_of_key.get(&id) {
                    self.repeats.push((i, *first));
                    continue;
                }
                first_of_key.insert(id, i);
            }
            self.fresh.entry(*new.conversation_id.as_uuid()).or_default().push(i);
        }
    }
}

/// Runs the batch's closing statement: `appends` stored and the `reacted` summaries
/// written (each only where its row is still the version it was computed from, else the
/// statement fails: [`STALE_REACTIONS`]), then `prior` (the events of the batch's other
/// changes, the reactions' among them) and the appends' `message.created` events logged
/// in that order.
/// Returns the appends' outcomes, every event with its position, and the first position
/// (`None` when nothing was logged, in which case nothing was run).
pub(crate) async fn append_and_log(
    conn: &mut PgConnection,
    mut appends: Appends<'_>,
    reacted: &Changed,
    prior: Vec<PendingEvent>,
    channel: &str,
) -> Result<(Vec<Result<Appended>>, Vec<PendingEvent>, Option<u64>), PgError> {
    let order: Vec<(Uuid, usize, i64)> = appends
        .fresh
        .iter()
        .flat_map(|(c, indexes)| indexes.iter().zip(1..).map(|(i, o)| (*c, *i, o)))
        .collect();
    if prior.is_empty() && order.is_empty() {
        return Ok((finish(appends), prior, None));
    }
    let news: Vec<&NewMessage> = order.iter().map(|(_, i, _)| appends.appends[*i]).collect();

    let mut conv = (Vec::new(), Vec::new(), Vec::new());
    for (c, indexes) in &appends.fresh {
        conv.0.push(*c);
        conv.1.push(i64::try_from(indexes.len()).unwrap_or(i64::MAX));
        conv.2.push(indexes.last().map_or(0, |i| appends.appends[*i].created_at.as_millis()));
    }
    let events = prior.len() + news.len();
    let mut rows = Vec::with_capacity(events);
    for pending in &prior {
        let Some(row) = event_rows::event_row(&pending.event) else {
            let name = pending.event.name();
            return Err(sqlx::Error::Protocol(format!("no log row for {name} events")).into());
        };
        rows.push(row);
    }
    let mut audiences: Vec<&[UserId]> = prior.iter().map(|e| e.audience.as_slice()).collect();
    let mut actors: Vec<Option<Uuid>> =
        prior.iter().map(|e| e.actor.map(|u| *u.as_uuid())).collect();
    // NULL when nothing was removed (every event but a delete of a message with files).
    let mut removed: Vec<Option<Json<&[Attachment]>>> = prior
        .iter()
        .map(|e| (!e.removed_attachments.is_empty()).then(|| Json(&e.removed_attachments[..])))
        .collect();
    for new in &news {
        rows.push(EventRow {
            message_id: Some(*new.id.as_uuid()),
            ..EventRow::of(event_rows::kind::MESSAGE_CREATED, new.conversation_id)
        });
        audiences.push(&new.audience);
        actors.push(new.sender_id.map(|u| *u.as_uuid()));
        removed.push(None);
    }
    let ordinals: Vec<i64> = (1..=int(events as u64)).collect();
    let (audience_users, audience_at) =
        audience_rows(audiences.iter().copied().zip(ordinals.iter().copied()));

    let statement = if reacted.is_empty() { STATEMENT } else { STATEMENT_WITH_REACTIONS.as_str() };
    let mut query = sqlx::query(statement)
        .bind(&conv.0)
        .bind(&conv.1)
        .bind(&conv.2)
        .bind(news.iter().map(|m| *m.id.as_uuid()).collect::<Vec<_>>())
        .bind(news.iter().map(|m| *m.conversation_id.as_uuid()).collect::<Vec<_>>())
        .bind(order.iter().map(|(_, _, o)| *o).collect::<Vec<_>>())
        .bind(news.iter().map(|m| codec::sender(m.sender_id)).collect::<Vec<_>>())
        .bind(news.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
        .bind(
            news.iter()
                .map(|m| m.metadata.as_ref().map(serde_json::Value::to_string))
                .collect::<Vec<_>>(),
        )
        .bind(news.iter().map(|m| m.client_msg_id.as_deref()).collect::<Vec<_>>())
        .bind(news.iter().map(|m| m.created_at.as_millis()).collect::<Vec<_>>())
        .bind(news.iter().map(|m| index_text(&m.body)).collect::<Vec<_>>())
        .bind(int(events as u64))
        .bind(channel)
        .bind(&ordinals)
        .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.conversation_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.message_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(audiences.iter().map(|a| joined(a)).collect::<Vec<_>>())
        .bind(&audience_users)
        .bind(&audience_at)
        .bind(news.iter().map(|m| Json(&m.attachments)).collect::<Vec<_>>())
        .bind(news.iter().map(|m| m.reply_to_seq.map(int)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.emoji.as_deref()).collect::<Vec<_>>())
        .bind(&actors)
        .bind(&removed);
    if !reacted.is_empty() {
        query = query.bind(reacted.ids()).bind(reacted.versions()).bind(reacted.summaries());
    }
    let result = query.fetch_all(&mut *conn).await?;

    let mut head_base = None;
    let mut bases: HashMap<Uuid, i64> = HashMap::new();
    for row in &result {
        head_base = Some(row.try_get::<i64, _>(0)?);
        if let Some(id) = row.try_get::<Option<Uuid>, _>(1)? {
            bases.insert(id, row.try_get(2)?);
        }
    }
    let Some(head_base) = head_base else {
        return Err(sqlx::Error::Protocol("the log statement returned no head".into()).into());
    };

    let mut logged = prior;
    for ((conversation, i, ordinal), new) in order.iter().zip(&news) {
        let Some(base) = bases.get(conversation) else {
            return Err(
                sqlx::Error::Protocol("an appended conversation was not returned".into()).into()
            );
        };
        let message = new.stored(uint(base + ordinal));
        let event = Event::MessageCreated(message.clone());
        logged.push(PendingEvent::new(event, &new.audience, new.sender_id));
        appends.outcomes[*i] = Some(Ok(Appended { message, created: true }));
    }
    Ok((finish(appends), logged, Some(uint(head_base + 1))))
}

/// The outcome of every append, repeats answered with their first occurrence's message.
fn finish(mut appends: Appends<'_>) -> Vec<Result<Appended>> {
    for (i, first) in std::mem::take(&mut appends.repeats) {
        appends.outcomes[i] = Some(match &appends.outcomes[first] {
            Some(Ok(appended)) => {
                Ok(Appended { message: appended.message.clone(), created: false })
            }
            Some(Err(e)) => Err(e.clone()),
            None => Err(Error::unavailable("duplicate key without an original")),
        });
    }
    appends
        .outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(Error::unavailable("append was not run"))))
        .collect()
}

/// The `event_audience` rows of events given as (audience, position): one per distinct
/// user of each audience, so the insert needs no conflict check (a speculative insertion
/// costs an index probe per row). The writer's batches and an import both log with it.
pub(crate) fn audience_rows<'a>(
    events: impl Iterator<Item = (&'a [UserId], i64)>,
) -> (Vec<Uuid>, Vec<i64>) {
    let (mut users, mut positions) = (Vec::new(), Vec::new());
    for (audience, position) in events {
        for (i, user) in audience.iter().enumerate() {
            if !audience[..i].contains(user) {
                users.push(*user.as_uuid());
                positions.push(position);
            }
        }
    }
    (users, positions)
}

/// An audience as the text `string_to_array` splits back into `uuid[]` (also how an
/// import binds it, `transfer/import.rs`).
pub(crate) fn joined(audience: &[UserId]) -> String {
    audience.iter().map(|u| u.as_uuid().to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

    #[test]
    fn the_audience_index_gets_each_user_of_an_event_once_in_order() {
        use messaging_core::id::UserId;
        let (a, b) = (UserId::new(), UserId::new());
        let (first, second) = (vec![b, a, b], vec![a]);
        let (users, positions) =
            super::audience_rows([(&first[..], 7), (&second[..], 8)].into_iter());
        assert_eq!(users, [*b.as_uuid(), *a.as_uuid(), *a.as_uuid()]);
        assert_eq!(positions, [7, 7, 8]);
        assert_eq!(super::joined(&first), format!("{b},{a},{b}"));
    }

    /// The statement of a batch with reactions is the append statement with the summaries
    /// written first and checked in both places that lock: built whole, or never.
    #[test]
    fn the_reaction_statement_writes_summaries_first_and_checks_them_twice() {
        let statement = super::STATEMENT_WITH_REACTIONS.as_str();
        assert!(statement.starts_with("WITH reacted AS ("), "{statement}");
        assert_eq!(statement.matches(super::STALE_REACTIONS).count(), 2, "{statement}");
        let locked = statement.find("), locked AS (").expect("locked");
        let check = statement.find(super::STALE_REACTIONS).expect("the check");
        let conv = statement.find("), conv AS (").expect("conv");
        assert!(locked < check && check < conv, "the check comes before any lock is taken");
        assert_eq!(statement.matches("$32").count(), 1);
    }

    use sqlx::{Connection, Executor, PgConnection};

    use super::STATEMENT;
    use crate::test_database::{BUSY, ME, ME_ID, fresh_database, plan_of};

    /// The types of the statement's parameters, in order.
    const TYPES: &str = "uuid[], bigint[], bigint[], uuid[], uuid[], bigint[], uuid[], text[], \
        text[], text[], bigint[], text[], bigint, text, bigint[], smallint[], uuid[], uuid[], \
        uuid[], bigint[], text[], uuid[], bigint[], jsonb[], bigint[], bigint[], text[], uuid[], \
        jsonb[]";

    /// An append to one of a busy user's conversations moves the two members' activity rows
    /// through the primary key, in the plan made for the arguments and in the generic plan:
    /// never through `activity_order`, which would read the busy user's whole range.
    #[tokio::test]
    async fn an_append_moves_activity_by_primary_key() {
        let Some(url) = fresh_database().await else { return };
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        conn.execute(BUSY).await.expect("test data");
        let (id, peer): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, user_hi FROM conversations WHERE user_lo = {ME} LIMIT 1"
        )))
        .fetch_one(&mut conn)
        .await
        .expect("a conversation");
        for mode in ["auto", "force_generic_plan"] {
            let name = format!("append_{mode}");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "SET plan_cache_mode = {mode}; PREPARE {name}({TYPES}) AS {STATEMENT}"
            )))
            .await
            .expect("prepare");
            let (c, me) = (format!("ARRAY['{id}']::uuid[]"), format!("ARRAY[{ME}]::uuid[]"));
            let args = format!(
                "{c}, '{{1}}', '{{99999999}}', ARRAY[gen_random_uuid()], {c}, '{{1}}', {me}, \
                 '{{hi}}', '{{NULL}}', '{{NULL}}', '{{99999999}}', '{{hi}}', 1, 'log', '{{1}}', \
                 '{{2}}', {c}, '{{NULL}}', '{{NULL}}', '{{NULL}}', ARRAY['{ME_ID},{peer}'], \
                 {me}, '{{1}}', ARRAY['[]'::jsonb], '{{NULL}}', '{{NULL}}', '{{NULL}}', \
                 {me}, '{{NULL}}'",
            );
            let plan = plan_of(&mut conn, "(ANALYZE, COSTS OFF)", &name, &args).await;
            assert!(plan.contains("using activity_pkey on activity"), "{name}:\n{plan}");
            assert!(!plan.contains("activity_order"), "{name}:\n{plan}");
        }
    }

    /// The statement of a batch with reactions writes each summary through the primary
    /// key, in the generic plan too (the plan a writer keeps), whatever the table holds.
    #[tokio::test]
    async fn reaction_summaries_are_written_by_primary_key() {
        let Some(url) = fresh_database().await else { return };
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        conn.execute(BUSY).await.expect("test data");
        conn.execute(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at, words) \
             SELECT gen_random_uuid(), c.id, 1, c.user_lo, 'x', 1, to_tsvector('simple', 'x') \
             FROM conversations c; ANALYZE messages",
        )
        .await
        .expect("a message in every conversation");
        let statement = super::STATEMENT_WITH_REACTIONS.as_str();
        conn.execute(sqlx::AssertSqlSafe(format!(
            "SET plan_cache_mode = force_generic_plan; \
             PREPARE react({TYPES}, uuid[], bigint[], jsonb[]) AS {statement}"
        )))
        .await
        .expect("prepare");
        // Nothing appended ($1-$12, $15-$29 empty; $13 no events, $14 the channel), two
        // summaries to write.
        let (before, after) = (["'{}'"; 12].join(", "), ["'{}'"; 15].join(", "));
        let args = format!(
            "{before}, 0, 'log', {after}, ARRAY[gen_random_uuid(), gen_random_uuid()], \
             '{{1,2}}', ARRAY['[]'::jsonb, '[]'::jsonb]"
        );
        let plan = plan_of(&mut conn, "(COSTS OFF)", "react", &args).await;
        assert!(plan.contains("Update on messages"), "{plan}");
        assert!(plan.contains("messages_pkey"), "{plan}");
        assert!(!plan.contains("Seq Scan on messages"), "{plan}");
    }

    /// The plan of the append statement made while `conversations` was small (a new
    /// deployment: the generic plan is kept for the connection's life, until an ANALYZE
    /// invalidates it) still reads a batch's conversations by key once the table holds
    /// 5,000: a batch of 60 appends never reads the whole table. (The statement that
    /// joined `conv` to `locked` alone scanned the table here.)
    #[tokio::test]
    async fn a_plan_made_on_a_small_table_still_reads_conversations_by_key() {
        let Some(url) = fresh_database().await else { return };
        let pool = sqlx::PgPool::connect(&url).await.expect("pool");
        let opened = |from: u32, to: u32| {
            format!(
                "SET search_path TO messaging; \
                 INSERT INTO conversations (id, user_lo, user_hi, context, created_at) \
                   SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), '', g * 1000 \
                   FROM generate_series({from}, {to}) g; \
                 INSERT INTO activity (user_id, conversation_id, at) \
                   SELECT u, c.id, c.created_at FROM conversations c \
                   CROSS JOIN LATERAL (VALUES (c.user_lo), (c.user_hi)) AS v(u) \
                   WHERE c.created_at >= {from} * 1000;"
            )
        };
        pool.execute(sqlx::AssertSqlSafe(opened(1, 100))).await.expect("the first conversations");
        let batch: Vec<(uuid::Uuid, uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
            "SELECT id, user_lo, user_hi FROM messaging.conversations \
             ORDER BY created_at, id LIMIT 60",
        )
        .fetch_all(&pool)
        .await
        .expect("the batch's conversations");
        let n = batch.len();
        let uuids = |pick: &dyn Fn(&(uuid::Uuid, uuid::Uuid, uuid::Uuid)) -> String| {
            let list: Vec<String> = batch.iter().map(|row| format!("'{}'", pick(row))).collect();
            format!("ARRAY[{}]::uuid[]", list.join(","))
        };
        let same = |value: &str| format!("'{{{}}}'", vec![value; n].join(","));
        let counting =
            format!("'{{{}}}'", (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        let (c, lo) = (uuids(&|r| r.0.to_string()), uuids(&|r| r.1.to_string()));
        let audiences: Vec<String> = batch.iter().map(|r| format!("'{},{}'", r.1, r.2)).collect();
        let message_ids = format!("ARRAY[{}]", vec!["gen_random_uuid()"; n].join(","));
        let empty_json = format!("ARRAY[{}]", vec!["'[]'::jsonb"; n].join(","));
        let args = format!(
            "{c}, {ones}, {at}, {message_ids}, {c}, {ones}, {lo}, {hi}, {nulls}, {nulls}, \
             {at}, {hi}, {n}, 'log', {counting}, {kinds}, {c}, {nulls}, {nulls}, {nulls}, \
             ARRAY[{audiences}], {lo}, {counting}, {empty_json}, {nulls}, {nulls}, {nulls}, \
             {lo}, {nulls}",
            ones = same("1"),
            at = same("99999999"),
            hi = same("hi"),
            nulls = same("NULL"),
            kinds = same("2"),
            audiences = audiences.join(","),
        );
        let mut conn = pool.acquire().await.expect("a connection");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "SET search_path TO messaging; PREPARE append({TYPES}) AS {STATEMENT}"
        )))
        .await
        .expect("prepare");
        // Plans it six times without running it: PostgreSQL's cache then settles on a
        // generic plan, made for the table as it is now, where it may.
        for _ in 0..6 {
            plan_of(&mut conn, "", "append", &args).await;
        }
        pool.execute(sqlx::AssertSqlSafe(opened(101, 5000)))
            .await
            .expect("a burst of conversations");
        let plan = plan_of(&mut conn, "(ANALYZE, COSTS OFF, TIMING OFF)", "append", &args).await;
        assert!(!plan.contains("Seq Scan on conversations"), "{plan}");
        assert!(plan.contains(&format!("Insert on messages (actual rows={n} ")), "{plan}");
    }
}
