//! Parsing of parameters shared by several resources, each failure a field error.

use marketd_domain::{Symbol, parse_timestamp};

use crate::error::{ApiError, FieldError};

pub fn symbol(field: &str, raw: &str) -> Result<Symbol, FieldError> {
    Symbol::parse(raw).map_err(|e| FieldError {
        field: field.to_owned(),
        message: e.to_string(),
    })
}

pub fn timestamp(field: &str, raw: &str) -> Result<i64, FieldError> {
    parse_timestamp(raw).map_err(|e| FieldError {
        field: field.to_owned(),
        message: e.to_string(),
    })
}

/// A comma-separated `symbols` list: normalised, duplicates dropped, at most `max`; every
/// bad entry is reported as `symbols[i]`.
pub fn symbol_list(raw: &str, max: usize) -> Result<Vec<String>, ApiError> {
    let mut symbols: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for (i, part) in raw.split(',').enumerate() {
        match symbol(&format!("symbols[{i}]"), part.trim()) {
            Ok(s) if !symbols.iter().any(|seen| seen == s.as_str()) => symbols.push(s.to_string()),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if symbols.len() > max {
        errors.push(FieldError {
            field: "symbols".into(),
            message: format!("at most {max} symbols per request"),
        });
    }
    if errors.is_empty() {
        Ok(symbols)
    } else {
        Err(ApiError::Validation(errors))
    }
}
