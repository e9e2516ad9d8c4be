//! Size limits and page sizes: the numbers docs/protocol.md lists, as one settings struct.

/// Limits the service enforces. The defaults are the protocol's.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest message body, in UTF-8 bytes (`too_large` above).
    pub max_body_bytes: usize,
    /// Largest metadata object, serialized (`too_large` above).
    pub max_metadata_bytes: usize,
    /// Largest conversation context (`too_large` above).
    pub max_context_bytes: usize,
    /// Largest `client_msg_id` (`too_large` above).
    pub max_client_msg_id_bytes: usize,
    /// Largest search query (`too_large` above).
    pub max_query_bytes: usize,
    /// History page: default and maximum.
    pub history_page: PageSize,
    /// Conversation list page: default and maximum.
    pub conversations_page: PageSize,
    /// Sync page: default and maximum.
    pub sync_page: PageSize,
    /// Search results: default and maximum.
    pub search_page: PageSize,
    /// A page of blocked users: default and maximum.
    pub blocks_page: PageSize,
    /// Most user ids one presence query may name.
    pub max_presence_ids: usize,
    /// How long receivers keep a typing indicator.
    pub typing_expires_ms: u64,
    /// Capacity of each session's queue of pushed items; overflow marks it lagged.
    pub max_queue_frames: usize,
    /// The most a reply page's items may take encoded as JSON (default 1 MiB): a page that
    /// would pass it holds fewer items (at least one) and says there is more.
    pub reply_budget_bytes: usize,
    /// The most users one user may block (default 10,000); `block` beyond it: `Conflict`.
    pub max_blocks_per_user: usize,
    /// The most attachments on one message (default 10; `bad_request` above).
    pub max_attachments: usize,
    /// The most distinct emoji one user may put on one message (default 20; `conflict`
    /// above).
    pub max_reactions_per_user: usize,
}

/// A page size: what is used when none is asked for, and the largest allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize {
    /// Used when the request names none.
    pub default: usize,
    /// Larger requests are refused (never clamped).
    pub max: usize,
}

impl PageSize {
    /// A page size.
    #[must_use]
    pub const fn new(default: usize, max: usize) -> Self {
        Self { default, max }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8192,
            max_metadata_bytes: 4096,
            max_context_bytes: 128,
            max_client_msg_id_bytes: 64,
            max_query_bytes: 256,
            history_page: PageSize::new(50, 100),
            conversations_page: PageSize::new(20, 100),
            sync_page: PageSize::new(200, 500),
            search_page: PageSize::new(20, 50),
            blocks_page: PageSize::new(50, 100),
            max_presence_ids: 100,
            typing_expires_ms: 6000,
            max_queue_frames: 1024,
            reply_budget_bytes: 1_048_576,
            max_blocks_per_user: 10_000,
            max_attachments: 10,
            max_reactions_per_user: 20,
        }
    }
}

impl Limits {
    /// Sets the largest body.
    #[must_use]
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets the session queue capacity.
    #[must_use]
    pub fn with_max_queue_frames(mut self, frames: usize) -> Self {
        self.max_queue_frames = frames.max(1);
        self
    }

    /// Sets the byte budget of a reply page (at least 1).
    #[must_use]
    pub fn with_reply_budget_bytes(mut self, bytes: usize) -> Self {
        self.reply_budget_bytes = bytes.max(1);
        self
    }

    /// Sets the most users one user may block.
    #[must_use]
    pub fn with_max_blocks_per_user(mut self, blocks: usize) -> Self {
        self.max_blocks_per_user = blocks;
        self
    }

    /// Sets the typing indicator lifetime.
    #[must_use]
    pub fn with_typing_expires_ms(mut self, ms: u64) -> Self {
        self.typing_expires_ms = ms;
        self
    }
}
