//! Static files, HLS files and FLV VOD under http_server.dir (being written).
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::context::Context;

pub async fn serve(_ctx: Arc<Context>, _req: Request) -> Response {
    StatusCode::NOT_FOUND.into_response()
}
