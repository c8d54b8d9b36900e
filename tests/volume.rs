//! The whole chain under volume, with real processes: some 200 000 events of visitor
//! journeys go in over HTTP while the anonymizer is down, so it restarts in a backlog of
//! more than a hundred thousand records (where a restarted consumer once read nothing for
//! minutes); the sessionizer is killed and restarted while it drains. At the end every event
//! is stored once, every journey is one session, and the views hold the figures the journeys
//! were drawn to give. No timing is asserted but liveness: a restarted stage must make
//! progress within a bound far above what it needs.

use std::time::{Duration, Instant};

use exatom_benches::journeys::{journey, seeded, Expected, Journey};
use exatom_e2e::{metric, poll_until, send_journeys, sites_file, wait_until, Pipeline, Stack};

/// Journeys of about 12.5 events: ~210 000 events.
const JOURNEYS: u64 = 17_000;
/// Requests in flight at once.
const SENDERS: usize = 16;

/// Sessions close 90 s after their last arrival, and no rate limit (every journey has its
/// own address anyway). The lateness must outlast the anonymizer's outage: a journey whose
/// thank-you batch is held back in `exatom.raw` by the dead anonymizer, while the
/// sessionizer's idle partitions follow the clock, would otherwise be a late event and a
/// second session (seen with 2 s: 13 journeys of 17 000).
fn settings() -> Vec<(&'static str, String)> {
    vec![
        ("EXATOM_LATENESS_MS", "90000".into()),
        ("EXATOM_IDLE_MARGIN_MS", "1000".into()),
        ("EXATOM_RATE_BURST", "100000".into()),
    ]
}

async fn consumed(port: u16, topic: &str) -> f64 {
    metric(
        &format!("http://127.0.0.1:{port}/metrics"),
        &format!("exatom_consumer_records_total{{topic=\"{topic}\"}}"),
    )
    .await
}

#[tokio::test]
async fn two_hundred_thousand_events_are_each_counted_once_through_restarts() {
    let stack = Stack::from_env();
    let site = format!("VOL{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let tag = format!("{site}1");
    let sites = sites_file(&stack, "volume", &[(&site, &[], &[tag.as_str()])]);
    let mut pipeline = Pipeline::start(&stack, &sites, &settings()).await;
    let url = format!("{}/v1/events", pipeline.collector_url);

    // Two hours ago: every session is closed by the time the stream has been read.
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    let mut rng = seeded(20_261_202);
    let mut expected = Expected::default();
    let journeys: Vec<Journey> = (0..JOURNEYS)
        .map(|n| {
            let j = journey(
                &site,
                n,
                &mut rng,
                start + chrono::Duration::milliseconds(n as i64),
            );
            expected.add(&j);
            j
        })
        .collect();
    let (first, rest) = journeys.split_at(journeys.len() * 2 / 5);

    let sending = Instant::now();
    send_journeys(&url, &site, first.to_vec(), SENDERS).await;
    // The anonymizer dies mid-stream; the rest piles up in exatom.raw behind it.
    pipeline.service("anonymizer").kill();
    send_journeys(&url, &site, rest.to_vec(), SENDERS).await;
    let sent = sending.elapsed();

    let anonymizer_port = pipeline.admin_ports["anonymizer"];
    pipeline.restart(&stack, "anonymizer", &settings());
    let restarted = Instant::now();
    wait_until(
        Duration::from_secs(90),
        "the restarted anonymizer reads its backlog",
        || async { consumed(anonymizer_port, "exatom.raw").await > 0.0 },
    )
    .await;
    let resumed = restarted.elapsed();

    // The sessionizer dies while it drains, once the anonymizer has moved a good part.
    let sessionizer_port = pipeline.admin_ports["sessionizer"];
    wait_until(
        Duration::from_secs(600),
        "the anonymizer moves 50 000 records",
        || async { consumed(anonymizer_port, "exatom.raw").await > 50_000.0 },
    )
    .await;
    pipeline.kill_and_restart(&stack, "sessionizer", &settings());
    wait_until(
        Duration::from_secs(90),
        "the restarted sessionizer reads",
        || async { consumed(sessionizer_port, "exatom.anon").await > 0.0 },
    )
    .await;

    let done = poll_until(Duration::from_secs(20 * 60), || async {
        let closed = stack
            .query(&format!(
                "SELECT count() FROM exatom.events FINAL WHERE site = '{site}' AND version = 2"
            ))
            .await;
        closed.trim() == expected.events.to_string()
    })
    .await;
    let drained = restarted.elapsed();
    eprintln!(
        "volume: {} events ({} journeys) sent in {:.1} s; anonymizer resumed after {:.1} s; \
         every session closed and stored {:.1} s after its restart",
        expected.events,
        expected.journeys,
        sent.as_secs_f64(),
        resumed.as_secs_f64(),
        drained.as_secs_f64()
    );
    let events = stack
        .query(&format!(
            "SELECT count(), uniqExact(event_id), uniqExact(session_id), uniqExact(visitor_id) \
             FROM exatom.events FINAL WHERE site = '{site}'"
        ))
        .await;
    let j = expected.journeys;
    assert!(done, "not every event was stored closed: {events}");
    assert_eq!(
        events.trim(),
        format!("{0}\t{0}\t{j}\t{j}", expected.events)
    );
    let sessions = stack
        .query(&format!(
            "SELECT count(), sum(events), sum(converted), sum(revenue) FROM exatom.sessions FINAL WHERE site = '{site}'"
        ))
        .await;
    let c = expected.conversions;
    assert_eq!(
        sessions.trim(),
        format!("{j}\t{}\t{c}\t{}", expected.events, 25 * c)
    );

    // The aggregator's views: views, starts and conversions as drawn, revenue of every
    // conversion. The aggregator recomputes one rollup after another for each batch, so the
    // views settle together only once its last batch is through.
    let form = format!(
        "SELECT sum(views), sum(starts), sum(conversions) FROM exatom.v_form_daily WHERE site = '{site}'"
    );
    let revenue = format!(
        "SELECT sum(conversions), sum(revenue) FROM exatom.v_conversions_daily WHERE site = '{site}'"
    );
    // Clicks and script errors: every one of them in the heatmap and the errors view.
    let behaviour = format!(
        "SELECT (SELECT sum(clicks) FROM exatom.v_heatmap_daily WHERE site = '{site}'), \
         (SELECT sum(errors) FROM exatom.v_errors_daily WHERE site = '{site}')"
    );
    let figures = || async {
        format!(
            "{}\t{}\t{}",
            stack.query(&form).await.trim(),
            stack.query(&revenue).await.trim(),
            stack.query(&behaviour).await.trim()
        )
    };
    let want = format!(
        "{j}\t{}\t{c}\t{c}\t{}\t{}\t{}",
        expected.starts,
        25 * c,
        expected.clicks,
        expected.script_errors
    );
    let settled = poll_until(Duration::from_secs(180), || async {
        figures().await == want
    })
    .await;
    assert!(settled, "{} != {want}", figures().await);

    // Privacy at volume: every stored transaction id is keyed, none is an order number.
    let transactions = stack
        .query(&format!(
            "SELECT count(), countIf(startsWith(transaction_id, 'v2-') AND length(transaction_id) = 35), \
             countIf(transaction_id LIKE '%T-%') FROM exatom.conversions FINAL WHERE site = '{site}'"
        ))
        .await;
    assert_eq!(transactions.trim(), format!("{c}\t{c}\t0"));

    assert!(
        pipeline.stop().is_empty(),
        "every service drains and exits cleanly"
    );
}
