//! [`ConsumerLog`]: the whole log with actors, audiences and their mutes, and the
//! consumers' positions and leases.
//!
//! The lease clock is this process's monotonic clock ([`Instant`]): the store lives in one
//! process, so every holder reads the same clock (a database store uses its server's).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use super::MemoryStore;
use super::state::{ConsumerRow, State, index};
use crate::error::Result;
use crate::model::{LogEntry, LoggedEvent, Recipient};
use crate::store::ConsumerLog;

impl State {
    /// Entries with `after < position <= up_to`, ascending, at most `limit`: each event in
    /// its subject's current state, its actor, its audience with their current mutes (from
    /// the members' state), a delete's removed attachments.
    fn read_log(&self, after: u64, up_to: u64, limit: usize) -> Vec<LogEntry> {
        let range = self.log.get(index(after)..index(up_to).min(self.log.len()));
        let entries = range.unwrap_or_default().iter().zip(after.saturating_add(1)..);
        let read = entries.filter_map(|(entry, position)| {
            let event = self.current(&entry.record)?;
            let thread = self.conversations.get(&event.conversation_id());
            let recipients = entry
                .audience
                .iter()
                .map(|user| {
                    let mine = thread.and_then(|t| t.members_of(*user)).map(|(mine, _)| mine);
                    Recipient::new(*user, mine.and_then(|m| m.muted_until))
                })
                .collect();
            let logged = LoggedEvent { position, event };
            Some(LogEntry::new(logged, entry.actor, recipients, entry.removed.clone()))
        });
        read.take(limit).collect()
    }

    /// Renews, takes over (nobody holds it, or the lease has passed) or creates the row
    /// at `start`; the stored position, or `None` while another holder's lease is live.
    fn claim_consumer(
        &mut self,
        name: &str,
        holder: Uuid,
        lease: Duration,
        start: u64,
    ) -> Option<u64> {
        let now = Instant::now();
        let lease_until = now.checked_add(lease);
        let row = self.consumers.entry(name.to_owned()).or_insert(ConsumerRow {
            position: start,
            holder: None,
            lease_until: None,
        });
        let live = row.lease_until.is_none_or(|until| until > now);
        if row.holder.is_some_and(|other| other != holder) && live {
            return None;
        }
        row.holder = Some(holder);
        row.lease_until = lease_until;
        Some(row.position)
    }

    /// Moves the position forward (never back) and renews, if `holder` holds it.
    fn commit_consumer(
        &mut self,
        name: &str,
        holder: Uuid,
        position: u64,
        lease: Duration,
    ) -> bool {
        match self.consumers.get_mut(name) {
            Some(row) if row.holder == Some(holder) => {
                row.position = row.position.max(position);
                row.lease_until = Instant::now().checked_add(lease);
                true
            }
            _ => false,
        }
    }

    fn release_consumer(&mut self, name: &str, holder: Uuid) {
        if let Some(row) = self.consumers.get_mut(name)
            && row.holder == Some(holder)
        {
            row.holder = None;
            row.lease_until = None;
        }
    }
}

#[async_trait]
impl ConsumerLog for MemoryStore {
    async fn read_log(&self, after: u64, up_to: u64, limit: usize) -> Result<Vec<LogEntry>> {
        Ok(self.read(|state| state.read_log(after, up_to, limit)))
    }

    async fn claim_consumer(
        &self,
        name: &str,
        holder: Uuid,
        lease: Duration,
        start: u64,
    ) -> Result<Option<u64>> {
        self.write(|state| Ok(state.claim_consumer(name, holder, lease, start)))
    }

    async fn commit_consumer(
        &self,
        name: &str,
        holder: Uuid,
        position: u64,
        lease: Duration,
    ) -> Result<bool> {
        self.write(|state| Ok(state.commit_consumer(name, holder, position, lease)))
    }

    async fn release_consumer(&self, name: &str, holder: Uuid) -> Result<()> {
        self.write(|state| {
            state.release_consumer(name, holder);
            Ok(())
        })
    }
}
