//! The comparison: after each step, the step's answer and everything each user can read
//! (histories, conversation lists, unread totals, search, `sync` from the start) against
//! what the reference model renders.
//!
//! A mismatch is returned as text naming what was read, by whom, and both sides in the
//! model's naming ([`view`](super::view)), so a shrunk failure says which rule broke.

use std::cmp::Reverse;
use std::fmt::Debug;

use crate::Messenger;
use crate::model::{Cursor, UnreadTotals};
use crate::requests::{ConversationsQuery, HistoryQuery};

use super::driver::Actual;
use super::ops::{QUERIES, USERS};
use super::reference::{Expect, Model};
use super::view::{EventView, MsgView, Naming, Render, SummaryView, code};

/// The size of a conversation-list page while reading a whole list (small, so paging is
/// exercised: a case has up to 24 conversations).
const LIST_PAGE: usize = 5;

fn differ<T: Debug + PartialEq>(what: &str, expected: &T, actual: &T) -> Result<(), String> {
    if expected == actual {
        Ok(())
    } else {
        Err(format!("{what}\n  model: {expected:#?}\n  store: {actual:#?}"))
    }
}

/// Compares the outcome of a step (Ok or the error code; for a send, `created` and the
/// seq) before anything is bound from it.
pub(crate) fn outcome(expect: &Expect, actual: &crate::Result<Actual>) -> Result<(), String> {
    let got = code(actual);
    let want = match expect {
        Expect::Err(code) => code,
        _ => "ok",
    };
    if got != want {
        let detail = match actual {
            Ok(a) => format!("{a:#?}"),
            Err(e) => e.to_string(),
        };
        return Err(format!(
            "outcome: the model says `{want}` ({expect:?}), the store `{got}`: {detail}"
        ));
    }
    if let (Expect::Sent { msg, created }, Ok(Actual::Sent(sent))) = (expect, actual)
        && (sent.created != *created || sent.message.seq != msg.1)
    {
        return Err(format!(
            "send: the model says created={created} seq={}, the store created={} seq={}",
            msg.1, sent.created, sent.message.seq
        ));
    }
    Ok(())
}

/// Binds what the store decided in this step (new ids, times) into the model.
pub(crate) async fn bind(
    m: &Messenger,
    model: &mut Model,
    expect: &Expect,
    actual: &Actual,
) -> Result<(), String> {
    match (expect, actual) {
        (Expect::Sent { msg, created: true }, Actual::Sent(sent)) => {
            model.bind_message(*msg, sent.message.id, sent.message.created_at);
        }
        (Expect::Message(name), Actual::Message(message)) => {
            // An edit's time (every other message op leaves it as it was).
            model.bind_edit(*name, message.edited_at);
        }
        (Expect::Receipt { conv, user, kind, seq, moved: true }, Actual::Receipt(r)) => {
            model.receipt_at.insert((*conv, *user, *kind, *seq), r.at);
        }
        _ => {}
    }
    // New conversations: found in a member's lists by members and context.
    for conv in 0..model.convs.len() {
        if model.convs[conv].id.is_some() {
            continue;
        }
        let c = model.convs[conv].clone();
        let mut found = None;
        for archived in [false, true] {
            let query = ConversationsQuery { limit: Some(100), archived, ..Default::default() };
            let page = m
                .conversations(model.users[c.members[0]], query)
                .await
                .map_err(|e| e.to_string())?;
            for s in page.conversations {
                let sc = &s.conversation;
                let members = [model.users[c.members[0]], model.users[c.members[1]]];
                if model.conv_named(sc.id).is_none()
                    && sc.members == members
                    && sc.context.as_deref() == c.context
                {
                    found = Some((sc.id, sc.created_at));
                }
            }
        }
        let Some((id, created_at)) = found else {
            return Err(format!(
                "the store lists no conversation for the model's conversation {conv}: {c:#?}"
            ));
        };
        model.bind_conversation(conv, id, created_at);
    }
    Ok(())
}

/// Compares the step's answer with what the model renders for it.
pub(crate) fn reply(model: &Model, expect: &Expect, actual: &Actual) -> Result<(), String> {
    let naming = Naming { model };
    let render = Render { model };
    match (expect, actual) {
        (Expect::Opened { conv, created }, Actual::Opened(opened)) => differ(
            "open's reply",
            &(render.conversation(*conv), *created),
            &(naming.conversation(&opened.conversation)?, opened.created),
        ),
        (Expect::Sent { msg, created }, Actual::Sent(sent)) => differ(
            "send's reply",
            &(render.message(*msg), *created),
            &(naming.message(&sent.message)?, sent.created),
        ),
        (Expect::Message(name), Actual::Message(message)) => {
            differ("the message replied", &render.message(*name), &naming.message(message)?)
        }
        (Expect::Receipt { conv, user, kind, seq, .. }, Actual::Receipt(r)) => {
            // `at`: when the marker moved to its value (unchecked for a marker never moved).
            let at = if *seq == 0 {
                None
            } else {
                model.receipt_at.get(&(*conv, *user, *kind, *seq)).copied()
            };
            let actual_at = if *seq == 0 { None } else { Some(r.at) };
            differ(
                "the receipt replied",
                &(Some(*conv), Some(*user), *kind, *seq, at),
                &(
                    model.conv_named(r.conversation_id),
                    model.user_named(r.user_id),
                    r.kind,
                    r.seq,
                    actual_at,
                ),
            )
        }
        (Expect::Summary { conv, user }, Actual::Summary(s)) => {
            differ("the summary replied", &render.summary(*conv, *user), &naming.summary(s)?)
        }
        (Expect::Unit, Actual::Unit) => Ok(()),
        (expect, actual) => {
            Err(format!("reply of another kind: model {expect:?}, store {actual:#?}"))
        }
    }
}

/// Compares everything every user can read with the model.
pub(crate) async fn state(m: &Messenger, model: &Model) -> Result<(), String> {
    let head = m.store().head().await.map_err(|e| e.to_string())?;
    differ("the log's head (one position per durable event)", &(model.log.len() as u64), &head)?;
    for user in 0..USERS {
        lists(m, model, user).await?;
        unread(m, model, user).await?;
        sync(m, model, user, head).await?;
        search(m, model, user).await?;
    }
    histories(m, model).await
}

async fn lists(m: &Messenger, model: &Model, user: usize) -> Result<(), String> {
    let naming = Naming { model };
    let render = Render { model };
    for archived in [false, true] {
        let mut expected: Vec<usize> = (0..model.convs.len())
            .filter(|c| {
                model.convs[*c]
                    .slot(user)
                    .is_some_and(|s| model.convs[*c].state[s].archived == archived)
            })
            .collect();
        // Newest activity first; ties by id, descending.
        expected.sort_by_key(|c| Reverse((model.convs[*c].activity(), model.convs[*c].id)));
        let expected: Vec<SummaryView> =
            expected.into_iter().map(|c| render.summary(c, user)).collect();
        // Page by page; `next` is null exactly when nothing follows.
        let mut actual = Vec::new();
        let mut before = None;
        loop {
            let query = ConversationsQuery {
                limit: Some(LIST_PAGE),
                before: before.clone(),
                archived,
                context: None,
            };
            let page =
                m.conversations(model.users[user], query).await.map_err(|e| e.to_string())?;
            if before.is_some() && page.conversations.is_empty() {
                return Err(format!(
                    "user {user}'s list (archived: {archived}): `next` given with nothing after it"
                ));
            }
            for s in &page.conversations {
                actual.push(naming.summary(s)?);
            }
            match page.next {
                Some(next) if actual.len() <= expected.len() + LIST_PAGE => before = Some(next),
                Some(_) => {
                    return Err(format!("user {user}'s list (archived: {archived}) never ends"));
                }
                None => break,
            }
        }
        differ(&format!("user {user}'s conversations (archived: {archived})"), &expected, &actual)?;
    }
    Ok(())
}

async fn unread(m: &Messenger, model: &Model, user: usize) -> Result<(), String> {
    let mut expected = UnreadTotals::default();
    for c in &model.convs {
        let Some(slot) = c.slot(user) else { continue };
        if Model::muted(&c.state[slot]) {
            continue;
        }
        let n = c.unread(slot);
        expected.total += n;
        expected.conversations += u64::from(n > 0);
    }
    let actual = m.unread(model.users[user]).await.map_err(|e| e.to_string())?;
    differ(&format!("user {user}'s unread totals"), &expected, &actual)
}

async fn sync(m: &Messenger, model: &Model, user: usize, head: u64) -> Result<(), String> {
    let naming = Naming { model };
    let render = Render { model };
    let expected: Vec<(u64, EventView)> = model
        .log
        .iter()
        .enumerate()
        .filter(|(_, e)| e.audience.contains(&user))
        .map(|(i, e)| (i as u64 + 1, render.event(&e.event)))
        .collect();
    let mut actual = Vec::new();
    let mut cursor = Cursor::at(0);
    loop {
        let page = m
            .sync(model.users[user], Some(cursor), Cursor::at(head), Some(200))
            .await
            .map_err(|e| e.to_string())?;
        for e in &page.events {
            actual.push(naming.event(e)?);
        }
        if !page.has_more {
            differ(
                &format!("user {user}'s sync cursor at the end"),
                &Cursor::at(head),
                &page.cursor,
            )?;
            break;
        }
        cursor = page.cursor;
    }
    differ(&format!("user {user}'s sync from the start"), &expected, &actual)
}

async fn search(m: &Messenger, model: &Model, user: usize) -> Result<(), String> {
    let naming = Naming { model };
    let render = Render { model };
    // Newest first; messages sent within one millisecond may come in either order.
    let canonical = |mut list: Vec<MsgView>| {
        list.sort_by_key(|v| (Reverse(v.created_at), v.name));
        list
    };
    for query in QUERIES {
        let expected =
            canonical(model.search(user, query).into_iter().map(|n| render.message(n)).collect());
        let found =
            m.search(model.users[user], query, None, Some(50)).await.map_err(|e| e.to_string())?;
        let actual: Vec<MsgView> =
            found.iter().map(|f| naming.message(f)).collect::<Result<_, _>>()?;
        if actual.windows(2).any(|w| w[0].created_at < w[1].created_at) {
            return Err(format!("user {user}'s search {query:?} is not newest first: {actual:#?}"));
        }
        differ(&format!("user {user}'s search {query:?}"), &expected, &canonical(actual))?;
    }
    Ok(())
}

async fn histories(m: &Messenger, model: &Model) -> Result<(), String> {
    let naming = Naming { model };
    let render = Render { model };
    for (conv, c) in model.convs.iter().enumerate() {
        let Some(id) = c.id else { continue };
        let expected: Vec<MsgView> =
            (1..=c.last_seq()).map(|seq| render.message((conv, seq))).collect();
        for user in 0..USERS {
            let query = HistoryQuery { limit: Some(100), ..Default::default() };
            let read = m.history(model.users[user], id, query).await;
            let what = format!("conversation {conv}'s history as user {user} reads it");
            match read {
                Ok(page) if c.slot(user).is_some() => {
                    let actual: Vec<MsgView> = page
                        .messages
                        .iter()
                        .map(|x| naming.message(x))
                        .collect::<Result<_, _>>()?;
                    differ(&what, &(expected.clone(), false), &(actual, page.has_more))?;
                }
                other if c.slot(user).is_some() => differ(&what, &"ok", &code(&other))?,
                other => differ(&what, &"not_found", &code(&other))?,
            }
        }
    }
    Ok(())
}
