//! Listings: the app's own table and its SQL, and the rules of a listing's fields.
//!
//! A listing is the app's, not the library's: the chat only knows it as the context
//! `listing:<id>` of the conversations about it (see `chat`).

use messaging_core::{Timestamp, UserId};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use crate::db::Db;
use crate::error::AppError;
use crate::users::parse_id;

/// The longest title, in characters.
pub(crate) const MAX_TITLE_CHARS: usize = 100;
/// The highest price: ten billion in the currency's units.
pub(crate) const MAX_PRICE_CENTS: i64 = 1_000_000_000_000;
/// Listings per page: the default and the most.
pub(crate) const PAGE: (usize, usize) = (20, 100);

/// Whether a listing can still be bought.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// For sale: buyers may contact the seller.
    Open,
    /// Sold, for good.
    Sold,
}

impl Status {
    fn as_sql(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Sold => "sold",
        }
    }

    /// `open` or `sold`.
    pub(crate) fn parse(text: &str) -> Result<Self, AppError> {
        match text {
            "open" => Ok(Self::Open),
            "sold" => Ok(Self::Sold),
            _ => Err(AppError::bad_request("status must be open or sold")),
        }
    }
}

/// A listing as the app shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Listing {
    pub(crate) id: i64,
    pub(crate) seller_id: UserId,
    pub(crate) seller_name: String,
    pub(crate) title: String,
    pub(crate) price_cents: i64,
    pub(crate) status: Status,
    pub(crate) created_at: Timestamp,
}

/// A listing to create, checked.
#[derive(Debug)]
pub(crate) struct NewListing {
    title: String,
    price_cents: i64,
}

impl NewListing {
    /// The title trimmed, 1 to [`MAX_TITLE_CHARS`] characters without control characters;
    /// the price a JSON integer from 0 to [`MAX_PRICE_CENTS`] (cents, so never a
    /// fraction).
    pub(crate) fn new(title: &str, price_cents: &serde_json::Value) -> Result<Self, AppError> {
        let title = title.trim();
        let chars = title.chars().count();
        if chars == 0 || chars > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
            return Err(AppError::bad_request(format!(
                "title must be 1 to {MAX_TITLE_CHARS} characters without control characters"
            )));
        }
        let price_cents = price_cents
            .as_u64()
            .and_then(|cents| i64::try_from(cents).ok())
            .filter(|cents| *cents <= MAX_PRICE_CENTS)
            .ok_or_else(|| {
                AppError::bad_request(format!(
                    "price_cents must be an integer number of cents from 0 to {MAX_PRICE_CENTS}"
                ))
            })?;
        Ok(Self { title: title.to_owned(), price_cents })
    }
}

/// Which page of listings to read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListQuery {
    pub(crate) status: Option<Status>,
    pub(crate) limit: usize,
    /// Listings with a lower id than this (the previous page's `next`).
    pub(crate) before: Option<i64>,
}

/// A page of listings, newest first.
#[derive(Debug, Serialize)]
pub(crate) struct ListingsPage {
    pub(crate) listings: Vec<Listing>,
    /// Pass as `before` for the next page; `null` when nothing follows.
    pub(crate) next: Option<i64>,
}

const SELECT: &str = "SELECT l.id, l.seller_id, u.name, l.title, l.price_cents, l.status,
                             l.created_at
                      FROM listings l JOIN users u ON u.id = l.seller_id";

/// A row of [`SELECT`] as SQLite has it (ids and times as text and integers).
struct Stored {
    id: i64,
    seller_id: String,
    seller_name: String,
    title: String,
    price_cents: i64,
    status: String,
    created_at: i64,
}

fn listing_of(row: &Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        id: row.get(0)?,
        seller_id: row.get(1)?,
        seller_name: row.get(2)?,
        title: row.get(3)?,
        price_cents: row.get(4)?,
        status: row.get(5)?,
        created_at: row.get(6)?,
    })
}

impl Stored {
    /// The listing this row holds.
    fn finish(self) -> Result<Listing, AppError> {
        Ok(Listing {
            id: self.id,
            seller_id: parse_id(&self.seller_id)?,
            seller_name: self.seller_name,
            title: self.title,
            price_cents: self.price_cents,
            status: Status::parse(&self.status)?,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

/// Creates a listing for sale by `seller`.
pub(crate) async fn create(db: &Db, seller: UserId, new: NewListing) -> Result<Listing, AppError> {
    db.call(move |conn| {
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO listings (seller_id, title, price_cents, status, created_at)
             VALUES (?1, ?2, ?3, 'open', ?4)",
            params![seller.to_string(), new.title, new.price_cents, Timestamp::now().as_millis()],
        )?;
        let id = tx.last_insert_rowid();
        let listing =
            tx.query_row(&format!("{SELECT} WHERE l.id = ?1"), params![id], listing_of)?;
        tx.commit()?;
        listing.finish()
    })
    .await
}

/// The listing `id`, if it exists.
pub(crate) async fn get(db: &Db, id: i64) -> Result<Option<Listing>, AppError> {
    db.call(move |conn| {
        conn.query_row(&format!("{SELECT} WHERE l.id = ?1"), params![id], listing_of)
            .optional()?
            .map(Stored::finish)
            .transpose()
    })
    .await
}

/// A page of listings, newest first.
pub(crate) async fn list(db: &Db, query: ListQuery) -> Result<ListingsPage, AppError> {
    // One more than the page, to know whether another follows.
    let rows_to_read = i64::try_from(query.limit).map_or(i64::MAX, |limit| limit + 1);
    db.call(move |conn| {
        let mut statement = conn.prepare_cached(&format!(
            "{SELECT} WHERE (?1 IS NULL OR l.status = ?1) AND (?2 IS NULL OR l.id < ?2)
             ORDER BY l.id DESC LIMIT ?3"
        ))?;
        let rows = statement.query_map(
            params![query.status.map(Status::as_sql), query.before, rows_to_read],
            listing_of,
        )?;
        let mut listings = Vec::new();
        for row in rows {
            listings.push(row?.finish()?);
        }
        let next = if listings.len() > query.limit {
            listings.truncate(query.limit);
            listings.last().map(|last| last.id)
        } else {
            None
        };
        Ok(ListingsPage { listings, next })
    })
    .await
}

/// Marks listing `id` sold (sold stays sold: nothing happens to a sold one).
pub(crate) async fn mark_sold(db: &Db, id: i64) -> Result<(), AppError> {
    db.call(move |conn| {
        conn.execute("UPDATE listings SET status = 'sold' WHERE id = ?1", params![id])?;
        Ok(())
    })
    .await
}
