//! Small wire types shared by several resources.

use marketd_domain::write_rfc3339_ms;
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

/// An instant, serialised as RFC 3339 UTC (`2024-01-01T00:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2024-01-01T00:00:00Z")]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::with_capacity(24);
        write_rfc3339_ms(&mut buf, self.0);
        serializer.serialize_str(std::str::from_utf8(&buf).unwrap_or_default())
    }
}

/// `{"data": …}` for single objects.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataEnvelope<T> {
    pub data: T,
}
