//! Which scope each operation requires, read from the OpenAPI document itself: the
//! `security` an operation declares there is what the auth layer enforces, so the
//! document and the behaviour cannot disagree.

use std::collections::HashMap;

use axum::http::Method;
use marketd_domain::access::Scope;

/// What an operation demands of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// No key needed (probes, the document itself).
    Public,
    /// Any valid key.
    AnyKey,
    Scope(Scope),
}

#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// Path template, then each method's requirement: looked up on every request without
    /// allocating.
    by_path: HashMap<String, Vec<(Method, Requirement)>>,
}

impl Requirements {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Result<Self, String> {
        let value = serde_json::to_value(doc).map_err(|e| e.to_string())?;
        let mut by_path: HashMap<String, Vec<(Method, Requirement)>> = HashMap::new();
        let paths = value
            .get("paths")
            .and_then(|p| p.as_object())
            .ok_or("the document has no paths")?;
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, operation) in item {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                let requirement =
                    requirement_of(operation).map_err(|e| format!("{method} {path}: {e}"))?;
                by_path
                    .entry(path.clone())
                    .or_default()
                    .push((method, requirement));
            }
        }
        Ok(Self { by_path })
    }

    /// The requirement of a matched route; HEAD is answered by the GET handler.
    pub fn get(&self, method: &Method, path: &str) -> Option<Requirement> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.by_path
            .get(path)?
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, requirement)| *requirement)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Method, &str, Requirement)> {
        self.by_path.iter().flat_map(|(path, methods)| {
            methods
                .iter()
                .map(move |(method, requirement)| (method, path.as_str(), *requirement))
        })
    }
}

fn requirement_of(operation: &serde_json::Value) -> Result<Requirement, String> {
    let Some(alternatives) = operation.get("security").and_then(|s| s.as_array()) else {
        return Ok(Requirement::Public);
    };
    let mut scopes = alternatives
        .iter()
        .filter_map(|alt| alt.as_object())
        .flat_map(|alt| alt.values())
        .map(|scopes| {
            scopes
                .as_array()
                .map(|list| list.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>())
                .unwrap_or_default()
        });
    let first = scopes.next().ok_or("declares security without a scheme")?;
    if scopes.any(|other| other != first) {
        return Err("its security schemes require different scopes".into());
    }
    match first.as_slice() {
        [] => Ok(Requirement::AnyKey),
        [one] => one
            .parse()
            .map(Requirement::Scope)
            .map_err(|e| e.to_string()),
        _ => Err("requires more than one scope".into()),
    }
}
