//! The console as a real process for a test: a registry of its own (sites and users), its
//! key, the site users granted on the test ClickHouse, and a client that logs in.

use std::path::PathBuf;
use std::time::Duration;

use crate::{wait_until, Service, Stack};

/// A console started for one test, with `site_users` on.
pub struct Console {
    pub url: String,
    pub key_file: PathBuf,
    pub sites_file: PathBuf,
    pub service: Service,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A console user: name, password, sites (empty with `admin`), API token.
#[derive(Debug, Clone)]
pub struct ConsoleUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub sites: &'a [&'a str],
    pub admin: bool,
    pub token: Option<&'a str>,
}

impl Console {
    /// Writes `registry` (a site registry's `[sites.*]` part) with `users` added, grants
    /// the sites their ClickHouse users, and starts the console on a free port.
    pub async fn start(
        stack: &Stack,
        name: &str,
        registry: &str,
        users: &[ConsoleUser<'_>],
        env: &[(&str, String)],
    ) -> Self {
        use sha2::Digest;
        let mut text = registry.to_owned();
        for user in users {
            text.push_str(&format!(
                "\n[users.{}]\npassword_hash = '{}'\nsites = {:?}\nadmin = {}\ntoken_sha256 = {:?}\n",
                user.name,
                exatom_console::access::hash_password(user.password),
                user.sites,
                user.admin,
                user.token
                    .map(|t| vec![hex::encode(sha2::Sha256::digest(t.as_bytes()))])
                    .unwrap_or_default(),
            ));
        }
        let sites_file = stack.state.join(format!("sites-console-{name}.toml"));
        std::fs::write(&sites_file, text).unwrap();
        let key_file = stack.state.join(format!("console-{name}.key"));
        let key: [u8; 32] = rand::random();
        std::fs::write(&key_file, hex::encode(key)).unwrap();
        let grant = std::process::Command::new(stack.bin.join("exatom-console"))
            .arg("grant-sites")
            .arg(
                stack
                    .state
                    .join("clickhouse/users.d/exatom-console-sites.xml"),
            )
            .env("EXATOM_CLICKHOUSE_URL", &stack.clickhouse_url)
            .env("EXATOM_SITES_FILE", &sites_file)
            .env("EXATOM_CONSOLE_SESSION_KEY_FILE", &key_file)
            .output()
            .expect("exatom-console grant-sites runs");
        assert!(
            grant.status.success(),
            "grant-sites: {}",
            String::from_utf8_lossy(&grant.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut all: Vec<(&str, String)> = vec![
            ("EXATOM_CONSOLE_LISTEN", format!("127.0.0.1:{port}")),
            ("EXATOM_SITES_FILE", sites_file.display().to_string()),
            (
                "EXATOM_CONSOLE_SESSION_KEY_FILE",
                key_file.display().to_string(),
            ),
            ("EXATOM_CONSOLE_SITE_USERS", "true".to_owned()),
        ];
        all.extend(env.iter().cloned());
        let service = Service::start(stack, "console", &all);
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/readyz");
        wait_until(Duration::from_secs(30), "console ready", || async {
            reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        Console {
            url,
            key_file,
            sites_file,
            service,
        }
    }

    /// A client that follows no redirects (the tests look at each answer).
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Posts the log-in form; returns the answer.
    pub async fn log_in(&self, user: &str, password: &str) -> reqwest::Response {
        Self::client()
            .post(format!("{}/login", self.url))
            .form(&[("user", user), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the session cookie (`name=value`).
    pub async fn cookie(&self, user: &str, password: &str) -> String {
        let answer = self.log_in(user, password).await;
        assert_eq!(answer.status(), 303, "log-in of {user}");
        let set = answer
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap();
        set.split(';').next().unwrap().to_owned()
    }

    /// GET `path` with `cookie`: status and body.
    pub async fn get(&self, path: &str, cookie: &str) -> (u16, String) {
        let answer = Self::client()
            .get(format!("{}{path}", self.url))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    }

    /// The key the console derives its site users' passwords from.
    pub fn key(&self) -> exatom_console::session::SessionKey {
        exatom_console::session::SessionKey::from_hex(
            &std::fs::read_to_string(&self.key_file).unwrap(),
        )
        .unwrap()
    }
}

/// `v_field_daily`'s rows of one form today, with the columns of the console's field table,
/// as ClickHouse writes CSV: what its download must hold (the console orders the rows by the
/// page, which the view does not know: compare with [`assert_same_rows`]).
pub async fn field_csv_of_the_view(stack: &Stack, site: &str, form: &str) -> String {
    reqwest::Client::new()
        .post(&stack.clickhouse_url)
        .body(format!(
            "SELECT field, interactions, abandons, avg_time_spent_ms, median_hesitation_ms, returns, corrections, errors \
             FROM exatom.v_field_daily WHERE site = '{site}' AND form = '{form}' AND day = today() \
             ORDER BY interactions DESC, field FORMAT CSVWithNames"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Two CSV texts with the same header and the same rows, in any order (quotes aside).
pub fn assert_same_rows(csv: &str, expected: &str) {
    let rows = |text: &str| {
        let text = text.replace('"', "");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let header = if lines.is_empty() {
            String::new()
        } else {
            lines.remove(0)
        };
        lines.sort();
        (header, lines)
    };
    assert_eq!(rows(csv), rows(expected), "{csv}\n---\n{expected}");
}
