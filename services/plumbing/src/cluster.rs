//! Cluster mode (`EXATOM_CLICKHOUSE_CLUSTER`): the migrations, written once for one server,
//! rendered for a cluster of shards and replicas. Pure: statements in, statements out.
//!
//! Every table `t` becomes `t_local`, a `Replicated…MergeTree` on each shard (ZooKeeper path
//! `/clickhouse/tables/{shard}/<database>/t_local`), and `t`, a `Distributed` table over the
//! shards that the services and the views read and write by the same name as on one server.
//! Every statement runs `ON CLUSTER` with its tables named with their database: the nodes
//! run it with their own default database.
//!
//! Rows are spread by a key that every version of a row shares (ReplacingMergeTree merges
//! versions only within a shard): events and sessions by visitor, per-session tables by
//! session, conversions and tooltip events by event, daily figures by site and day. `FINAL` through the Distributed table is then
//! exact, shard by shard.

use std::sync::OnceLock;

use regex::Regex;

/// Why a statement cannot be rendered for a cluster: a migration the renderer does not know
/// how to spread (a new kind of statement, or a table without a sharding key).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("table `{0}` has no sharding key: add it to cluster::shard_key")]
    NoShardKey(String),
    #[error("cannot render for a cluster: {0}")]
    Unsupported(String),
}

/// The expression a table's rows are spread over the shards by.
pub fn shard_key(table: &str) -> Result<&'static str, RenderError> {
    // Twins made by a migration to be renamed into place shard as their name does.
    let name = ["_by_month", "_by_visitor", "_by_day", "_by_event"]
        .iter()
        .fold(table, |t, suffix| t.trim_end_matches(suffix));
    let key = match name {
        // A session's and a visitor's rows stay on one shard: the session id belongs to
        // one visitor, so every version of a session row carries the same visitor.
        "events" | "sessions" => "cityHash64(visitor_id)",
        "form_sessions" | "field_interactions" | "click_bins" | "page_scrolls"
        | "session_errors" => "cityHash64(session_id)",
        // Keyed by event: a transaction's conversions are read across shards anyway (its
        // revenue counts once per site, whichever sessions hold it).
        "conversions" | "tooltip_events" => "cityHash64(event_id)",
        "deleted_sites" => "cityHash64(site)",
        // A page's batches together: its replay reads back from one shard.
        "replay_batches" => "cityHash64(page_view_id)",
        n if n.ends_with("_daily") => "cityHash64(site, day)",
        _ => return Err(RenderError::NoShardKey(table.to_owned())),
    };
    Ok(key)
}

/// Names and settings of one rendering.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    pub name: &'a str,
    pub database: &'a str,
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex"))
}

impl Cluster<'_> {
    fn on(&self, table: &str) -> String {
        format!("{}.{table} ON CLUSTER {}", self.database, self.name)
    }

    /// The Distributed table `table` over `table_local`.
    fn distributed(&self, table: &str) -> Result<String, RenderError> {
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {} AS {db}.{table}_local \
             ENGINE = Distributed({cluster}, {db}, {table}_local, {key})",
            self.on(table),
            db = self.database,
            cluster = self.name,
            key = shard_key(table)?,
        ))
    }

    /// The replicated engine for `table_local`, from the one-server engine and its arguments.
    fn replicated(&self, table: &str, engine: &str, args: &str) -> String {
        let path = format!(
            "'/clickhouse/tables/{{shard}}/{}/{table}_local', '{{replica}}'",
            self.database
        );
        let args = args.trim();
        if args.is_empty() {
            format!("Replicated{engine}({path})")
        } else {
            format!("Replicated{engine}({path}, {args})")
        }
    }

    /// Tables named in a view's query, with their database (the view is created on every
    /// node, where the default database is not ours).
    fn qualify(&self, query: &str) -> String {
        static FROM: OnceLock<Regex> = OnceLock::new();
        re(&FROM, r"\b(FROM|JOIN)\s+([a-z_][a-z0-9_]*)\b")
            .replace_all(query, |c: &regex::Captures| {
                format!("{} {}.{}", &c[1], self.database, &c[2])
            })
            .into_owned()
    }

    /// Renders one statement of a migration (placeholders already rendered) for the cluster.
    pub fn render(&self, statement: &str) -> Result<Vec<String>, RenderError> {
        static CREATE: OnceLock<Regex> = OnceLock::new();
        static CREATE_AS: OnceLock<Regex> = OnceLock::new();
        static VIEW: OnceLock<Regex> = OnceLock::new();
        static ALTER: OnceLock<Regex> = OnceLock::new();
        static DROP: OnceLock<Regex> = OnceLock::new();
        static RENAME: OnceLock<Regex> = OnceLock::new();
        let create = re(
            &CREATE,
            r"(?s)^CREATE TABLE (?:IF NOT EXISTS )?(\w+) \((.*)\)\s*ENGINE = (\w*MergeTree)(?:\(([^)]*)\))?(.*)$",
        );
        let create_as = re(
            &CREATE_AS,
            r"(?s)^CREATE TABLE (?:IF NOT EXISTS )?(\w+) AS (\w+)\s+ENGINE = (\w*MergeTree)(?:\(([^)]*)\))?(.*)$",
        );
        let view = re(
            &VIEW,
            r"(?s)^CREATE VIEW (?:IF NOT EXISTS )?(\w+) AS\s+(.*)$",
        );
        let alter = re(&ALTER, r"(?s)^ALTER TABLE (\w+) (.*)$");
        let drop = re(&DROP, r"^DROP TABLE (?:IF EXISTS )?(\w+)$");
        let rename = re(&RENAME, r"(?s)^RENAME TABLE (.*)$");

        if let Some(c) = create.captures(statement) {
            let table = &c[1];
            Ok(vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = {}{}",
                    self.on(&format!("{table}_local")),
                    &c[2],
                    self.replicated(table, &c[3], c.get(4).map_or("", |m| m.as_str())),
                    &c[5],
                ),
                self.distributed(table)?,
            ])
        } else if let Some(c) = create_as.captures(statement) {
            let table = &c[1];
            Ok(vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {} AS {}.{}_local ENGINE = {}{}",
                    self.on(&format!("{table}_local")),
                    self.database,
                    &c[2],
                    self.replicated(table, &c[3], c.get(4).map_or("", |m| m.as_str())),
                    &c[5],
                ),
                self.distributed(table)?,
            ])
        } else if let Some(c) = view.captures(statement) {
            Ok(vec![format!(
                "CREATE VIEW IF NOT EXISTS {} AS {}",
                self.on(&c[1]),
                self.qualify(&c[2])
            )])
        } else if let Some(c) = alter.captures(statement) {
            let (table, change) = (&c[1], &c[2]);
            let mut out = vec![format!(
                "ALTER TABLE {} {change}",
                self.on(&format!("{table}_local"))
            )];
            // 18.16 refuses ALTER ON CLUSTER on a Distributed table whose shards replicate;
            // it holds no rows, so it is made again with the local table's new columns.
            if change.contains(" COLUMN ") {
                out.push(format!("DROP TABLE IF EXISTS {}", self.on(table)));
                out.push(self.distributed(table)?);
            }
            Ok(out)
        } else if let Some(c) = drop.captures(statement) {
            // A view or a table: both names go, whichever exists.
            Ok(vec![
                format!("DROP TABLE IF EXISTS {}", self.on(&c[1])),
                format!(
                    "DROP TABLE IF EXISTS {}",
                    self.on(&format!("{}_local", &c[1]))
                ),
            ])
        } else if let Some(c) = rename.captures(statement) {
            let pairs: Vec<(&str, &str)> = c[1]
                .split(',')
                .map(|pair| {
                    let mut names = pair.split(" TO ").map(str::trim);
                    match (names.next(), names.next(), names.next()) {
                        (Some(from), Some(to), None) => Ok((from, to)),
                        _ => Err(RenderError::Unsupported(statement.to_owned())),
                    }
                })
                .collect::<Result<_, _>>()?;
            let locals: Vec<String> = pairs
                .iter()
                .map(|(from, to)| {
                    format!("{db}.{from}_local TO {db}.{to}_local", db = self.database)
                })
                .collect();
            let mut out = vec![format!(
                "RENAME TABLE {} ON CLUSTER {}",
                locals.join(", "),
                self.name
            )];
            // The Distributed tables name their local table: each new name gets its own,
            // in the order of the pairs (`a TO a_old, b TO a` frees `a` before making it).
            for (from, to) in pairs {
                out.push(format!("DROP TABLE IF EXISTS {}", self.on(from)));
                out.push(self.distributed(to)?);
            }
            Ok(out)
        } else if statement.starts_with("INSERT INTO ") {
            // Through the Distributed tables, in the client's database: rows land on the
            // shard their key picks.
            Ok(vec![statement.to_owned()])
        } else {
            Err(RenderError::Unsupported(
                statement.lines().next().unwrap_or_default().to_owned(),
            ))
        }
    }

    /// The migration ledger: one replicated table on every node (a path without `{shard}`),
    /// so any node knows what was applied, and in which mode.
    pub fn ledger(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} \
             (version UInt32, name String, applied_at DateTime, cluster String) \
             ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{}/schema_migrations', '{{replica}}') \
             ORDER BY version",
            self.on("schema_migrations"),
            self.database
        )
    }

    /// `system.parts` and `system.mutations` of one replica per shard: what the retention
    /// task and site deletion look at, since a node's own tables hold only its shard.
    pub fn system_views(&self) -> Vec<String> {
        ["parts", "mutations"]
            .iter()
            .map(|t| {
                format!(
                    "CREATE TABLE IF NOT EXISTS {} AS system.{t} \
                     ENGINE = Distributed({}, system, {t})",
                    self.on(&format!("cluster_{t}")),
                    self.name
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Cluster = Cluster {
        name: "c1",
        database: "db",
    };

    #[test]
    fn a_table_becomes_a_replicated_local_table_and_a_distributed_one() {
        let out = C
            .render(
                "CREATE TABLE IF NOT EXISTS sessions (\n    site String,\n    visitor_id String,\n    \
                 tags Array(String) DEFAULT []\n) ENGINE = ReplacingMergeTree(version)\nPARTITION BY day\nORDER BY (site, day)",
            )
            .unwrap();
        assert_eq!(out.len(), 2);
        assert!(
            out[0].starts_with(
                "CREATE TABLE IF NOT EXISTS db.sessions_local ON CLUSTER c1 (\n    site String"
            ),
            "{}",
            out[0]
        );
        assert!(
            out[0].contains("tags Array(String) DEFAULT []\n)"),
            "{}",
            out[0]
        );
        assert!(out[0].contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/sessions_local', '{replica}', version)\nPARTITION BY day\nORDER BY (site, day)"
        ), "{}", out[0]);
        assert_eq!(
            out[1],
            "CREATE TABLE IF NOT EXISTS db.sessions ON CLUSTER c1 AS db.sessions_local \
             ENGINE = Distributed(c1, db, sessions_local, cityHash64(visitor_id))"
        );
    }

    #[test]
    fn a_twin_copies_the_local_table_and_shards_as_its_final_name() {
        let out = C
            .render("CREATE TABLE form_daily_by_month AS form_daily\nENGINE = ReplacingMergeTree(version)\nPARTITION BY toYYYYMM(day)\nORDER BY (site, form_key, day)")
            .unwrap();
        assert!(out[0].starts_with(
            "CREATE TABLE IF NOT EXISTS db.form_daily_by_month_local ON CLUSTER c1 AS db.form_daily_local ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/form_daily_by_month_local', '{replica}', version)"
        ), "{}", out[0]);
        assert!(out[1]
            .ends_with("Distributed(c1, db, form_daily_by_month_local, cityHash64(site, day))"));
    }

    #[test]
    fn renames_move_local_tables_and_remake_the_distributed_ones_in_order() {
        let out = C
            .render("RENAME TABLE events TO events_by_event, events_by_visitor TO events")
            .unwrap();
        assert_eq!(
            out,
            vec![
                "RENAME TABLE db.events_local TO db.events_by_event_local, db.events_by_visitor_local TO db.events_local ON CLUSTER c1".to_owned(),
                "DROP TABLE IF EXISTS db.events ON CLUSTER c1".to_owned(),
                "CREATE TABLE IF NOT EXISTS db.events_by_event ON CLUSTER c1 AS db.events_by_event_local ENGINE = Distributed(c1, db, events_by_event_local, cityHash64(visitor_id))".to_owned(),
                "DROP TABLE IF EXISTS db.events_by_visitor ON CLUSTER c1".to_owned(),
                "CREATE TABLE IF NOT EXISTS db.events ON CLUSTER c1 AS db.events_local ENGINE = Distributed(c1, db, events_local, cityHash64(visitor_id))".to_owned(),
            ]
        );
    }

    #[test]
    fn a_new_column_goes_to_the_local_table_and_the_distributed_one_is_remade() {
        let out = C
            .render("ALTER TABLE events ADD COLUMN IF NOT EXISTS field_order Int32 DEFAULT -1 AFTER field_key")
            .unwrap();
        assert_eq!(out[0], "ALTER TABLE db.events_local ON CLUSTER c1 ADD COLUMN IF NOT EXISTS field_order Int32 DEFAULT -1 AFTER field_key");
        assert_eq!(out[1], "DROP TABLE IF EXISTS db.events ON CLUSTER c1");
        assert!(out[2]
            .starts_with("CREATE TABLE IF NOT EXISTS db.events ON CLUSTER c1 AS db.events_local"));
        // Not a column: no Distributed table to remake.
        assert_eq!(
            C.render("ALTER TABLE sessions REMOVE TTL").unwrap(),
            vec!["ALTER TABLE db.sessions_local ON CLUSTER c1 REMOVE TTL".to_owned()]
        );
    }

    #[test]
    fn views_name_their_tables_with_the_database() {
        let out = C
            .render("CREATE VIEW IF NOT EXISTS v_x AS\nSELECT a FROM form_daily FINAL\nLEFT JOIN (SELECT b FROM conversions_daily) USING a")
            .unwrap();
        assert_eq!(
            out,
            vec!["CREATE VIEW IF NOT EXISTS db.v_x ON CLUSTER c1 AS SELECT a FROM db.form_daily FINAL\nLEFT JOIN (SELECT b FROM db.conversions_daily) USING a".to_owned()]
        );
    }

    #[test]
    fn drops_remove_both_names_and_unknown_statements_are_refused() {
        assert_eq!(
            C.render("DROP TABLE form_daily_by_day").unwrap(),
            vec![
                "DROP TABLE IF EXISTS db.form_daily_by_day ON CLUSTER c1".to_owned(),
                "DROP TABLE IF EXISTS db.form_daily_by_day_local ON CLUSTER c1".to_owned(),
            ]
        );
        assert!(matches!(
            C.render("OPTIMIZE TABLE events FINAL"),
            Err(RenderError::Unsupported(_))
        ));
        assert_eq!(
            C.render("CREATE TABLE mystery (a String) ENGINE = ReplacingMergeTree(v) ORDER BY a"),
            Err(RenderError::NoShardKey("mystery".to_owned()))
        );
    }

    #[test]
    fn every_sharding_key_uses_only_what_every_version_of_a_row_shares() {
        // The key's columns are in the table's ORDER BY (what ReplacingMergeTree merges on),
        // or, for sessions, the visitor the session id belongs to.
        for (table, columns) in [
            ("events", &["visitor_id"][..]),
            ("sessions", &["visitor_id"]),
            ("form_sessions", &["session_id"]),
            ("click_bins", &["session_id"]),
            ("heatmap_daily", &["site", "day"]),
            ("field_segment_daily", &["site", "day"]),
            ("deleted_sites", &["site"]),
        ] {
            let key = shard_key(table).unwrap();
            for column in columns {
                assert!(key.contains(column), "{table}: {key}");
            }
        }
    }
}
