//! The browser tags (`/tag.js`, `/conversion.js`) and, when `EXATOM_DEMO_SITE` names a
//! site, the demo site under `/demo/`. Every file is embedded in the binary at build time
//! (`tags/dist`, `tags/demo`), so the collector has nothing to find on disk; each is
//! gzipped once at start and served with a strong `ETag` and `Cache-Control`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::Write;

/// The event tag as served: built from `tags/src` by `tags/build.sh`.
pub const TAG_JS: &str = include_str!("../../../tags/dist/tag.js");
/// The conversion tag as served.
pub const CONVERSION_JS: &str = include_str!("../../../tags/dist/conversion.js");

/// Demo pages by file name; `{{SITE}}` is replaced with the demo site's code.
const DEMO: [(&str, &str); 14] = [
    ("index.html", include_str!("../../../tags/demo/index.html")),
    ("form.html", include_str!("../../../tags/demo/form.html")),
    (
        "thanks.html",
        include_str!("../../../tags/demo/thanks.html"),
    ),
    (
        "privacy.html",
        include_str!("../../../tags/demo/privacy.html"),
    ),
    (
        "itemprop.html",
        include_str!("../../../tags/demo/itemprop.html"),
    ),
    ("late.html", include_str!("../../../tags/demo/late.html")),
    (
        "replay.html",
        include_str!("../../../tags/demo/replay.html"),
    ),
    ("spa.html", include_str!("../../../tags/demo/spa.html")),
    (
        "errors.html",
        include_str!("../../../tags/demo/errors.html"),
    ),
    (
        "behaviour.html",
        include_str!("../../../tags/demo/behaviour.html"),
    ),
    (
        "broken.html",
        include_str!("../../../tags/demo/broken.html"),
    ),
    ("flood.html", include_str!("../../../tags/demo/flood.html")),
    ("widget.js", include_str!("../../../tags/demo/widget.js")),
    ("demo.css", include_str!("../../../tags/demo/demo.css")),
];

/// Browsers revalidate the tags with their ETag every five minutes, so a new version
/// reaches every site within minutes of a deploy.
const TAG_CACHE: &str = "public, max-age=300";
const DEMO_CACHE: &str = "no-cache";

/// One file ready to serve, plain and gzipped, each with its own ETag.
#[derive(Debug, Clone)]
pub struct Asset {
    content_type: &'static str,
    cache_control: &'static str,
    plain: Bytes,
    gzip: Bytes,
    etag: String,
}

impl Asset {
    pub fn new(content_type: &'static str, cache_control: &'static str, body: Vec<u8>) -> Self {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder
            .write_all(&body)
            .expect("gzip into memory cannot fail");
        let gzip = encoder.finish().expect("gzip into memory cannot fail");
        let etag = hex::encode(&Sha256::digest(&body)[..8]);
        Asset {
            content_type,
            cache_control,
            plain: body.into(),
            gzip: gzip.into(),
            etag,
        }
    }

    /// Size of the gzipped file in bytes (what a browser downloads).
    pub fn gzipped_len(&self) -> usize {
        self.gzip.len()
    }

    /// The answer to a GET: 304 when the client's copy is current, gzip when accepted.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let gzip = accepts_gzip(
            request
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        );
        // Two representations, two strong ETags.
        let etag = if gzip {
            format!("\"{}-gz\"", self.etag)
        } else {
            format!("\"{}\"", self.etag)
        };
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| etag_matches(v, &etag));
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let body = if gzip { &self.gzip } else { &self.plain };
            let mut r = body.clone().into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            if gzip {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            r
        };
        let h = response.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(self.cache_control),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        h.insert(
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex is a valid header value"),
        );
        // Sites that isolate themselves (COEP) may still load the tags.
        h.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("cross-origin"),
        );
        response
    }
}

/// Whether an `Accept-Encoding` value allows gzip (`gzip` or `*`, with a q-value above 0).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .find_map(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        (coding == "gzip" || coding == "*") && q > 0.0
    })
}

/// `If-None-Match` against our ETag, with the weak comparison RFC 9110 asks for.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Reads `demo_site` from the configuration: empty (no demo) or a valid site code, since
/// it is written into the demo's HTML.
pub fn demo_site<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let site = exatom_core::config::string_or_number(d)?;
    if site.is_empty() || exatom_edge::batch::valid_site_code(&site) {
        Ok(site)
    } else {
        Err(serde::de::Error::custom(format!(
            "EXATOM_DEMO_SITE `{site}` is not a site code ([A-Za-z0-9_-]{{2,32}}); leave it empty to serve no demo"
        )))
    }
}

/// The demo pages for `site`: its tag on every page, conversion tag `<site>1`.
pub fn demo_pages(site: &str) -> HashMap<&'static str, Asset> {
    DEMO.iter()
        .map(|(name, text)| {
            let content_type = match name.rsplit('.').next() {
                Some("css") => "text/css; charset=utf-8",
                Some("js") => "application/javascript; charset=utf-8",
                _ => "text/html; charset=utf-8",
            };
            let body = text.replace("{{SITE}}", site).into_bytes();
            (*name, Asset::new(content_type, DEMO_CACHE, body))
        })
        .collect()
}

#[derive(Deserialize)]
struct DemoFile {
    file: String,
}

/// Routes for the tags, plus the demo under `/demo/` when `demo_site` is not empty; they
/// need no state, so they merge into any router.
pub fn routes<S: Clone + Send + Sync + 'static>(demo_site: &str) -> Router<S> {
    let js = "application/javascript; charset=utf-8";
    let tag = Arc::new(Asset::new(js, TAG_CACHE, TAG_JS.into()));
    let conversion = Arc::new(Asset::new(js, TAG_CACHE, CONVERSION_JS.into()));
    let router = Router::new()
        .route(
            "/tag.js",
            get(move |h: HeaderMap| async move { tag.respond(&h) }),
        )
        .route(
            "/conversion.js",
            get(move |h: HeaderMap| async move { conversion.respond(&h) }),
        );
    if demo_site.is_empty() {
        return router;
    }
    tracing::info!(site = demo_site, "serving the demo site under /demo/");
    let pages = Arc::new(demo_pages(demo_site));
    let page = |name: &'static str| {
        let pages = Arc::clone(&pages);
        get(move |h: HeaderMap| async move { pages[name].respond(&h) })
    };
    let any = {
        let pages = Arc::clone(&pages);
        get(
            move |Path(DemoFile { file }): Path<DemoFile>, h: HeaderMap| async move {
                match pages.get(file.as_str()) {
                    Some(asset) => asset.respond(&h),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            },
        )
    };
    router
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route("/demo/", page("index.html"))
        .route("/demo/{file}", any)
        // The single-page app's routes all load its one page, as an SPA's server does.
        .route("/demo/spa/", page("spa.html"))
        .route("/demo/spa/{*route}", page("spa.html"))
}

#[cfg(test)]
mod tests;
