//! Millisecond timestamps.
//!
//! Timestamps are truncated to milliseconds when they are created, here in core, so every
//! store keeps and returns exactly the value the wire shows (`2026-11-21T10:00:00.123Z`).
//! A store that kept microseconds would return values that differ from the ones the
//! writer saw, and equality checks between a pushed event and a later read would fail.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A UTC instant with millisecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time, truncated to milliseconds.
    #[must_use]
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// From milliseconds since the Unix epoch.
    #[must_use]
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// RFC 3339 in UTC with exactly three fractional digits.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("@{}ms", self.0),
        }
    }

    /// Parses an RFC 3339 timestamp; sub-millisecond digits are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Self, Error> {
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Self(dt.timestamp_millis()))
            .map_err(|_| Error::invalid("timestamp is not RFC 3339"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let t = Timestamp::from_millis(1_795_255_200_123);
        assert_eq!(t.to_rfc3339(), "2026-11-21T10:00:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339("2026-11-21T10:00:00.123Z").unwrap(), t);
    }

    #[test]
    fn now_round_trips_through_text() {
        let t = Timestamp::now();
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
    }
}
