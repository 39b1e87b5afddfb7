//! Parsing of parameters shared by several resources, each failure a field error.

use marketd_domain::{Symbol, parse_timestamp};

use crate::error::FieldError;

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
