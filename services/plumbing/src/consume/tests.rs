//! The loop's commit rule and fault handling against a scripted broker (no Kafka).

use std::collections::VecDeque;
use std::sync::Mutex;

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Timestamp;

use super::*;

/// A broker that hands out scripted polls, then triggers shutdown (and answers the last poll
/// with a fault when `ends_away`); remembers commits.
struct Scripted {
    polls: Mutex<VecDeque<Result<Batch, KafkaError>>>,
    ends_away: bool,
    commit_failures: Mutex<u32>,
    commits: Mutex<Vec<Offsets>>,
    /// Lag samples still to fail (the broker gone).
    unanswered_probes: Mutex<u32>,
    /// Rebalances so far; `rebalance_during` bumps it while the stage handles that poll.
    rebalances: Mutex<u64>,
    shutdown: Shutdown,
}

impl Scripted {
    fn new(polls: Vec<Result<Batch, KafkaError>>, shutdown: &Shutdown) -> Self {
        Scripted {
            polls: Mutex::new(polls.into()),
            ends_away: false,
            commit_failures: Mutex::new(0),
            commits: Mutex::new(Vec::new()),
            unanswered_probes: Mutex::new(0),
            rebalances: Mutex::new(0),
            shutdown: shutdown.clone(),
        }
    }

    fn commits(&self) -> Vec<Offsets> {
        self.commits.lock().unwrap().clone()
    }
}

impl Source for Scripted {
    fn subscribe(&self, _: &[&str]) -> Result<(), KafkaError> {
        Ok(())
    }

    async fn next_batch(&self, _: usize, _: Duration, _: Duration) -> Result<Batch, KafkaError> {
        let next = self.polls.lock().unwrap().pop_front();
        next.unwrap_or_else(|| {
            self.shutdown.trigger();
            if self.ends_away {
                Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::BrokerTransportFailure,
                ))
            } else {
                Ok(Batch::default())
            }
        })
    }

    fn commit(&self, offsets: &Offsets) -> Result<(), KafkaError> {
        let mut failures = self.commit_failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::RequestTimedOut,
            ));
        }
        self.commits.lock().unwrap().push(offsets.clone());
        Ok(())
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        vec![("t".into(), 0), ("t".into(), 1)]
    }

    fn hold(&self, _: bool) -> Result<(), KafkaError> {
        Ok(())
    }

    fn rebalances(&self) -> u64 {
        *self.rebalances.lock().unwrap()
    }

    fn lag(&self) -> Result<Lag, KafkaError> {
        let mut unanswered = self.unanswered_probes.lock().unwrap();
        if *unanswered > 0 {
            *unanswered -= 1;
            return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown));
        }
        Ok(vec![(("t".into(), 0), 5)])
    }
}

fn record(partition: i32, offset: i64) -> OwnedMessage {
    OwnedMessage::new(
        Some(vec![1]),
        None,
        "t".into(),
        Timestamp::CreateTime(1_000),
        partition,
        offset,
        None,
    )
}

fn batch(records: &[(i32, i64)]) -> Result<Batch, KafkaError> {
    Ok(Batch {
        messages: records.iter().map(|(p, o)| record(*p, *o)).collect(),
        at_end: Vec::new(),
    })
}

fn offsets(pairs: &[(i32, i64)]) -> Offsets {
    pairs
        .iter()
        .map(|(p, o)| (("t".to_owned(), *p), *o))
        .collect()
}

/// A stage that answers from a script: the offsets it calls safe, or a fault.
struct Answers(VecDeque<Result<Offsets, Fault>>, Vec<usize>);

impl Stage for Answers {
    async fn handle<S: Source>(&mut self, batch: Batch, _: &Io<'_, S>) -> Result<Offsets, Fault> {
        self.1.push(batch.messages.len());
        self.0
            .pop_front()
            .unwrap_or_else(|| Ok(batch.next_offsets()))
    }
}

struct World {
    shutdown: Shutdown,
    metrics: ConsumerMetrics,
    dead_letters: DeadLetters,
    readiness: Readiness,
    lag_every: Duration,
}

impl World {
    fn new() -> Self {
        let registry = Registry::new();
        // Never used by these stages. A plain producer: an idempotent one would ask the
        // missing broker for a producer id and hold its destruction until it gave up.
        let producer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .unwrap();
        let metrics = ConsumerMetrics::register(&registry).unwrap();
        World {
            shutdown: Shutdown::default(),
            dead_letters: DeadLetters::new(producer, &registry, metrics.clone()).unwrap(),
            metrics,
            readiness: Readiness::default(),
            lag_every: Duration::from_secs(10),
        }
    }

    async fn run<T: Stage>(&self, source: &Scripted, stage: &mut T) -> Result<(), Fault> {
        let settings = Settings {
            topics: vec!["t"],
            batch_max: 10,
            idle: Duration::from_millis(10),
            linger: Duration::from_millis(10),
            lag_every: self.lag_every,
        };
        let io = Io {
            source,
            dead_letters: &self.dead_letters,
            metrics: &self.metrics,
            shutdown: &self.shutdown,
        };
        run(source, stage, &settings, &io, &self.readiness).await
    }
}

#[tokio::test(start_paused = true)]
async fn commits_what_the_stage_calls_safe_once_it_has_answered() {
    let world = World::new();
    let source = Scripted::new(
        vec![batch(&[(0, 0), (0, 1), (1, 7)]), batch(&[(0, 2)])],
        &world.shutdown,
    );
    let mut stage = Answers(VecDeque::new(), Vec::new());
    world.run(&source, &mut stage).await.unwrap();
    assert_eq!(
        source.commits(),
        [offsets(&[(0, 2), (1, 8)]), offsets(&[(0, 3)])]
    );
    assert_eq!(stage.1, [3, 1, 0], "the empty poll reaches the stage too");
}

#[tokio::test(start_paused = true)]
async fn an_offset_held_back_is_not_committed_again_and_never_goes_back() {
    let world = World::new();
    let source = Scripted::new(
        vec![batch(&[(0, 0)]), batch(&[(0, 1)]), batch(&[(0, 2)])],
        &world.shutdown,
    );
    // A sessionizer-like stage: the oldest open session holds partition 0 at offset 0, then
    // closes and releases it to 3; an answer below what was committed changes nothing.
    let mut stage = Answers(
        vec![
            Ok(offsets(&[(0, 0)])),
            Ok(offsets(&[(0, 0)])),
            Ok(offsets(&[(0, 3)])),
        ]
        .into(),
        Vec::new(),
    );
    world.run(&source, &mut stage).await.unwrap();
    assert_eq!(source.commits(), [offsets(&[(0, 0)]), offsets(&[(0, 3)])]);
}

#[tokio::test(start_paused = true)]
async fn a_deployment_fault_stops_the_loop_before_its_batch_is_committed() {
    let world = World::new();
    let source = Scripted::new(vec![batch(&[(0, 0)]), batch(&[(0, 1)])], &world.shutdown);
    let stopped = Fault::Deployment {
        what: "ClickHouse: a column the service writes is missing".into(),
        fix: crate::fault::MIGRATE.into(),
    };
    let mut stage = Answers(
        vec![Ok(offsets(&[(0, 1)])), Err(stopped.clone())].into(),
        Vec::new(),
    );
    assert_eq!(world.run(&source, &mut stage).await, Err(stopped));
    assert_eq!(source.commits(), [offsets(&[(0, 1)])]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_is_made_with_the_next_batch() {
    let world = World::new();
    let source = Scripted::new(vec![batch(&[(0, 0)]), batch(&[(1, 4)])], &world.shutdown);
    *source.commit_failures.lock().unwrap() = 1;
    let mut stage = Answers(VecDeque::new(), Vec::new());
    world.run(&source, &mut stage).await.unwrap();
    assert_eq!(source.commits(), [offsets(&[(0, 1), (1, 5)])]);
    assert_eq!(
        world
            .metrics
            .retries
            .with_label_values(&["kafka", "timeout"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_broker_away_is_waited_out_and_readyz_says_so_meanwhile() {
    let world = World::new();
    let away = || {
        Err(KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure,
        ))
    };
    let source = Scripted {
        ends_away: true,
        ..Scripted::new(vec![away(), away(), away()], &world.shutdown)
    };
    let mut stage = Answers(VecDeque::new(), Vec::new());
    world.readiness.set_ready();
    // Four faults (the last as the service stops): unready, with the broker named.
    world.run(&source, &mut stage).await.unwrap();
    assert!(!world.readiness.is_ready());
    assert!(
        world.readiness.reason().contains("broker"),
        "{}",
        world.readiness.reason()
    );
    assert_eq!(
        world
            .metrics
            .retries
            .with_label_values(&["kafka", "unreachable"])
            .get(),
        4
    );
    assert_eq!(stage.1, Vec::<usize>::new(), "nothing reached the stage");
}

#[tokio::test(start_paused = true)]
async fn a_poll_that_works_again_makes_the_service_ready_again() {
    let world = World::new();
    let away = || {
        Err(KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure,
        ))
    };
    let source = Scripted::new(vec![away(), batch(&[(0, 0)])], &world.shutdown);
    let mut stage = Answers(VecDeque::new(), Vec::new());
    world.readiness.set_unready("the broker was away");
    world.run(&source, &mut stage).await.unwrap();
    assert!(world.readiness.is_ready());
    assert_eq!(source.commits(), [offsets(&[(0, 1)])]);
}

#[tokio::test(start_paused = true)]
async fn a_missing_topic_stops_the_loop_with_the_command_that_creates_it() {
    let world = World::new();
    let source = Scripted::new(
        vec![Err(KafkaError::MessageConsumption(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ))],
        &world.shutdown,
    );
    let mut stage = Answers(VecDeque::new(), Vec::new());
    let Err(Fault::Deployment { fix, .. }) = world.run(&source, &mut stage).await else {
        panic!("a missing topic cannot be waited out");
    };
    assert!(fix.contains("exatom-admin topics"));
}

#[test]
fn lag_is_reported_in_records_and_seconds_and_unknown_seconds_stay_unset() {
    let registry = Registry::new();
    let metrics = ConsumerMetrics::register(&registry).unwrap();
    let now = exatom_core::time::now_ms();
    let newest: HashMap<_, _> = [(("t".to_owned(), 0), now - 30_000)].into();
    report_lag(
        vec![
            (("t".into(), 0), 12),
            (("t".into(), 1), 0),
            (("t".into(), 2), 3),
        ],
        &newest,
        &metrics,
    );
    assert_eq!(metrics.lag_records.with_label_values(&["t", "0"]).get(), 12);
    let seconds = metrics.lag_seconds.with_label_values(&["t", "0"]).get();
    assert!((29.0..40.0).contains(&seconds), "{seconds}");
    // Partition 2: records wait, nothing read from it yet: no seconds series, not a 0.
    let family = registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "exatom_consumer_lag_seconds")
        .unwrap();
    let partitions: Vec<String> = family
        .get_metric()
        .iter()
        .map(|m| {
            m.get_label()
                .iter()
                .find(|l| l.name() == "partition")
                .unwrap()
                .value()
                .to_owned()
        })
        .collect();
    assert_eq!(partitions, ["0", "1"]);
}

#[tokio::test(start_paused = true)]
async fn a_lag_sample_the_broker_does_not_answer_leaves_the_last_figures() {
    let mut world = World::new();
    world.lag_every = Duration::ZERO;
    let source = Scripted::new(
        (0..3).map(|_| Ok(Batch::default())).collect(),
        &world.shutdown,
    );
    *source.unanswered_probes.lock().unwrap() = 2;
    world
        .run(&source, &mut Answers(VecDeque::new(), Vec::new()))
        .await
        .unwrap();
    // The third sample answered: its figure is there, and the loop kept going meanwhile.
    assert_eq!(
        world
            .metrics
            .lag_records
            .with_label_values(&["t", "0"])
            .get(),
        5
    );
}

/// A stage that lets a rebalance happen while it handles its second batch.
struct RebalancedDuring<'a>(&'a Scripted, usize);

impl Stage for RebalancedDuring<'_> {
    async fn handle<S: Source>(&mut self, batch: Batch, _: &Io<'_, S>) -> Result<Offsets, Fault> {
        self.1 += 1;
        if self.1 == 2 {
            *self.0.rebalances.lock().unwrap() += 1;
        }
        Ok(batch.next_offsets())
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_a_rebalance_overtook_is_not_committed() {
    let world = World::new();
    let source = Scripted::new(
        vec![batch(&[(0, 0)]), batch(&[(0, 1)]), batch(&[(0, 2)])],
        &world.shutdown,
    );
    let mut stage = RebalancedDuring(&source, 0);
    world.run(&source, &mut stage).await.unwrap();
    // The second batch's offset (2) is never committed on its own; the third's covers it.
    assert_eq!(source.commits(), [offsets(&[(0, 1)]), offsets(&[(0, 3)])]);
}
