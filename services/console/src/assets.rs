//! The console's static files, embedded at build time: its own scripts and style, and the
//! pinned uPlot and rrweb-player builds from npm (`assets/vendor`, fetched by `assets/vendor/fetch.sh`), so
//! building the console needs no node.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const FILES: [(&str, &str, &str); 7] = [
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../assets/vendor/uPlot.min.css"),
    ),
    (
        "player.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/player.js"),
    ),
    (
        "rrweb-player.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/vendor/rrweb-player.min.js"),
    ),
    (
        "rrweb-player.min.css",
        "text/css; charset=utf-8",
        include_str!("../assets/vendor/rrweb-player.min.css"),
    ),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
