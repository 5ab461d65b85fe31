//! (being written) Prometheus metrics.
use std::sync::Arc;

use axum::Router;

use crate::context::Context;

pub fn router(_ctx: Arc<Context>) -> Router {
    Router::new()
}
