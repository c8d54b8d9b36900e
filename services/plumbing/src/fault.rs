//! What a failure means: wait and try again, or stop and tell the operator what to fix.
//!
//! A broker or ClickHouse that is away, slow or throttling comes back by itself: such faults
//! are retried with backoff, counted, and nothing is committed meanwhile. A missing table or
//! column, a type that does not match, refused credentials: retrying cannot help, and a
//! service that retried them forever would stall its partitions silently. Those stop the
//! consume loop with a message naming the fix, shown on `/readyz`.
//!
//! A record that can never be processed (it does not decode, it breaks a promise of the
//! stage before) is neither: it goes to the dead-letter topic (`dead_letter`) and the
//! partition moves on.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The migration command, named in every fault that a skipped migration explains.
pub const MIGRATE: &str =
    "run `exatom-admin migrate` against this database, then restart the service";

/// Why a fault that passes happened: the `reason` label of `exatom_retries_total`. A closed
/// set, so that a rate per reason is cheap to keep and an alert can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No connection: the server is down or the network between is.
    Unreachable,
    /// Connected, but no answer in time.
    Timeout,
    /// The server is there and pushes back: too many parts, memory, a full queue, a quota.
    Overloaded,
    /// A partition's leader or a group's coordinator moved; the client finds the new one.
    Leadership,
    /// A replica has not caught up with a write yet: read again.
    NotVisibleYet,
    /// Any other error the server answered with.
    ServerError,
    Other,
}

impl Cause {
    pub const ALL: [Cause; 7] = [
        Cause::Unreachable,
        Cause::Timeout,
        Cause::Overloaded,
        Cause::Leadership,
        Cause::NotVisibleYet,
        Cause::ServerError,
        Cause::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Unreachable => "unreachable",
            Cause::Timeout => "timeout",
            Cause::Overloaded => "overloaded",
            Cause::Leadership => "leadership",
            Cause::NotVisibleYet => "not_visible_yet",
            Cause::ServerError => "server_error",
            Cause::Other => "other",
        }
    }
}

/// A failure of a dependency, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// Away, slow or throttling: wait and try again.
    #[error("{detail}")]
    Retriable { cause: Cause, detail: String },
    /// The deployment cannot work as it is; retrying cannot help.
    #[error("{what}: {fix}")]
    Deployment { what: String, fix: String },
}

impl Fault {
    pub fn retriable(cause: Cause, detail: impl Into<String>) -> Self {
        Fault::Retriable {
            cause,
            detail: detail.into(),
        }
    }

    pub fn is_retriable(&self) -> bool {
        matches!(self, Fault::Retriable { .. })
    }

    /// Why it can be retried; `None` for a deployment fault.
    pub fn cause(&self) -> Option<Cause> {
        match self {
            Fault::Retriable { cause, .. } => Some(*cause),
            Fault::Deployment { .. } => None,
        }
    }
}

/// ClickHouse server error codes that mean the schema is not the one the service was built
/// for (a migration not applied, or a table changed by hand).
const SCHEMA_CODES: &[(u32, &str)] = &[
    (10, "a column the service reads is missing"),
    (16, "a column the service writes is missing"),
    (47, "a column or name the query uses is unknown"),
    (53, "a column's type does not match the service's"),
    (60, "a table the service uses is missing"),
    (81, "the database does not exist"),
];

/// ClickHouse server error codes that mean the server pushes back: too many parts, memory,
/// too many queries at once.
const OVERLOADED_CODES: &[u32] = &[202, 241, 252];

/// ClickHouse server error codes of time limits and sockets.
const TIMEOUT_CODES: &[u32] = &[159, 209];

/// ClickHouse server error codes that mean the service's account is refused.
const ACCESS_CODES: &[u32] = &[192, 193, 194, 497, 516];

/// The server's error code in a ClickHouse error text (`Code: 16. DB::Exception: …` on
/// modern servers, `Code: 16, e.displayText() = …` on 18.16).
pub fn clickhouse_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Classifies a ClickHouse client error.
pub fn clickhouse(error: &clickhouse::error::Error) -> Fault {
    use clickhouse::error::Error as E;
    let text = error.to_string();
    match error {
        E::BadResponse(body) => match clickhouse_code(body) {
            Some(code) => {
                if let Some((_, what)) = SCHEMA_CODES.iter().find(|(c, _)| *c == code) {
                    Fault::Deployment {
                        what: format!("ClickHouse: {what} ({})", first_line(body)),
                        fix: MIGRATE.to_owned(),
                    }
                } else if ACCESS_CODES.contains(&code) {
                    Fault::Deployment {
                        what: format!("ClickHouse refuses the service's account ({})", first_line(body)),
                        fix: "check EXATOM_CLICKHOUSE_USER and EXATOM_CLICKHOUSE_PASSWORD and the user's grants".to_owned(),
                    }
                } else {
                    let cause = if OVERLOADED_CODES.contains(&code) {
                        Cause::Overloaded
                    } else if TIMEOUT_CODES.contains(&code) {
                        Cause::Timeout
                    } else {
                        Cause::ServerError
                    };
                    Fault::retriable(cause, format!("ClickHouse: {}", first_line(body)))
                }
            }
            // No code: a proxy's or the HTTP layer's answer (502, 503).
            None => Fault::retriable(
                Cause::ServerError,
                format!("ClickHouse: {}", first_line(body)),
            ),
        },
        E::Network(_) => Fault::retriable(Cause::Unreachable, format!("ClickHouse: {text}")),
        E::TimedOut => Fault::retriable(Cause::Timeout, format!("ClickHouse: {text}")),
        // Rows that do not fit the table: the table is not what the service was built for.
        E::NotEnoughData | E::SchemaMismatch(_) | E::InvalidColumnsHeader(_) => Fault::Deployment {
            what: format!("ClickHouse: the rows do not match the table ({text})"),
            fix: MIGRATE.to_owned(),
        },
        E::InvalidParams(_) | E::Unsupported(_) => Fault::Deployment {
            what: format!("ClickHouse: {text}"),
            fix: "check EXATOM_CLICKHOUSE_URL".to_owned(),
        },
        _ => Fault::retriable(Cause::Other, format!("ClickHouse: {text}")),
    }
}

/// Classifies a Kafka client error.
pub fn kafka(error: &KafkaError) -> Fault {
    use RDKafkaErrorCode as C;
    let code = error.rdkafka_error_code();
    let deployment = |fix: &str| Fault::Deployment {
        what: format!("Kafka: {error}"),
        fix: fix.to_owned(),
    };
    match code {
        Some(C::UnknownTopic | C::UnknownTopicOrPartition) => {
            deployment("create the topics with `exatom-admin topics`")
        }
        Some(
            C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication,
        ) => deployment("check the service's Kafka credentials and ACLs"),
        Some(C::InvalidConfig | C::InvalidArgument) => {
            deployment("check the Kafka settings (EXATOM_KAFKA_BROKERS)")
        }
        Some(
            C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::NetworkException
            | C::Resolve
            | C::BrokerNotAvailable,
        ) => Fault::retriable(Cause::Unreachable, format!("Kafka: {error}")),
        Some(C::MessageTimedOut | C::RequestTimedOut | C::OperationTimedOut) => {
            Fault::retriable(Cause::Timeout, format!("Kafka: {error}"))
        }
        Some(C::QueueFull | C::ThrottlingQuotaExceeded) => {
            Fault::retriable(Cause::Overloaded, format!("Kafka: {error}"))
        }
        Some(
            C::NotLeaderForPartition
            | C::LeaderNotAvailable
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::RebalanceInProgress
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch,
        ) => Fault::retriable(Cause::Leadership, format!("Kafka: {error}")),
        Some(_) => Fault::retriable(Cause::ServerError, format!("Kafka: {error}")),
        None => Fault::retriable(Cause::Other, format!("Kafka: {error}")),
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or(text);
    // Stack traces follow the message on modern servers.
    line.split(", Stack trace").next().unwrap_or(line).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error as E;

    #[test]
    fn codes_are_read_from_both_server_generations() {
        assert_eq!(
            clickhouse_code("Code: 16, e.displayText() = DB::Exception: No such column country in table exatom.events, e.what() = DB::Exception"),
            Some(16)
        );
        assert_eq!(
            clickhouse_code(
                "Code: 60. DB::Exception: Table exatom.x does not exist. (UNKNOWN_TABLE)"
            ),
            Some(60)
        );
        assert_eq!(clickhouse_code("connection refused"), None);
    }

    #[test]
    fn a_missing_column_stops_with_the_migration_command_and_its_name() {
        let body = "Code: 16, e.displayText() = DB::Exception: No such column country in table exatom.events, e.what() = DB::Exception\n";
        let Fault::Deployment { what, fix } = clickhouse(&E::BadResponse(body.into())) else {
            panic!("a missing column is the deployment's fault");
        };
        assert!(what.contains("No such column country"), "{what}");
        assert!(fix.contains("exatom-admin migrate"), "{fix}");
        assert!(!clickhouse(&E::NotEnoughData).is_retriable());
    }

    #[test]
    fn away_slow_or_busy_is_retried() {
        for e in [
            E::TimedOut,
            E::Network("connection refused".into()),
            // Too many parts: the server throttles inserts.
            E::BadResponse(
                "Code: 252, e.displayText() = DB::Exception: Too many parts (300)".into(),
            ),
            E::BadResponse("Code: 241. DB::Exception: Memory limit exceeded".into()),
            E::BadResponse("502 Bad Gateway".into()),
        ] {
            assert!(clickhouse(&e).is_retriable(), "{e}");
        }
        let cause = |e: E| clickhouse(&e).cause();
        assert_eq!(cause(E::TimedOut), Some(Cause::Timeout));
        assert_eq!(
            cause(E::Network("refused".into())),
            Some(Cause::Unreachable)
        );
        assert_eq!(
            cause(E::BadResponse(
                "Code: 252. DB::Exception: Too many parts".into()
            )),
            Some(Cause::Overloaded)
        );
        assert_eq!(
            cause(E::BadResponse("Code: 999. DB::Exception: Keeper".into())),
            Some(Cause::ServerError)
        );
        assert_eq!(
            cause(E::BadResponse("502 Bad Gateway".into())),
            Some(Cause::ServerError)
        );
    }

    #[test]
    fn refused_credentials_are_the_deployments_fault() {
        let e = E::BadResponse("Code: 516. DB::Exception: default: Authentication failed".into());
        let Fault::Deployment { fix, .. } = clickhouse(&e) else {
            panic!("refused credentials cannot be retried away");
        };
        assert!(fix.contains("EXATOM_CLICKHOUSE_PASSWORD"));
    }

    #[test]
    fn kafka_transport_faults_are_retried_and_a_missing_topic_is_not() {
        assert!(kafka(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure
        ))
        .is_retriable());
        assert_eq!(
            kafka(&KafkaError::MessageConsumption(
                RDKafkaErrorCode::AllBrokersDown
            ))
            .cause(),
            Some(Cause::Unreachable)
        );
        assert_eq!(
            kafka(&KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)).cause(),
            Some(Cause::Overloaded)
        );
        assert_eq!(
            kafka(&KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            ))
            .cause(),
            Some(Cause::Timeout)
        );
        assert_eq!(
            kafka(&KafkaError::MessageConsumption(
                RDKafkaErrorCode::NotCoordinator
            ))
            .cause(),
            Some(Cause::Leadership)
        );
        assert!(kafka(&KafkaError::MessageProduction(
            RDKafkaErrorCode::RequestTimedOut
        ))
        .is_retriable());
        let Fault::Deployment { fix, .. } = kafka(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        )) else {
            panic!("a missing topic is the deployment's fault");
        };
        assert!(fix.contains("exatom-admin topics"));
    }
}
