//! What operators rely on: HTTP/2 cleartext and keep-alive, the site registry reloaded on
//! SIGHUP, and a SIGTERM that lets the request in flight finish before the process exits.

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use exatom_e2e::{rfc3339, wait_until, Stack};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

use crate::support::{
    batch, event_id, new_site, page_view, post_head, raw_records, read_response, signal, Collector,
};

#[tokio::test]
async fn http2_cleartext_and_keep_alive_both_carry_batches() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "h2", &["http://shop.test"]);
    let collector = Collector::start(&stack, &sites, &[]).await;
    let mut sent = HashSet::new();

    // HTTP/2 with prior knowledge (h2c), as a proxy in front of the collector speaks it:
    // three streams on one connection.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", collector.port))
        .await
        .unwrap();
    let (mut h2, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    for _ in 0..3 {
        let now = rfc3339(Utc::now());
        let id = event_id();
        let request = hyper::Request::post(collector.events_url())
            .body(Full::new(Bytes::from(batch(
                &site,
                &now,
                &[page_view(&id, &now)],
            ))))
            .unwrap();
        let response = h2.send_request(request).await.unwrap();
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        assert_eq!(response.status(), 202);
        sent.insert(id);
    }

    // HTTP/1.1: three requests, one after the other, on one connection.
    let mut stream = TcpStream::connect(("127.0.0.1", collector.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    for _ in 0..3 {
        let now = rfc3339(Utc::now());
        let id = event_id();
        let body = batch(&site, &now, &[page_view(&id, &now)]);
        stream
            .write_all(&[post_head(body.len()), body.into_bytes()].concat())
            .unwrap();
        let (status, answer) = read_response(&mut stream);
        assert_eq!(status, 202, "{answer}");
        sent.insert(id);
    }

    let stored: HashSet<String> = raw_records(&stack, &site)
        .into_iter()
        .map(|r| r.event.event_id)
        .collect();
    assert_eq!(stored, sent);
}

#[tokio::test]
async fn sighup_reloads_the_site_registry_and_sigterm_drains_the_request_in_flight() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "ops", &["http://shop.test"]);
    let mut collector = Collector::start(&stack, &sites, &[]).await;
    let client = reqwest::Client::new();
    let send = |site: String| {
        let now = rfc3339(Utc::now());
        let request = client.post(collector.events_url()).body(batch(
            &site,
            &now,
            &[page_view(&event_id(), &now)],
        ));
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // A new site: unknown until the registry is reloaded. The file's modification time
    // is put back, so only the signal can make the collector notice.
    let newcomer = format!("N{}", &site[1..]);
    assert_eq!(send(newcomer.clone()).await, 403);
    let modified = std::fs::metadata(&sites).unwrap().modified().unwrap();
    let fresh = sites.with_extension("new");
    std::fs::write(
        &fresh,
        format!(
            "{}\n[sites.{newcomer}]\norigins = []\n",
            std::fs::read_to_string(&sites).unwrap()
        ),
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&fresh)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    std::fs::rename(&fresh, &sites).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        send(newcomer.clone()).await,
        403,
        "no reload without a reason"
    );
    signal(collector.service.pid(), "HUP");
    wait_until(Duration::from_secs(10), "registry reloaded", || {
        let attempt = send(newcomer.clone());
        async move { attempt.await == 202 }
    })
    .await;
    assert_eq!(
        collector
            .metric("exatom_collector_site_registry_reloads_total{result=\"ok\"}")
            .await,
        1.0
    );

    // SIGTERM while a request is half sent: it is answered, then the process exits cleanly.
    let now = rfc3339(Utc::now());
    let id = event_id();
    let body = batch(&site, &now, &[page_view(&id, &now)]).into_bytes();
    let mut stream = TcpStream::connect(("127.0.0.1", collector.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(&[post_head(body.len()), body[..30].to_vec()].concat())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(collector.service.pid(), "TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        collector.service.is_running(),
        "waits for the request in flight"
    );
    stream.write_all(&body[30..]).unwrap();
    let (status, answer) = read_response(&mut stream);
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 1);
    drop(stream);
    assert!(
        collector.service.stop(),
        "exits with success after the drain"
    );
    let stored: Vec<String> = raw_records(&stack, &site)
        .into_iter()
        .map(|r| r.event.event_id)
        .collect();
    assert!(
        stored.contains(&id),
        "the drained request's event is stored"
    );
}
