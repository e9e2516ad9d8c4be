//! The store conformance cases, one concern per module. Each case is a `pub async fn`
//! taking a fresh [`Fixture`](crate::testkit::Fixture) and panicking on failure; the
//! [`conformance_tests!`](crate::conformance_tests) macro stamps one test per case.

pub mod blocks;
pub mod bounds;
pub mod consumers;
pub mod conversations;
pub mod feed;
pub mod history;
pub mod listing;
pub mod messages;
pub mod presence;
pub mod reactions;
pub mod receipts;
pub mod revocation;
pub mod rich;
pub mod search;
pub mod service;
pub mod settings;
pub mod sync;
pub mod validation;

pub use blocks::*;
pub use bounds::*;
pub use consumers::*;
pub use conversations::*;
pub use feed::*;
pub use history::*;
pub use listing::*;
pub use messages::*;
pub use presence::*;
pub use reactions::*;
pub use receipts::*;
pub use revocation::*;
pub use rich::*;
pub use search::*;
pub use service::*;
pub use settings::*;
pub use sync::*;
pub use validation::*;
