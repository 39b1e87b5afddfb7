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

/// How a page body written by hand opens: its rows follow, then [`end_page`].
pub(crate) const PAGE_START: &[u8] = b"{\"data\":[";

/// Closes a page body opened with [`PAGE_START`] and its rows, as serialising
/// `{data, next_cursor, meta}` would.
pub(crate) fn end_page<M: Serialize>(
    out: &mut Vec<u8>,
    next_cursor: Option<&str>,
    meta: &M,
) -> serde_json::Result<()> {
    out.extend_from_slice(b"],\"next_cursor\":");
    serde_json::to_writer(&mut *out, &next_cursor)?;
    out.extend_from_slice(b",\"meta\":");
    serde_json::to_writer(&mut *out, meta)?;
    out.push(b'}');
    Ok(())
}
