//! ClickHouse plumbing: connecting, telling old servers from modern ones, and applying the
//! project's versioned migrations.
//!
//! The packaged local server (18.16) has no `TTL` and no `LowCardinality` by default; modern
//! servers have both. Migrations are written once with placeholders, rendered per server:
//! `{lc}` becomes `LowCardinality(String)` or `String`, `{ttl:EXPR}` becomes
//! `TTL EXPR + INTERVAL 90 DAY` or nothing (the retention task, `retention.rs`, removes old
//! rows instead), and `{remove_ttl:TABLE}` becomes `ALTER TABLE TABLE REMOVE TTL` or nothing.
//! In cluster mode each statement is then rendered for shards and replicas (`cluster.rs`).

use std::sync::OnceLock;

use clickhouse::{Client, Compression};
use regex::Regex;

use crate::cluster::{Cluster, RenderError};

/// Days every event-level and session-level row is kept.
pub const RETENTION_DAYS: u32 = 90;

/// One migration: a version, a name, and its SQL (statements separated by `;`).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(
                "../../../schemas/clickhouse/migrations/",
                $name,
                ".sql"
            )),
        }
    };
}

/// Every migration, in the order they apply. Append only: an applied migration never changes.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_events_and_sessions"),
    migration!(2, "0002_form_analytics"),
    migration!(3, "0003_daily_rollups"),
    migration!(4, "0004_event_value_presence"),
    migration!(5, "0005_monthly_rollup_partitions"),
    migration!(6, "0006_events_by_visitor"),
    migration!(7, "0007_reporting_data_kept"),
    migration!(8, "0008_field_order"),
    migration!(9, "0009_behaviour"),
    migration!(10, "0010_replays"),
];

/// What the server can do, read from `SELECT version()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ServerVersion { major, minor })
    }

    /// `TTL` on MergeTree tables arrived in 19.6.
    pub fn has_ttl(self) -> bool {
        (self.major, self.minor) >= (19, 6)
    }

    /// Row validation and LZ4 compression of the official client need a modern server.
    fn is_modern(self) -> bool {
        self.major >= 22
    }
}

/// Renders one migration's SQL for a server, and splits it into statements.
pub fn render(sql: &str, version: ServerVersion) -> Vec<String> {
    static TTL: OnceLock<Regex> = OnceLock::new();
    static REMOVE_TTL: OnceLock<Regex> = OnceLock::new();
    let ttl = TTL.get_or_init(|| Regex::new(r"\{ttl:([^}]+)\}").expect("valid regex"));
    let remove_ttl =
        REMOVE_TTL.get_or_init(|| Regex::new(r"\{remove_ttl:([a-z_]+)\}").expect("valid regex"));
    let (with_ttl, without_ttl) = if version.has_ttl() {
        (
            format!("TTL $1 + INTERVAL {RETENTION_DAYS} DAY"),
            "ALTER TABLE $1 REMOVE TTL",
        )
    } else {
        (String::new(), "")
    };
    let with_ttl = ttl.replace_all(sql, with_ttl.as_str());
    let with_ttl = remove_ttl.replace_all(&with_ttl, without_ttl);
    let lc = if version.has_ttl() {
        "LowCardinality(String)"
    } else {
        "String"
    };
    // Comments go first: they may hold a `;`.
    let without_comments: Vec<&str> = with_ttl
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    without_comments
        .join("\n")
        .replace("{lc}", lc)
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Settings for a connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
    /// The cluster's name in the servers' `remote_servers`; empty on one server.
    pub cluster: String,
    /// Replicas that must hold an insert, in cluster mode (0 or 1: no quorum).
    pub insert_quorum: u32,
}

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(
        "database `{database}` was created {created}, and this run is configured {asked}: \
         the modes are not converted into each other. Set EXATOM_CLICKHOUSE_CLUSTER as when \
         the database was created, or name a new database (EXATOM_CLICKHOUSE_DATABASE)"
    )]
    Mode {
        database: String,
        created: String,
        asked: String,
    },
}

/// How a ledger's mode reads in a message.
fn mode_name(cluster: &str) -> String {
    if cluster.is_empty() {
        "for one server".to_owned()
    } else {
        format!("on cluster `{cluster}`")
    }
}

impl From<&exatom_core::config::Endpoints> for Connection {
    fn from(e: &exatom_core::config::Endpoints) -> Self {
        Connection {
            url: e.clickhouse_url.clone(),
            database: e.clickhouse_database.clone(),
            user: e.clickhouse_user.clone(),
            password: e.clickhouse_password.clone(),
            cluster: e.clickhouse_cluster.clone(),
            insert_quorum: e.clickhouse_insert_quorum,
        }
    }
}

/// A client bound to the project's database, set up for what the server supports.
#[derive(Clone)]
pub struct Warehouse {
    pub client: Client,
    /// The same connection without the cluster mode's settings: for read-only users, whom
    /// the server refuses any setting sent with a query (`readonly = 1`).
    pub read_only: Client,
    pub version: ServerVersion,
    pub database: String,
    /// The cluster in cluster mode.
    pub cluster: Option<String>,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("version", &self.version)
            .field("database", &self.database)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Warehouse {
    /// Connects and reads the server version.
    pub async fn connect(conn: &Connection) -> Result<Self, clickhouse::error::Error> {
        let base = Client::default()
            .with_url(&conn.url)
            .with_user(&conn.user)
            .with_password(&conn.password)
            .with_validation(false)
            .with_compression(Compression::None);
        let text: String = base.query("SELECT version()").fetch_one().await?;
        let version = ServerVersion::parse(&text).unwrap_or(ServerVersion { major: 0, minor: 0 });
        let mut client = if version.is_modern() {
            base.with_validation(true)
                .with_compression(Compression::Lz4)
        } else {
            base
        }
        .with_database(&conn.database);
        let read_only = client.clone();
        let cluster = (!conn.cluster.is_empty()).then(|| conn.cluster.clone());
        if cluster.is_some() {
            // An insert returns once its rows are on their shards (not queued on this node),
            // and, with a quorum, on that many replicas of each: the rollups read right
            // after writing then see every row, whichever replica answers.
            client = client
                .with_option("insert_distributed_sync", "1")
                // 18.16 loses the sorting columns of `FINAL` through a Distributed table when
                // it answers its own shard in-process; over TCP it does not.
                .with_option("prefer_localhost_replica", "0")
                // A query over a Distributed table whose `IN`/`JOIN` reads another one (a
                // transaction's conversions, in the rollups): the inner one runs once, on
                // this node, and its result goes to every shard.
                .with_option("distributed_product_mode", "global");
            if conn.insert_quorum > 1 {
                client = client
                    .with_option("insert_quorum", conn.insert_quorum.to_string())
                    .with_option("insert_quorum_timeout", "30000");
            }
        }
        Ok(Warehouse {
            client,
            read_only,
            version,
            database: conn.database.clone(),
            cluster,
        })
    }

    /// Connects, and checks that the database has every migration this build knows: a
    /// service writing to an older schema would fail on every insert.
    pub async fn connect_checked(conn: &Connection) -> Result<Self, crate::fault::Fault> {
        let warehouse = Self::connect(conn)
            .await
            .map_err(|e| crate::fault::clickhouse(&e))?;
        let newest = MIGRATIONS.last().map_or(0, |m| m.version);
        let applied: u32 = warehouse
            .client
            .query("SELECT max(version) FROM schema_migrations")
            .fetch_one()
            .await
            .map_err(|e| crate::fault::clickhouse(&e))?;
        if applied < newest {
            return Err(crate::fault::Fault::Deployment {
                what: format!(
                    "database `{}` is at migration {applied}, this build needs {newest}",
                    conn.database
                ),
                fix: crate::fault::MIGRATE.to_owned(),
            });
        }
        let created = warehouse
            .ledger_mode()
            .await
            .map_err(|e| crate::fault::clickhouse(&e))?;
        if created.as_deref().unwrap_or("") != conn.cluster {
            return Err(crate::fault::Fault::Deployment {
                what: format!(
                    "database `{}` was created {}, the service is configured {}",
                    conn.database,
                    mode_name(created.as_deref().unwrap_or("")),
                    mode_name(&conn.cluster)
                ),
                fix: "set EXATOM_CLICKHOUSE_CLUSTER as the database was migrated".to_owned(),
            });
        }
        Ok(warehouse)
    }

    /// The cluster the ledger was written for (`Some("")`: one server), `None` without a
    /// ledger. Ledgers from before cluster mode have no `cluster` column: one server.
    async fn ledger_mode(&self) -> Result<Option<String>, clickhouse::error::Error> {
        // Asked before the database exists, so not in it.
        let root = self.client.clone().with_database("default");
        let columns: Vec<String> = root
            .query(
                "SELECT name FROM system.columns \
                 WHERE database = ? AND table = 'schema_migrations'",
            )
            .bind(&self.database)
            .fetch_all()
            .await?;
        if columns.is_empty() {
            return Ok(None);
        }
        if !columns.iter().any(|c| c == "cluster") {
            return Ok(Some(String::new()));
        }
        let modes: Vec<String> = self
            .client
            .query("SELECT DISTINCT cluster FROM schema_migrations")
            .fetch_all()
            .await?;
        Ok(Some(modes.into_iter().next().unwrap_or_default()))
    }

    /// One migration's statements for this server, and for the cluster in cluster mode.
    pub fn statements(&self, sql: &str) -> Result<Vec<String>, RenderError> {
        let rendered = render(sql, self.version);
        match &self.cluster {
            None => Ok(rendered),
            Some(name) => {
                let cluster = Cluster {
                    name,
                    database: &self.database,
                };
                let mut out = Vec::new();
                for statement in rendered {
                    out.extend(cluster.render(&statement)?);
                }
                Ok(out)
            }
        }
    }

    /// `system.<name>` (`parts`, `mutations`) of every shard: on a cluster, the Distributed
    /// table over it that migrations make (`Cluster::system_views`).
    pub fn system_table(&self, name: &str) -> String {
        match &self.cluster {
            None => format!("system.{name}"),
            Some(_) => format!("{}.cluster_{name}", self.database),
        }
    }

    /// The table that holds `table`'s rows on this node, and how a statement names it to
    /// reach every shard: `events` on one server, `db.events_local ON CLUSTER c` on a
    /// cluster (mutations and partitions are the local tables').
    pub fn storage_of(&self, table: &str) -> (String, String) {
        match &self.cluster {
            None => (table.to_owned(), table.to_owned()),
            Some(name) => (
                format!("{table}_local"),
                format!("{}.{table}_local ON CLUSTER {name}", self.database),
            ),
        }
    }

    /// Applies the migrations not yet recorded in `schema_migrations`; returns the versions applied.
    ///
    /// Re-runnable: every migration can run again after stopping halfway (`IF NOT EXISTS`,
    /// leftovers dropped first), and is recorded only after all its statements succeeded.
    pub async fn migrate(&self) -> Result<Vec<u32>, MigrationError> {
        self.migrate_up_to(u32::MAX).await
    }

    /// Applies the pending migrations up to version `last`: how a test puts a database in
    /// the state an older release left it, to check what a newer migration does to its rows.
    pub async fn migrate_up_to(&self, last: u32) -> Result<Vec<u32>, MigrationError> {
        let asked = self.cluster.clone().unwrap_or_default();
        if let Some(created) = self.ledger_mode().await? {
            if created != asked {
                return Err(MigrationError::Mode {
                    database: self.database.clone(),
                    created: mode_name(&created),
                    asked: mode_name(&asked),
                });
            }
        }
        let root = self.client.clone().with_database("default");
        let on_cluster = self
            .cluster
            .as_ref()
            .map_or(String::new(), |c| format!(" ON CLUSTER {c}"));
        root.query(&format!(
            "CREATE DATABASE IF NOT EXISTS {}{on_cluster}",
            self.database
        ))
        .execute()
        .await?;
        match &self.cluster {
            None => {
                self.client
                    .query(
                        "CREATE TABLE IF NOT EXISTS schema_migrations \
                         (version UInt32, name String, applied_at DateTime, cluster String) \
                         ENGINE = MergeTree ORDER BY version",
                    )
                    .execute()
                    .await?;
                self.apply(
                    "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS cluster String DEFAULT ''",
                )
                .await?;
            }
            Some(name) => {
                let cluster = Cluster {
                    name,
                    database: &self.database,
                };
                for statement in std::iter::once(cluster.ledger()).chain(cluster.system_views()) {
                    self.client.query(&statement).execute().await?;
                }
            }
        }
        let applied: Vec<u32> = self
            .client
            .query("SELECT version FROM schema_migrations")
            .fetch_all()
            .await?;
        let mut done = Vec::new();
        for migration in MIGRATIONS.iter().filter(|m| m.version <= last) {
            if applied.contains(&migration.version) {
                continue;
            }
            for statement in self.statements(migration.sql)? {
                self.apply(&statement).await?;
            }
            self.client
                .query(&format!(
                    "INSERT INTO schema_migrations (version, name, applied_at, cluster) \
                     VALUES ({}, '{}', now(), ?)",
                    migration.version, migration.name
                ))
                .bind(&asked)
                .execute()
                .await?;
            done.push(migration.version);
        }
        Ok(done)
    }

    /// Runs one migration statement. 18.16 has no `ADD COLUMN IF NOT EXISTS`, so the column
    /// is looked up first: a migration that failed halfway can run again on any server.
    async fn apply(&self, statement: &str) -> Result<(), clickhouse::error::Error> {
        static ADD_COLUMN: OnceLock<Regex> = OnceLock::new();
        let add_column = ADD_COLUMN.get_or_init(|| {
            Regex::new(
                r"^ALTER TABLE (?:\w+\.)?(\w+)(?: ON CLUSTER \w+)? ADD COLUMN IF NOT EXISTS (\w+) ",
            )
            .expect("valid regex")
        });
        match add_column.captures(statement) {
            Some(c) => {
                let present: u64 = self
                    .client
                    .query(
                        "SELECT count() FROM system.columns \
                         WHERE database = currentDatabase() AND table = ? AND name = ?",
                    )
                    .bind(&c[1])
                    .bind(&c[2])
                    .fetch_one()
                    .await?;
                if present > 0 {
                    return Ok(());
                }
                let plain = statement.replacen(" IF NOT EXISTS", "", 1);
                self.client.query(&plain).execute().await
            }
            None => self.client.query(statement).execute().await,
        }
    }

    /// Inserts rows in one `INSERT` (one block: all or nothing on a single server).
    pub async fn insert_rows<R>(
        &self,
        table: &str,
        rows: &[R],
    ) -> Result<(), clickhouse::error::Error>
    where
        R: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self.client.insert::<R>(table).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: ServerVersion = ServerVersion {
        major: 18,
        minor: 16,
    };
    const NEW: ServerVersion = ServerVersion {
        major: 25,
        minor: 9,
    };

    #[test]
    fn versions_parse_and_ttl_starts_at_19_6() {
        assert_eq!(ServerVersion::parse("18.16.1"), Some(OLD));
        assert_eq!(
            ServerVersion::parse("19.6.0.1"),
            Some(ServerVersion {
                major: 19,
                minor: 6
            })
        );
        assert!(!OLD.has_ttl());
        assert!(ServerVersion::parse("19.6.0").unwrap().has_ttl());
        assert!(!ServerVersion::parse("19.5.9").unwrap().has_ttl());
        assert_eq!(ServerVersion::parse("banana"), None);
    }

    /// The table a `CREATE TABLE` statement makes, and whether it has a TTL.
    fn created(statement: &str) -> Option<(&str, bool)> {
        let rest = statement.strip_prefix("CREATE TABLE ")?;
        let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
        let name = rest.split([' ', '(', '\n']).next()?;
        Some((name, statement.contains("TTL day + INTERVAL 90 DAY")))
    }

    #[test]
    fn event_data_keeps_ninety_days_and_reporting_data_has_no_ttl_on_modern_servers() {
        use crate::retention::{BOOKKEEPING, EVENT_DATA, REPORTING_DATA};
        // The TTL each table ends with, after every migration (twins renamed into place
        // carry their name's TTL: `form_daily_by_month` is `form_daily`).
        let mut ttl: std::collections::BTreeMap<String, bool> = Default::default();
        for migration in MIGRATIONS {
            for statement in render(migration.sql, NEW) {
                assert!(
                    !statement.contains("{lc}")
                        && !statement.contains("{ttl")
                        && !statement.contains("{remove_ttl"),
                    "{statement}"
                );
                if let Some((name, has_ttl)) = created(&statement) {
                    let name = name
                        .trim_end_matches("_by_month")
                        .trim_end_matches("_by_visitor");
                    ttl.insert(name.to_owned(), has_ttl);
                }
                if let Some(rest) = statement.strip_prefix("ALTER TABLE ") {
                    if let Some(name) = rest.strip_suffix(" REMOVE TTL") {
                        ttl.insert(name.to_owned(), false);
                    }
                }
            }
        }
        for table in EVENT_DATA {
            assert_eq!(
                ttl.get(*table),
                Some(&true),
                "{table}: event data keeps 90 days"
            );
        }
        for table in REPORTING_DATA.iter().chain(BOOKKEEPING) {
            if *table != "schema_migrations" {
                assert_eq!(
                    ttl.get(*table),
                    Some(&false),
                    "{table}: kept without a limit"
                );
            }
        }
        // Every table a migration makes is in one class.
        for table in ttl.keys() {
            let classes = [EVENT_DATA, REPORTING_DATA, BOOKKEEPING]
                .iter()
                .filter(|c| c.contains(&table.as_str()))
                .count();
            assert_eq!(classes, 1, "{table} is in {classes} retention classes");
        }
    }

    #[test]
    fn every_migration_renders_for_a_cluster_and_shards_rows_by_what_their_versions_share() {
        let cluster = Cluster {
            name: "c",
            database: "db",
        };
        let create =
            Regex::new(r"(?s)^CREATE TABLE (?:IF NOT EXISTS )?(\w+) .*ORDER BY \(?([^)]*)\)?")
                .unwrap();
        for migration in MIGRATIONS {
            for version in [OLD, NEW] {
                for statement in render(migration.sql, version) {
                    let out = cluster
                        .render(&statement)
                        .unwrap_or_else(|e| panic!("{}: {e}", migration.name));
                    for rendered in &out {
                        assert!(
                            rendered.contains(" ON CLUSTER c")
                                || rendered.starts_with("INSERT INTO "),
                            "{rendered}"
                        );
                    }
                    let Some(c) = create.captures(&statement) else {
                        continue;
                    };
                    let order: Vec<&str> = c[2].split(',').map(str::trim).collect();
                    let key = crate::cluster::shard_key(&c[1]).unwrap();
                    let inner = key.trim_start_matches("cityHash64(").trim_end_matches(')');
                    for column in inner.split(',').map(str::trim) {
                        // A session's or an event's visitor is fixed by its id.
                        let decided_by_key = column == "visitor_id"
                            && (order.contains(&"session_id") || order.contains(&"event_id"));
                        assert!(
                            order.contains(&column) || decided_by_key,
                            "{}: {} shards by {column}, not in ORDER BY {order:?}",
                            migration.name,
                            &c[1]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reporting_data_holds_no_visitor_session_segment_or_text() {
        // The columns a row kept for years may have: keys the site defined (forms and
        // fields, scrubbed by the anonymizer) and figures.
        let allowed = [
            "site",
            "day",
            "form_key",
            "field_key",
            "views",
            "starts",
            "submits",
            "conversions",
            "duration_pairs",
            "duration_to_conversion_ms",
            "start_hesitation",
            "interactions",
            "abandons",
            "time_spent_ms",
            "hesitation",
            "returns",
            "corrections",
            "errors",
            "revenue",
            "version",
            "page_abandons",
            "initial_abandons",
            "field_order",
        ];
        // Every definition of each table; a twin renamed into place (`CREATE TABLE x AS y`)
        // has the columns of the definition before it, so the last with a column list counts.
        let mut defined: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for migration in MIGRATIONS {
            for statement in render(migration.sql, OLD) {
                if let Some((name, _)) = created(&statement) {
                    let name = name.trim_end_matches("_by_month").to_owned();
                    defined.entry(name).or_default().push(statement);
                }
            }
        }
        for table in crate::retention::REPORTING_DATA {
            let statement = defined[*table]
                .iter()
                .rev()
                .find(|s| s.contains("(\n"))
                .expect("a definition with columns");
            let open = statement.find("(\n").unwrap();
            let body = &statement[open + 2..statement.find(") ENGINE").unwrap()];
            for column in body.lines().filter_map(|l| l.split_whitespace().next()) {
                assert!(
                    allowed.contains(&column),
                    "{table}.{column} in reporting data"
                );
            }
        }
    }

    #[test]
    fn old_servers_get_plain_types_and_partitions_the_retention_task_knows() {
        for migration in MIGRATIONS {
            for statement in render(migration.sql, OLD) {
                assert!(!statement.contains("TTL"), "{statement}");
                assert!(!statement.contains("LowCardinality"), "{statement}");
                let bookkeeping = created(&statement)
                    .is_some_and(|(name, _)| crate::retention::BOOKKEEPING.contains(&name));
                if statement.contains("MergeTree") && !bookkeeping {
                    assert!(
                        statement.contains("PARTITION BY day\n")
                            || statement.contains("PARTITION BY toYYYYMM(day)\n"),
                        "{statement}"
                    );
                }
            }
        }
    }

    #[test]
    fn versions_are_unique_and_increasing() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
    }
}
