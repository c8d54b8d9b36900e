//! `exatom-console`: see the crate docs. `exatom-console hash-password` reads a password
//! on standard input and prints its Argon2id hash for the site registry;
//! `exatom-console grant-sites FILE` gives every registered site its ClickHouse user.

use std::io::Read;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("hash-password") {
        let mut password = String::new();
        std::io::stdin().read_to_string(&mut password)?;
        let password = password.trim_end_matches(['\n', '\r']);
        anyhow::ensure!(!password.is_empty(), "no password on standard input");
        println!("{}", exatom_console::access::hash_password(password));
        return Ok(());
    }
    exatom_plumbing::telemetry::init_logging();
    let config: exatom_console::config::ConsoleConfig = exatom_core::config::load()?;
    if std::env::args().nth(1).as_deref() == Some("grant-sites") {
        let Some(file) = std::env::args().nth(2) else {
            anyhow::bail!("usage: exatom-console grant-sites USERS_D_FILE");
        };
        return exatom_console::grant_sites(config, std::path::Path::new(&file)).await;
    }
    exatom_console::run(config).await
}
