//! The second lock on each site's figures, in ClickHouse itself. Site S has a database
//! `exatom_console_S` whose Distributed tables forward every query to a reader that sees
//! only views filtered to S (`sql/site_access.sql`). Each console user U reads as
//! ClickHouse user `exatom_console_user_U`, who may open only the databases of the sites U
//! holds. A console bug that let U ask for another site, or that asked for another site's
//! rows, gets an access error or nothing. The packaged ClickHouse (18.16) has no row
//! policies; on a modern server the same holds, and a row policy per user would do it too
//! (README, "Console").
//!
//! `exatom-console grant-sites FILE` makes the databases of every registered site afresh
//! (definitions only, so they follow the migrations), drops those of sites no longer
//! registered, writes the users to FILE (a `users.d` file of the
//! server) and waits until the server has loaded them. A user's ClickHouse password is
//! derived from the console's key, so the console needs no list of them.

use std::path::Path;
use std::time::Duration;

use exatom_edge::sites::Registry;
use exatom_plumbing::warehouse::Warehouse;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::session::SessionKey;

const SITE_ACCESS: &str = include_str!("sql/site_access.sql");

// Every name starts with the pipeline's database, so that two pipelines on one server (the
// local stack and the query pack's bench) keep apart.

/// The database through which the console reads `site`.
pub fn site_database(database: &str, site: &str) -> String {
    format!("{database}_console_{site}")
}

/// The database of `site`'s filtered views, which only the reader may open.
fn filtered_database(database: &str, site: &str) -> String {
    format!("{database}_site_{site}")
}

/// The ClickHouse user as whom console user `name` reads.
pub fn reader_user(database: &str, name: &str) -> String {
    format!("{database}_console_user_{name}")
}

/// That user's password: HMAC of the name under the console's key.
pub fn reader_password(key: &SessionKey, name: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"clickhouse-console-user\0");
    mac.update(name.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The statements that give `site` its two databases.
pub fn site_statements(site: &str, database: &str) -> Result<Vec<String>, String> {
    if !exatom_edge::batch::valid_site_code(site) {
        return Err(format!("site code `{site}` is not [A-Za-z0-9_-]{{2,32}}"));
    }
    if !database
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || database.is_empty()
    {
        return Err(format!("database name `{database}` is not [A-Za-z0-9_]+"));
    }
    Ok(SITE_ACCESS
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("SITE", site).replace("PIPELINE", database))
        .collect())
}

/// The `users.d` file with one ClickHouse user per console user, each allowed the
/// databases of the registered sites it holds (an admin: all of them).
pub fn users_xml(registry: &Registry, database: &str, key: &SessionKey) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\"?>\n<!-- Written by `exatom-console grant-sites`: one user per console user. -->\n<yandex>\n    <users>\n",
    );
    let mut names: Vec<&String> = registry.users.keys().collect();
    names.sort();
    for name in names {
        let user = &registry.users[name];
        let ch_user = reader_user(database, name);
        let digest = hex::encode(Sha256::digest(reader_password(key, name).as_bytes()));
        let mut held: Vec<String> = registry
            .sites
            .keys()
            .filter(|s| user.holds(s))
            .map(|s| site_database(database, s))
            .collect();
        held.sort();
        if held.is_empty() {
            // Never empty: ClickHouse reads an empty list as "every database".
            held.push(format!("{database}_console_none"));
        }
        let databases: String = held
            .iter()
            .map(|d| format!("<database>{d}</database>"))
            .collect();
        out.push_str(&format!(
            "        <{ch_user}>\n            <password_sha256_hex>{digest}</password_sha256_hex>\n            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\n            <profile>exatom_console</profile>\n            <quota>default</quota>\n            <allow_databases>{databases}</allow_databases>\n        </{ch_user}>\n"
        ));
    }
    out.push_str("    </users>\n</yandex>\n");
    out
}

/// Makes every registered site's databases and users; drops those of other sites.
pub async fn grant_sites(
    warehouse: &Warehouse,
    registry: &Registry,
    key: &SessionKey,
    users_file: &Path,
) -> anyhow::Result<()> {
    let mut sites: Vec<&str> = registry.sites.keys().map(String::as_str).collect();
    sites.sort_unstable();
    let fail = |what: String| move |e: clickhouse::error::Error| anyhow::anyhow!("{what}: {e}");
    for site in &sites {
        // Rebuilt each time (they hold no data, only definitions): a Distributed table keeps
        // the columns its table had when it was made, and migrations add columns.
        for name in [
            site_database(&warehouse.database, site),
            filtered_database(&warehouse.database, site),
        ] {
            warehouse
                .client
                .query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                .execute()
                .await
                .map_err(fail(format!("dropping {name}")))?;
        }
        for statement in site_statements(site, &warehouse.database).map_err(anyhow::Error::msg)? {
            warehouse
                .client
                .query(&statement)
                .execute()
                .await
                .map_err(fail(format!("site {site}: {statement}")))?;
        }
    }
    let database = warehouse.database.as_str();
    let (console_prefix, site_prefix) =
        (site_database(database, ""), filtered_database(database, ""));
    let existing: Vec<String> = warehouse
        .client
        .query("SELECT name FROM system.databases WHERE startsWith(name, ?) OR startsWith(name, ?)")
        .bind(&console_prefix)
        .bind(&site_prefix)
        .fetch_all()
        .await
        .map_err(fail("listing the console's databases".into()))?;
    for name in existing {
        let site = name
            .strip_prefix(site_prefix.as_str())
            .or_else(|| name.strip_prefix(console_prefix.as_str()))
            .unwrap_or_default();
        if !sites.contains(&site) {
            warehouse
                .client
                .query(&format!(
                    "DROP DATABASE IF EXISTS `{}`",
                    name.replace('`', "")
                ))
                .execute()
                .await
                .map_err(fail(format!("dropping {name}")))?;
            tracing::info!(database = %name, "dropped: its site is no longer registered");
        }
    }
    let partial = users_file.with_extension("xml.part");
    std::fs::write(&partial, users_xml(registry, database, key))
        .and_then(|()| std::fs::rename(&partial, users_file))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", users_file.display()))?;
    // The server reads users.d again within seconds; until then new users are unknown.
    for (name, user) in &registry.users {
        let Some(site) = sites.iter().find(|s| user.holds(s)) else {
            continue;
        };
        let client = warehouse
            .read_only
            .clone()
            .with_user(reader_user(database, name))
            .with_password(reader_password(key, name))
            .with_database(site_database(database, site));
        let mut last = String::new();
        let loaded = 'wait: {
            for _ in 0..60 {
                match client
                    .query("SELECT count() FROM form_daily")
                    .fetch_one::<u64>()
                    .await
                {
                    Ok(_) => break 'wait true,
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            false
        };
        anyhow::ensure!(
            loaded,
            "ClickHouse has not loaded user {} from {} within 30 s: {last}",
            reader_user(database, name),
            users_file.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_its_own_password_under_each_key() {
        let key = SessionKey::random();
        assert_ne!(reader_password(&key, "ann"), reader_password(&key, "bob"));
        assert_eq!(reader_password(&key, "ann"), reader_password(&key, "ann"));
        assert_ne!(
            reader_password(&key, "ann"),
            reader_password(&SessionKey::random(), "ann")
        );
    }

    #[test]
    fn statements_name_only_the_site_and_the_database() {
        let statements = site_statements("my-shop", "exatom").unwrap();
        let other = site_statements("my-shop", "exatom_bench").unwrap();
        assert!(
            other[0].contains("`exatom_bench_site_my-shop`"),
            "{}",
            other[0]
        );
        assert_eq!(statements.len(), 30);
        assert!(statements
            .iter()
            .all(|s| !s.contains("SITE") && !s.contains("PIPELINE")));
        assert!(statements[1].contains("FROM `exatom`.form_daily WHERE site = 'my-shop'"));
        assert!(
            statements
                .iter()
                .filter(|s| s.contains("Distributed(exatom_console, 'exatom_site_my-shop'"))
                .count()
                == 14
        );
        // Every table the behaviour and replay pages read, filtered and forwarded.
        for table in [
            "heatmap_daily",
            "scroll_daily",
            "errors_daily",
            "session_errors",
            "replay_batches",
        ] {
            assert!(statements.iter().any(|s| s.contains(&format!(
                "`exatom_site_my-shop`.{table} AS SELECT * FROM `exatom`.{table} WHERE site = 'my-shop'"
            ))));
            assert!(statements.iter().any(|s| s.contains(&format!(
                "`exatom_console_my-shop`.{table} AS `exatom`.{table} ENGINE = Distributed(exatom_console, 'exatom_site_my-shop', '{table}')"
            ))));
        }
        assert!(site_statements("x' OR 1", "exatom").is_err());
        assert!(site_statements("SHOP", "exatom`; DROP").is_err());
    }

    #[test]
    fn each_user_may_open_the_databases_of_the_sites_it_holds_and_no_other() {
        let key = SessionKey::random();
        let registry = Registry::parse(
            "[sites.A1]\n[sites.B1]\n[users.ann]\nsites = ['A1']\n[users.root]\nadmin = true\n[users.idle]\n",
        )
        .unwrap();
        let xml = users_xml(&registry, "exatom", &key);
        let databases = |user: &str| {
            let start = xml.find(&format!("<{user}>")).unwrap();
            let end = xml[start..].find("</allow_databases>").unwrap();
            xml[start..start + end]
                .split("<allow_databases>")
                .nth(1)
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            databases("exatom_console_user_ann"),
            "<database>exatom_console_A1</database>"
        );
        assert_eq!(
            databases("exatom_console_user_root"),
            "<database>exatom_console_A1</database><database>exatom_console_B1</database>"
        );
        assert_eq!(
            databases("exatom_console_user_idle"),
            "<database>exatom_console_none</database>"
        );
        assert!(xml.contains("<profile>exatom_console</profile>"));
        assert!(!xml.contains(&reader_password(&key, "ann")));
        assert_eq!(xml.matches("<password_sha256_hex>").count(), 3);
    }
}
