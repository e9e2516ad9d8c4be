//! The copy: section by section, page by page, each page written with its checkpoint.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use super::{After, Checkpoint, ImportState, Records, Section, StoreExport, StoreImport};
use crate::error::{Error, Result};

/// How a move runs.
#[derive(Clone, Copy, Debug)]
pub struct MoveOptions {
    /// Go on with an unfinished move into the target (without it, a target holding one is
    /// refused, as is any target that is not empty).
    pub resume: bool,
    /// Records read and written per page (one transaction of the target each).
    pub page: usize,
}

impl Default for MoveOptions {
    fn default() -> Self {
        Self { resume: false, page: 1_000 }
    }
}

/// Where a move stands, after each page.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Progress {
    /// The section being copied.
    pub section: Section,
    /// Records of it copied so far (by this run and any run it resumed).
    pub copied: u64,
    /// Records the section holds.
    pub total: u64,
    /// Records copied by this run, every section.
    pub run_copied: u64,
    /// Since this run began.
    pub elapsed: Duration,
}

impl Progress {
    /// Records copied per second by this run.
    #[must_use]
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 { self.run_copied as f64 / seconds } else { 0.0 }
    }
}

/// What a move did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MoveReport {
    /// The log's head, in the source and now in the target.
    pub head: u64,
    /// Records each section holds, all of them copied.
    pub sections: BTreeMap<Section, u64>,
    /// Where this run began when it resumed an unfinished move.
    pub resumed_from: Option<Checkpoint>,
    /// Records copied by this run.
    pub copied: u64,
    /// How long this run took.
    pub took: Duration,
}

/// Copies every section of `source` into `target`, calling `progress` after each page.
///
/// The target must be empty, or hold an unfinished move of the same source when
/// `options.resume` is set; the source must not be written to while it runs (a resumed
/// move checks that the source's log head is where it was when the move began, and every
/// run checks it again at the end).
///
/// # Errors
/// `Conflict` when the target holds data, holds an unfinished move that `options` does not
/// resume, or the source changed; `Invalid` when the source's log cannot be read whole
/// (an event of a kind this version does not know); what either store answers otherwise.
/// After an error the target keeps every page written so far, and the move resumes.
pub async fn move_store(
    source: &dyn StoreExport,
    target: &dyn StoreImport,
    options: MoveOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<MoveReport> {
    let began = Instant::now();
    let page = options.page.max(1);
    let head = source.head().await?;
    let digest = source_digest(source).await?;
    let mark = Checkpoint::start(head).with_digest(digest.clone());
    let (mut checkpoint, resumed_from) = match target.import_state().await? {
        ImportState::Empty => {
            target.import(&Records::empty(Section::Conversations), &mark).await?;
            (mark.clone(), None)
        }
        ImportState::Unfinished(stopped) if options.resume => {
            if !stopped.same_source(&mark) {
                return Err(Error::conflict(format!(
                    "the source changed since the move began (its log was at {}, it is at \
                     {head}; or its blocks, last-seen times, revocations or consumers \
                     changed): move again into an empty target",
                    stopped.source_head
                )));
            }
            (stopped.clone(), Some(stopped))
        }
        ImportState::Unfinished(_) => {
            return Err(Error::conflict(
                "the target holds a move that stopped halfway: resume it, or start again on an \
                 empty target",
            ));
        }
        ImportState::Holds => {
            return Err(Error::conflict(
                "the target already holds messaging data: a move needs an empty one",
            ));
        }
    };
    let mut sections = BTreeMap::new();
    let mut run_copied = 0;
    for section in Section::ALL {
        let total = source.count(section).await?;
        sections.insert(section, total);
        if section < checkpoint.section {
            continue;
        }
        if section > checkpoint.section {
            checkpoint = Checkpoint::at(head, section, After::Start, 0).with_digest(&digest);
        }
        loop {
            let records = source.export(section, &checkpoint.after, page).await?;
            let Some(last) = records.last_key() else { break };
            if let Records::Log(entries) = &records {
                check_dense(
                    &checkpoint.after,
                    entries.iter().map(crate::model::LogEntry::position),
                )?;
            }
            let count = records.len() as u64;
            let next =
                Checkpoint::at(head, section, last, checkpoint.copied + count).with_digest(&digest);
            target.import(&records, &next).await?;
            checkpoint = next;
            run_copied += count;
            progress(&Progress {
                section,
                copied: checkpoint.copied,
                total,
                run_copied,
                elapsed: began.elapsed(),
            });
        }
        if section == Section::Log && checkpoint.after != After::Position(head) && head > 0 {
            let read = match checkpoint.after {
                After::Position(last) => last,
                _ => 0,
            };
            return Err(Error::invalid(format!(
                "the source's log goes on to {head} but this version reads it only to {read} \
                 (events of a kind it does not know?): move with the version that wrote them"
            )));
        }
        if checkpoint.copied != total {
            return Err(Error::conflict(format!(
                "the source's {} changed during the move ({} copied, {total} counted): move \
                 again into an empty target",
                section.name(),
                checkpoint.copied
            )));
        }
    }
    if source.head().await? != head || source_digest(source).await? != digest {
        return Err(Error::conflict(
            "the source was written to during the move: move again into an empty target",
        ));
    }
    target.finish_import(head).await?;
    Ok(MoveReport { head, sections, resumed_from, copied: run_copied, took: began.elapsed() })
}

/// A digest of what a source holds that no event records a change of (blocks, last-seen
/// times, revocations, consumers' positions), with every section's count: with the log's
/// head, what tells a source written to since a move began ([`Checkpoint::source_digest`]).
/// The same for the same contents whatever the page size; stable within one build (the
/// standard library's hasher), so a move resumed by another build may see a change that is
/// not one, and says so.
///
/// # Errors
/// What the source answers when a read fails.
pub async fn source_digest(source: &dyn StoreExport) -> Result<String> {
    const PAGE: usize = 1_000;
    let mut hasher = DefaultHasher::new();
    for section in Section::ALL {
        source.count(section).await?.hash(&mut hasher);
    }
    for section in [Section::Blocks, Section::LastSeen, Section::Revocations, Section::Consumers] {
        let mut after = After::Start;
        loop {
            let records = source.export(section, &after, PAGE).await?;
            let Some(last) = records.last_key() else { break };
            match &records {
                Records::Blocks(v) => {
                    v.iter().for_each(|r| (r.blocker, r.blocked).hash(&mut hasher));
                }
                Records::LastSeen(v) | Records::Revocations(v) => {
                    v.iter().for_each(|r| (r.user_id, r.at.as_millis()).hash(&mut hasher));
                }
                Records::Consumers(v) => {
                    v.iter().for_each(|r| (&r.name, r.position).hash(&mut hasher));
                }
                _ => {}
            }
            after = last;
        }
    }
    Ok(format!("{:016x}", hasher.finish()))
}

/// Positions must follow `after` without a gap: a missing one is an event the source could
/// not read, which a move must not drop.
fn check_dense(after: &After, positions: impl Iterator<Item = u64>) -> Result<()> {
    let first = match after {
        After::Position(position) => position + 1,
        _ => 1,
    };
    for (expected, position) in (first..).zip(positions) {
        if position != expected {
            return Err(Error::invalid(format!(
                "the source's log has no readable event at position {expected} (an event of a \
                 kind this version does not know?): move with the version that wrote it"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_in_the_log_stops_the_move() {
        assert!(check_dense(&After::Start, [1, 2, 3].into_iter()).is_ok());
        assert!(check_dense(&After::Position(3), [4, 5].into_iter()).is_ok());
        let error = check_dense(&After::Position(3), [4, 6].into_iter()).unwrap_err();
        assert!(error.to_string().contains("position 5"), "{error}");
        assert!(check_dense(&After::Start, [2].into_iter()).is_err());
    }
}
