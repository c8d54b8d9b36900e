//! What the collector's tests share: a collector process, browser-like batches, the raw
//! topic read back with partitions and offsets, and raw HTTP for what a client library will
//! not send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use exatom_core::avro::raw_event_codec;
use exatom_core::model::RawEvent;
use exatom_e2e::{sites_file, wait_until, Service, Stack};
use serde_json::{json, Value};

/// A collector process of one test, on its own port.
pub(crate) struct Collector {
    pub service: Service,
    pub base: String,
    pub port: u16,
}

impl Collector {
    /// Starts a collector for `sites` and waits until it is ready. The rate limit is lifted
    /// (every request of a test comes from 127.0.0.1) unless `env` sets it; `env` wins.
    pub(crate) async fn start(stack: &Stack, sites: &Path, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut all = vec![
            ("EXATOM_LISTEN", format!("127.0.0.1:{port}")),
            ("EXATOM_SITES_FILE", sites.display().to_string()),
            ("EXATOM_RATE_BURST", "1000000".to_owned()),
            ("EXATOM_RATE_PER_SECOND", "1000000".to_owned()),
        ];
        all.extend(env.iter().cloned());
        let service = Service::start(stack, "collector", &all);
        let collector = Collector {
            service,
            base: format!("http://127.0.0.1:{port}"),
            port,
        };
        let ready = format!("{}/readyz", collector.base);
        wait_until(Duration::from_secs(30), "collector ready", || async {
            reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        collector
    }

    pub(crate) fn events_url(&self) -> String {
        format!("{}/v1/events", self.base)
    }

    /// The value of one sample of `/metrics`, e.g. `name` or `name{label="v"}`; 0 if absent.
    pub(crate) async fn metric(&self, sample: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics answer")
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().expect("a number"))
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A site of its own for one test, so its records can be told apart in the shared topic.
pub(crate) fn new_site(stack: &Stack, test: &str, origins: &[&str]) -> (String, PathBuf) {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let site = format!("C{}", &run[..12]);
    let path = sites_file(
        stack,
        &format!("{test}-{run}"),
        &[(&site, origins, &["T1"])],
    );
    (site, path)
}

pub(crate) fn event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn page_view(id: &str, ts: &str) -> Value {
    json!({"id": id, "type": "page_view", "ts": ts, "page": "https://shop.test/checkout"})
}

/// A form event on the e-mail field carrying `value` as the tag sends it (or a typed text
/// a broken or hostile tag sends instead).
pub(crate) fn form_event(id: &str, ts: &str, seq: i64, value: &str) -> Value {
    json!({"id": id, "type": "form_event", "ts": ts, "page": "https://shop.test/checkout",
           "form": {"name": "checkout", "id": "co", "order": 0}, "event": "input", "seq": seq,
           "field": {"name": "email", "id": "email", "tag": "input", "type": "email", "order": 0,
                     "label": "E-mail"},
           "value": value})
}

pub(crate) fn batch(site: &str, sent_at: &str, events: &[Value]) -> String {
    json!({"site": site, "sent_at": sent_at, "events": events}).to_string()
}

/// One record of `exatom.raw`, its partition, and its bytes.
pub(crate) struct RawRecord {
    pub partition: i32,
    pub key: String,
    pub event: RawEvent,
    pub bytes: Vec<u8>,
}

/// Every record of `exatom.raw` for `site`, in offset order per partition.
pub(crate) fn raw_records(stack: &Stack, site: &str) -> Vec<RawRecord> {
    let codec = raw_event_codec();
    stack
        .topic_log("exatom.raw")
        .into_iter()
        .filter_map(|r| {
            // Other tests may put foreign records on the topic: only ours are decoded.
            let event = codec.decode(&r.value).ok().filter(|e| e.site == site)?;
            Some(RawRecord {
                partition: r.partition,
                key: String::from_utf8_lossy(&r.key).into_owned(),
                event,
                bytes: r.value,
            })
        })
        .collect()
}

/// Sends `head` on a fresh connection, then `tail` after `pause` (nothing if `None`:
/// the write side is closed instead), and returns the status and body of the answer.
pub(crate) fn raw_http(
    port: u16,
    head: &[u8],
    pause: Duration,
    tail: Option<&[u8]>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Not a performance bound: a collector that never answers fails here instead of hanging.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head).unwrap();
    std::thread::sleep(pause);
    match tail {
        Some(tail) => stream.write_all(tail).unwrap(),
        None => stream.shutdown(std::net::Shutdown::Write).unwrap(),
    }
    read_response(&mut stream)
}

/// Reads one HTTP/1.1 response with a `Content-Length` from `stream`.
pub(crate) fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("an answer, not a hang");
        assert_eq!(n, 1, "connection closed before the headers ended");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// An HTTP/1.1 request head for `POST /v1/events` announcing `length` body bytes.
pub(crate) fn post_head(length: usize) -> Vec<u8> {
    format!(
        "POST /v1/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// Sends a signal to a process (`kill -<sig> <pid>`).
pub(crate) fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}
