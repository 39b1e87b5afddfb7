//! Completes problem documents with what only the request knows (`instance`,
//! `request_id`), and turns the bodiless errors axum produces itself (405, 404 from the
//! router) into problem documents too, so no error leaves marketd in another shape.

use axum::extract::Request;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::request_id::RequestId;
use super::wrap::{Wrap, WrapLayer};
use crate::error::{Problem, ProblemType};

pub fn layer() -> WrapLayer<ProblemDetails> {
    WrapLayer::new(ProblemDetails)
}

#[derive(Debug, Clone, Copy)]
pub struct ProblemDetails;

/// What a problem document needs from its request, held as cheap handles: most answers
/// are not problems, so the path is copied out only when one is.
#[derive(Debug)]
pub struct Origin {
    uri: Uri,
    request_id: Option<RequestId>,
}

impl Wrap for ProblemDetails {
    type Carry = Origin;

    fn before(&self, request: &mut Request) -> Result<Origin, Response> {
        Ok(Origin {
            uri: request.uri().clone(),
            request_id: request.extensions().get::<RequestId>().cloned(),
        })
    }

    fn after(origin: Origin, response: Response) -> Response {
        complete(origin, response)
    }
}

fn complete(origin: Origin, response: Response) -> Response {
    let status = response.status();
    let problem = match response.extensions().get::<Problem>() {
        Some(problem) => problem.clone(),
        None if (status.is_client_error() || status.is_server_error())
            && !response.headers().contains_key(header::CONTENT_TYPE) =>
        {
            generic_problem(status)
        }
        None => return response,
    };
    let problem = Problem {
        // The path alone: echoing the query could reflect secrets a client mistakenly sent.
        instance: origin.uri.path().to_owned(),
        request_id: origin
            .request_id
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default(),
        ..problem
    };
    let (mut parts, _) = response.into_parts();
    let rendered = problem.into_response_with(None);
    parts.headers.remove(header::CONTENT_LENGTH);
    let (rendered_parts, body) = rendered.into_parts();
    parts.headers.extend(rendered_parts.headers);
    parts.extensions.extend(rendered_parts.extensions);
    Response::from_parts(parts, body).into_response()
}

fn generic_problem(status: StatusCode) -> Problem {
    let problem_type = match status {
        StatusCode::NOT_FOUND => ProblemType::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemType::MethodNotAllowed,
        StatusCode::SERVICE_UNAVAILABLE => ProblemType::ServiceUnavailable,
        s if s.is_server_error() => ProblemType::InternalError,
        _ => ProblemType::MalformedQuery,
    };
    let detail = match problem_type {
        ProblemType::MethodNotAllowed => {
            "this method is not allowed here; see the Allow header".to_owned()
        }
        ProblemType::NotFound => "no route matches this path".to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    };
    let mut problem = Problem::new(problem_type, detail);
    problem.status = status.as_u16();
    problem
}
