//! The NOTIFY channels of a schema.
//!
//! Every channel name starts with the schema's name, so two copies of the library in one
//! database (two schemas) never hear each other. The writer, the listener and the fan-out
//! all take their names from here so that they agree.

/// The NOTIFY channels of one schema.
#[derive(Clone, Debug)]
pub(crate) struct Channels {
    /// The log's new head after each commit.
    pub(crate) log: String,
    /// Typing and presence signals (see `signals.rs`).
    pub(crate) signal: String,
    /// The pair of users of each committed block or unblock (see `blocks.rs`).
    pub(crate) blocks: String,
    /// The user of each committed revocation (see `revocations.rs`).
    pub(crate) revocations: String,
    /// The listener's probes of its own connection (see `feed.rs`).
    pub(crate) probe: String,
}

impl Channels {
    /// The channels of `schema` (a name `schema::validate` accepted).
    pub(crate) fn of(schema: &str) -> Self {
        Self {
            log: format!("{schema}_log"),
            signal: format!("{schema}_signal"),
            blocks: format!("{schema}_blocks"),
            revocations: format!("{schema}_revocations"),
            probe: format!("{schema}_probe"),
        }
    }
}
