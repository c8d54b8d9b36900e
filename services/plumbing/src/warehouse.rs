//! ClickHouse plumbing: connecting, telling old servers from modern ones, and applying the
//! project's versioned migrations.
//!
//! The packaged local server (18.16) has no `TTL` and no `LowCardinality` by default; modern
//! servers have both. Migrations are written once with two placeholders, rendered per server:
//! `{lc}` becomes `LowCardinality(String)` or `String`, and `{ttl:EXPR}` becomes
//! `TTL EXPR + INTERVAL 90 DAY` or nothing (the retention task, `retention.rs`, removes old
//! rows instead).

use std::sync::OnceLock;

use clickhouse::{Client, Compression};
use regex::Regex;

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
    let ttl = TTL.get_or_init(|| Regex::new(r"\{ttl:([^}]+)\}").expect("valid regex"));
    let with_ttl = if version.has_ttl() {
        ttl.replace_all(
            sql,
            format!("TTL $1 + INTERVAL {RETENTION_DAYS} DAY").as_str(),
        )
    } else {
        ttl.replace_all(sql, "")
    };
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
}

impl From<&exatom_core::config::Endpoints> for Connection {
    fn from(e: &exatom_core::config::Endpoints) -> Self {
        Connection {
            url: e.clickhouse_url.clone(),
            database: e.clickhouse_database.clone(),
            user: e.clickhouse_user.clone(),
            password: e.clickhouse_password.clone(),
        }
    }
}

/// A client bound to the project's database, set up for what the server supports.
#[derive(Clone)]
pub struct Warehouse {
    pub client: Client,
    pub version: ServerVersion,
    pub database: String,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("version", &self.version)
            .field("database", &self.database)
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
        let client = if version.is_modern() {
            base.with_validation(true)
                .with_compression(Compression::Lz4)
        } else {
            base
        }
        .with_database(&conn.database);
        Ok(Warehouse {
            client,
            version,
            database: conn.database.clone(),
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
        Ok(warehouse)
    }

    /// Applies the migrations not yet recorded in `schema_migrations`; returns the versions applied.
    ///
    /// Re-runnable: every migration can run again after stopping halfway (`IF NOT EXISTS`,
    /// leftovers dropped first), and is recorded only after all its statements succeeded.
    pub async fn migrate(&self) -> Result<Vec<u32>, clickhouse::error::Error> {
        self.migrate_up_to(u32::MAX).await
    }

    /// Applies the pending migrations up to version `last`: how a test puts a database in
    /// the state an older release left it, to check what a newer migration does to its rows.
    pub async fn migrate_up_to(&self, last: u32) -> Result<Vec<u32>, clickhouse::error::Error> {
        let root = self.client.clone().with_database("default");
        root.query(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database))
            .execute()
            .await?;
        self.client
            .query(
                "CREATE TABLE IF NOT EXISTS schema_migrations \
                 (version UInt32, name String, applied_at DateTime) \
                 ENGINE = MergeTree ORDER BY version",
            )
            .execute()
            .await?;
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
            for statement in render(migration.sql, self.version) {
                self.apply(&statement).await?;
            }
            self.client
                .query(&format!(
                    "INSERT INTO schema_migrations VALUES ({}, '{}', now())",
                    migration.version, migration.name
                ))
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
            Regex::new(r"^ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+) ").expect("valid regex")
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

    #[test]
    fn every_table_keeps_rows_ninety_days_on_modern_servers() {
        for migration in MIGRATIONS {
            for statement in render(migration.sql, NEW) {
                let is_table = statement.contains("MergeTree");
                if is_table {
                    assert!(
                        statement.contains("TTL") && statement.contains("INTERVAL 90 DAY"),
                        "{}: table without TTL:\n{statement}",
                        migration.name
                    );
                }
                assert!(!statement.contains("{lc}") && !statement.contains("{ttl"));
            }
        }
    }

    #[test]
    fn old_servers_get_plain_types_and_partitions_the_retention_task_knows() {
        for migration in MIGRATIONS {
            for statement in render(migration.sql, OLD) {
                assert!(!statement.contains("TTL"), "{statement}");
                assert!(!statement.contains("LowCardinality"), "{statement}");
                if statement.contains("MergeTree") {
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
