//! The app's users: a name and the messaging library's [`UserId`], which is the user's
//! id everywhere (the library keeps no users of its own; it only needs the id).
//!
//! A demo's login: a name is enough, and the first login with a name creates its user. A
//! real app checks a password or hands the login to its identity provider here.

use messaging_core::{Timestamp, UserId};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::db::Db;
use crate::error::AppError;

/// The longest name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 40;

/// A user as the app shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct User {
    pub(crate) id: UserId,
    pub(crate) name: String,
}

/// `name` trimmed, when it is 1 to [`MAX_NAME_CHARS`] characters without control
/// characters.
pub(crate) fn valid_name(name: &str) -> Result<&str, AppError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(name)
}

/// The user called `name` (compared without case), created on first use.
pub(crate) async fn find_or_create(db: &Db, name: &str) -> Result<User, AppError> {
    let name = valid_name(name)?.to_owned();
    db.call(move |conn| {
        conn.execute(
            "INSERT INTO users (id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![UserId::new().to_string(), name, Timestamp::now().as_millis()],
        )?;
        let (id, name): (String, String) =
            conn.query_row("SELECT id, name FROM users WHERE name = ?1", params![name], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        Ok(User { id: parse_id(&id)?, name })
    })
    .await
}

/// The user with `id`, if any.
pub(crate) async fn get(db: &Db, id: UserId) -> Result<Option<User>, AppError> {
    db.call(move |conn| {
        let name = conn
            .query_row("SELECT name FROM users WHERE id = ?1", params![id.to_string()], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(name.map(|name| User { id, name }))
    })
    .await
}

/// The most users one [`names`] call looks up.
pub(crate) const MAX_LOOKUP: usize = 100;

/// The users among `ids` that exist, in no particular order.
pub(crate) async fn names(db: &Db, ids: Vec<UserId>) -> Result<Vec<User>, AppError> {
    db.call(move |conn| {
        let mut statement = conn.prepare_cached("SELECT name FROM users WHERE id = ?1")?;
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            let name: Option<String> =
                statement.query_row(params![id.to_string()], |row| row.get(0)).optional()?;
            users.extend(name.map(|name| User { id, name }));
        }
        Ok(users)
    })
    .await
}

/// A user id as stored.
pub(crate) fn parse_id(text: &str) -> Result<UserId, AppError> {
    text.parse().map_err(|_| AppError::internal("a stored user id is not a UUID"))
}
