//! (being written) SRS-compatible HTTP API.
use std::sync::Arc;

use axum::Router;

use crate::context::Context;

pub fn router(_ctx: Arc<Context>) -> Router {
    Router::new()
}
