//! The check after a move: both stores read back through the storage traits and compared
//! as canonical JSON, record by record, and user by user as users see them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::{After, Records, Section, StoreExport};
use crate::error::{Error, Result};
use crate::id::{ConversationId, UserId};
use crate::model::ActivityKey;
use crate::search;
use crate::store::{ContextPage, ConversationPage, SearchQuery};
use crate::time::Timestamp;

/// How many differences a report keeps (the count goes on).
const KEPT: usize = 20;

/// One difference between the two stores.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mismatch {
    /// What was compared (a section and key, or a user's view).
    pub what: String,
    /// The source's answer, as canonical JSON (`null` when it had none).
    pub source: String,
    /// The target's answer, as canonical JSON (`null` when it had none).
    pub target: String,
}

/// What [`verify_move`] compared and found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Records compared per section (the source's count).
    pub sections: BTreeMap<Section, u64>,
    /// Users whose conversation lists (unarchived and archived), unread totals and
    /// events (as `sync` reads them, from the start of the log) were compared.
    pub users: u64,
    /// Contexts whose conversations (the host's listing view) were compared.
    pub contexts: u64,
    /// Searches compared: in each conversation, a word of its latest message, as one of
    /// its members.
    pub searches: u64,
    /// Differences found.
    pub differences: u64,
    /// The first differences found.
    pub mismatches: Vec<Mismatch>,
}

impl VerifyReport {
    /// Whether the two stores answered alike everywhere.
    #[must_use]
    pub fn is_identical(&self) -> bool {
        self.differences == 0
    }

    /// Adds what a share of the users found.
    fn absorb(&mut self, part: Self) {
        self.users += part.users;
        self.differences += part.differences;
        let room = KEPT.saturating_sub(self.mismatches.len());
        self.mismatches.extend(part.mismatches.into_iter().take(room));
    }

    fn differ(&mut self, what: impl Into<String>, source: &Value, target: &Value) {
        self.differences += 1;
        if self.mismatches.len() < KEPT {
            self.mismatches.push(Mismatch {
                what: what.into(),
                source: canonical(source),
                target: canonical(target),
            });
        }
    }
}

/// Reads `source` and `target` back and compares them: every record of every section (as
/// [`StoreExport::export`] gives it), every context's conversations (as the host lists a
/// listing's inquiries), in every conversation a search for a word of its latest message
/// (what tells a search index built wrong), then, for every member of a conversation, their
/// conversation lists (unarchived and archived, page by page), their unread totals at
/// `now`, and the events `sync` would serve them from the start of the log (four users at
/// a time: both stores serve reads on several connections). Objects are
/// compared as canonical JSON (object keys sorted), so a store that reorders the keys of
/// `metadata` still compares equal.
///
/// # Errors
/// What either store answers when a read fails (differences are in the report, not
/// errors).
pub async fn verify_move(
    source: &dyn StoreExport,
    target: &dyn StoreExport,
    page: usize,
    now: Timestamp,
) -> Result<VerifyReport> {
    let page = page.max(1);
    let mut report = VerifyReport::default();
    let mut users = BTreeSet::new();
    let mut contexts = BTreeSet::new();
    // A member of each conversation, and a word of its latest message: one search each.
    let mut members: HashMap<ConversationId, UserId> = HashMap::new();
    let mut probes: BTreeMap<ConversationId, String> = BTreeMap::new();
    for section in Section::ALL {
        let mut after = After::Start;
        let mut compared = 0;
        loop {
            let theirs = source.export(section, &after, page).await?;
            let ours = target.export(section, &after, page).await?;
            match &theirs {
                Records::Members(members) => users.extend(members.iter().map(|m| m.user_id)),
                Records::Conversations(conversations) => {
                    contexts.extend(conversations.iter().filter_map(|c| c.context.clone()));
                    members.extend(conversations.iter().map(|c| (c.id, c.members[0])));
                }
                Records::Messages(messages) => {
                    for message in messages.iter().filter(|m| !m.deleted) {
                        if let Some(word) = search::words(&message.body).next() {
                            probes.insert(message.conversation_id, word);
                        }
                    }
                }
                _ => {}
            }
            let (theirs_json, ours_json) = (records_json(&theirs)?, records_json(&ours)?);
            for i in 0..theirs_json.len().max(ours_json.len()) {
                let (a, b) = (
                    theirs_json.get(i).unwrap_or(&Value::Null),
                    ours_json.get(i).unwrap_or(&Value::Null),
                );
                if a != b {
                    report.differ(format!("{} after {after:?}, record {i}", section.name()), a, b);
                }
            }
            compared += theirs.len() as u64;
            // Both sides go on from the source's key, so one extra or missing record
            // differs once, not on every later page.
            match theirs.last_key() {
                Some(next) => after = next,
                None => break,
            }
        }
        report.sections.insert(section, compared);
    }
    let head = source.head().await?;
    if head != target.head().await? {
        report.differ("log head", &Value::from(head), &Value::from(target.head().await?));
    }
    for context in contexts {
        compare_context(source, target, context, page, &mut report).await?;
    }
    for (conversation, word) in probes {
        let Some(&user) = members.get(&conversation) else { continue };
        let query = SearchQuery {
            user,
            terms: vec![word],
            conversation_id: Some(conversation),
            limit: page,
        };
        let (theirs, ours) =
            (source.search(query.clone()).await?, target.search(query.clone()).await?);
        compare(
            &mut report,
            format!("search of {:?} in {conversation}", query.terms),
            &theirs,
            &ours,
        )?;
        report.searches += 1;
    }
    // The users in four interleaved shares, checked at once (each store serves reads on
    // several connections): the check is most of a move's downtime.
    let users: Vec<UserId> = users.into_iter().collect();
    let share = |n: usize| users.iter().skip(n).step_by(USER_SHARES).copied();
    let shares = tokio::join!(
        compare_users(source, target, share(0), head, page, now),
        compare_users(source, target, share(1), head, page, now),
        compare_users(source, target, share(2), head, page, now),
        compare_users(source, target, share(3), head, page, now),
    );
    for part in [shares.0?, shares.1?, shares.2?, shares.3?] {
        report.absorb(part);
    }
    Ok(report)
}

/// How many shares of the users [`verify_move`] checks at once.
const USER_SHARES: usize = 4;

/// Every user's conversation lists, unread totals and `sync` events, on both sides.
async fn compare_users(
    source: &dyn StoreExport,
    target: &dyn StoreExport,
    users: impl Iterator<Item = UserId>,
    head: u64,
    page: usize,
    now: Timestamp,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for user in users {
        compare_lists(source, target, user, page, &mut report).await?;
        let (a, b) = (source.unread(user, now).await?, target.unread(user, now).await?);
        compare(&mut report, format!("unread of {user}"), &a, &b)?;
        compare_sync(source, target, user, head, page, &mut report).await?;
        report.users += 1;
    }
    Ok(report)
}

/// A user's conversation list on both sides, unarchived then archived, page by page.
async fn compare_lists(
    source: &dyn StoreExport,
    target: &dyn StoreExport,
    user: UserId,
    page: usize,
    report: &mut VerifyReport,
) -> Result<()> {
    for archived in [false, true] {
        let mut before: Option<ActivityKey> = None;
        loop {
            let request = ConversationPage { user, before, limit: page, archived, context: None };
            let theirs = source.conversations(request.clone()).await?;
            let ours = target.conversations(request).await?;
            compare(
                report,
                format!("conversations of {user} (archived: {archived}) before {before:?}"),
                &theirs,
                &ours,
            )?;
            match theirs.last() {
                Some(last) if theirs.len() == page => {
                    before = Some(ActivityKey::of(&last.conversation));
                }
                _ => break,
            }
        }
    }
    Ok(())
}

/// Every conversation with `context` (the host's view of one listing), on both sides.
async fn compare_context(
    source: &dyn StoreExport,
    target: &dyn StoreExport,
    context: String,
    page: usize,
    report: &mut VerifyReport,
) -> Result<()> {
    let mut before: Option<ActivityKey> = None;
    loop {
        let request = ContextPage { context: context.clone(), before, limit: page };
        let theirs = source.conversations_by_context(request.clone()).await?;
        let ours = target.conversations_by_context(request).await?;
        compare(
            report,
            format!("conversations about {context:?} before {before:?}"),
            &theirs,
            &ours,
        )?;
        match theirs.last() {
            Some(last) if theirs.len() == page => before = Some(ActivityKey::of(last)),
            _ => break,
        }
    }
    report.contexts += 1;
    Ok(())
}

/// The events `sync` serves `user` from the start of the log, on both sides.
async fn compare_sync(
    source: &dyn StoreExport,
    target: &dyn StoreExport,
    user: UserId,
    head: u64,
    page: usize,
    report: &mut VerifyReport,
) -> Result<()> {
    let mut after = 0;
    loop {
        let theirs = source.read_events(user, after, head, page).await?;
        let ours = target.read_events(user, after, head, page).await?;
        compare(report, format!("events of {user} after {after}"), &theirs, &ours)?;
        match theirs.last() {
            Some(last) => after = last.position,
            None => return Ok(()),
        }
    }
}

fn compare<T: Serialize>(
    report: &mut VerifyReport,
    what: String,
    theirs: &T,
    ours: &T,
) -> Result<()> {
    let (a, b) = (json(theirs)?, json(ours)?);
    if a != b {
        report.differ(what, &a, &b);
    }
    Ok(())
}

fn json<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::invalid(format!("not representable: {e}")))
}

fn records_json(records: &Records) -> Result<Vec<Value>> {
    fn all<T: Serialize>(records: &[T]) -> Result<Vec<Value>> {
        records.iter().map(json).collect()
    }
    match records {
        Records::Conversations(v) => all(v),
        Records::Members(v) => all(v),
        Records::Messages(v) => all(v),
        Records::Log(v) => all(v),
        Records::Blocks(v) => all(v),
        Records::LastSeen(v) | Records::Revocations(v) => all(v),
        Records::Consumers(v) => all(v),
    }
}

/// `value` as JSON text with every object's keys in sorted order, whatever order the map
/// kept them in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            let fields: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_keep_the_first_differences() {
        let mut whole = VerifyReport { users: 2, ..VerifyReport::default() };
        for n in 0..KEPT - 1 {
            whole.differ(format!("a{n}"), &Value::Null, &Value::Bool(true));
        }
        let mut part = VerifyReport { users: 3, ..VerifyReport::default() };
        part.differ("b0", &Value::Null, &Value::Null);
        part.differ("b1", &Value::Null, &Value::Null);
        whole.absorb(part);
        assert_eq!((whole.users, whole.differences), (5, KEPT as u64 + 1));
        assert_eq!(whole.mismatches.len(), KEPT);
        assert_eq!(whole.mismatches.last().map(|m| m.what.as_str()), Some("b0"));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[{"y":1,"x":2}],"c":null}}"#)
            .unwrap_or_default();
        assert_eq!(canonical(&a), r#"{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}"#);
    }
}
