//! A recording reverse proxy between the browser and the collector: every request the
//! browser makes (pages, tags, event batches) passes through it byte for byte and is kept,
//! so a test can read exactly what left the browser — the bodies the collector received.

use std::sync::{Arc, Mutex, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

/// One request as the browser sent it, and the status it got.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub method: String,
    /// Path and query, as requested.
    pub target: String,
    pub body: Bytes,
    /// 502 when the collector could not be reached.
    pub status: u16,
    pub response: Bytes,
}

impl Exchange {
    /// The event batch this request carried, if it was one.
    pub(crate) fn batch(&self) -> Option<Value> {
        (self.method == "POST" && self.target == "/v1/events")
            .then(|| serde_json::from_slice(&self.body).ok())
            .flatten()
    }
}

#[derive(Default)]
struct Shared {
    upstream: RwLock<String>,
    log: Mutex<Vec<Exchange>>,
    client: reqwest::Client,
}

/// The proxy, listening on 127.0.0.1 until dropped.
pub(crate) struct Recorder {
    /// `http://127.0.0.1:<port>`: the origin the browser sees.
    pub origin: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

// Hop-by-hop headers and those the proxy recomputes.
const SKIPPED: [&str; 6] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    // Asked of the collector in plain text, so the test reads what it serves.
    "accept-encoding",
];

impl Recorder {
    /// Listens now; forwards once [`forward_to`](Self::forward_to) names the collector.
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Recorder {
            origin,
            shared,
            task,
        }
    }

    pub(crate) fn forward_to(&self, collector_url: &str) {
        *self.shared.upstream.write().unwrap() = collector_url.to_owned();
    }

    /// Every request so far, in arrival order.
    pub(crate) fn exchanges(&self) -> Vec<Exchange> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The events of every batch the collector answered with `status`.
    pub(crate) fn events(&self, status: u16) -> Vec<Value> {
        self.exchanges()
            .iter()
            .filter(|x| x.status == status)
            .filter_map(Exchange::batch)
            .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let url = format!("{}{target}", shared.upstream.read().unwrap());
    let mut upstream = shared
        .client
        .request(parts.method.clone(), url)
        .body(body.clone());
    for (name, value) in &parts.headers {
        if !SKIPPED.contains(&name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let (status, headers, answer) = match upstream.send().await {
        Ok(r) => {
            let headers: Vec<(HeaderName, _)> = r
                .headers()
                .iter()
                .filter(|(n, _)| !SKIPPED.contains(&n.as_str()))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            (r.status(), headers, r.bytes().await.unwrap_or_default())
        }
        Err(_) => (
            StatusCode::BAD_GATEWAY,
            Vec::new(),
            Bytes::from_static(b"collector unreachable"),
        ),
    };
    shared.log.lock().unwrap().push(Exchange {
        method: parts.method.to_string(),
        target,
        body,
        status: status.as_u16(),
        response: answer.clone(),
    });
    let mut response = Response::new(Body::from(answer));
    *response.status_mut() = status;
    response.headers_mut().extend(headers);
    response
}
