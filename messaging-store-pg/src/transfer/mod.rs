//! Moving a whole store in and out of PostgreSQL (`messaging_core::transfer`): the day a
//! deployment outgrows its SQLite file, its contents arrive here with their ids, seqs and
//! log positions, so every cursor a client holds stays valid.
//!
//! Reading out (`export`) pages through each section along a primary key; taking in
//! (`import`) writes each page as the store's own write paths would have, with the move's
//! checkpoint (migration 0008) in the same transaction, so a stopped move resumes after
//! its last committed page. The import is for a store nobody serves from meanwhile: its
//! log head stays at 0 until the import finishes, and a process serving from it would not
//! see the copied rows in the caches it keeps (blocks, revocations) or its feed.

mod export;
mod import;

pub(crate) use export::{count, export};
pub(crate) use import::{finish, import, import_state};
