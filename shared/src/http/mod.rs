//! HTTP plumbing shared by the API handlers: the request as the handlers see it, responses, and
//! the one place where domain errors become HTTP status codes and problem+json.

pub mod problem;
pub mod request;
pub mod response;

pub use problem::ApiError;
pub use request::ApiRequest;
pub use response::ApiResponse;
