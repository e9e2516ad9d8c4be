//! Typed identifiers.
//!
//! Users, conversations and messages are all UUIDs on the wire; separate newtypes keep a
//! conversation id from ever being passed where a user id is expected. Ids the library
//! creates are UUIDv7, so they sort by creation time and index well (B-trees append at the
//! right edge instead of splitting pages at random).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;

macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        // No `Default`: a default that is a fresh random id would surprise anyone deriving
        // `Default` on a struct holding one; `new()` says what it does.
        #[allow(clippy::new_without_default)]
        impl $name {
            /// A new time-ordered (v7) id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes of the UUID, as stores keep it.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Rebuilds an id from the 16 bytes a store kept.
            #[must_use]
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }
        }


        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s)
                    .map(Self)
                    .map_err(|_| Error::invalid(concat!($what, " is not a UUID")))
            }
        }
    };
}

uuid_newtype!(
    /// A user, as the host application identifies them (any UUID version).
    UserId,
    "user id"
);
uuid_newtype!(
    /// A conversation between two users.
    ConversationId,
    "conversation id"
);
uuid_newtype!(
    /// One message in a conversation.
    MessageId,
    "message id"
);
uuid_newtype!(
    /// One connection of a user (a user may hold many at once).
    SessionId,
    "session id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_hyphenated() {
        let id = UserId::new();
        let back: UserId = id.to_string().parse().unwrap();
        assert_eq!(id, back);
        assert_eq!(id.to_string().len(), 36);
    }

    #[test]
    fn rejects_non_uuid_with_typed_error() {
        let err = "nope".parse::<ConversationId>().unwrap_err();
        assert_eq!(err.code(), "bad_request");
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b);
    }
}
