//! uap-core's own test files against the classifier: how often the browser family, its
//! major version and the OS family agree with what uap-core's authors wrote down, and how
//! the bot flag compares with uap-core's `Spider` devices.
//!
//! The files come with uap-core, which the `uaparser` crate's source ships whole (rules and
//! tests); cargo has already fetched it to build this crate, and `cargo metadata` says where.
//! `cargo metadata` resolves the whole lock file, packages of other platforms included, which
//! a Linux build never downloads: it runs online (not `--offline`), so a machine that has
//! only ever built the project fetches the few it lacks instead of failing.
//! Run `cargo test --release -p exatom-anonymizer --test uap_core -- --include-ignored
//! --nocapture` to see the rates recorded in BENCHMARKS.md.

use std::path::PathBuf;
use std::process::Command;

use exatom_anonymizer::device::{Classifier, BOT};
use serde::Deserialize;

#[derive(Deserialize)]
struct Cases<T> {
    test_cases: Vec<T>,
}

#[derive(Deserialize)]
struct Expected {
    user_agent_string: String,
    family: String,
    major: Option<String>,
}

/// uap-core as shipped in the `uaparser` crate's source.
fn uap_core() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "uaparser")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("uaparser is a dependency");
    PathBuf::from(manifest)
        .parent()
        .unwrap()
        .join("src")
        .join("core")
}

fn cases(file: &str) -> Vec<Expected> {
    let path = uap_core().join("tests").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str::<Cases<Expected>>(&text)
        .unwrap()
        .test_cases
}

/// Share of cases for which `agrees` holds, in percent.
fn rate(cases: &[Expected], mut agrees: impl FnMut(&Expected) -> bool) -> f64 {
    let passed = cases.iter().filter(|c| agrees(c)).count();
    100.0 * passed as f64 / cases.len() as f64
}

#[test]
fn the_rules_compiled_in_are_the_ones_the_tests_were_written_for() {
    let shipped = std::fs::read(uap_core().join("regexes.yaml")).unwrap();
    let vendored = include_bytes!("../uap/regexes.yaml");
    assert!(
        shipped == vendored,
        "uap/regexes.yaml differs from the uap-core the tests come from"
    );
}

/// The rates over uap-core's test files, every `device_step`-th non-`Spider` device case.
fn conformance(device_step: usize) -> [f64; 5] {
    let classifier = Classifier::new(1);
    let browsers = cases("test_ua.yaml");
    let family = rate(&browsers, |c| {
        classifier.parse(&c.user_agent_string).browser_family == c.family
    });
    let major = rate(&browsers, |c| {
        let parsed = classifier.parse(&c.user_agent_string);
        parsed.browser_family == c.family
            && parsed.browser_major == c.major.clone().unwrap_or_default()
    });
    let systems = cases("test_os.yaml");
    let os = rate(&systems, |c| {
        classifier.parse(&c.user_agent_string).os_family == c.family
    });
    let (spiders, others): (Vec<_>, Vec<_>) = cases("test_device.yaml")
        .into_iter()
        .partition(|c| c.family == "Spider");
    let others: Vec<_> = others.into_iter().step_by(device_step).collect();
    let bot = |c: &Expected| classifier.parse(&c.user_agent_string).device_class == BOT;
    let bots_found = rate(&spiders, bot);
    let false_bots = rate(&others, bot);
    println!(
        "uap-core tests: browser family {family:.2}% and family+major {major:.2}% of {} cases; \
         OS family {os:.2}% of {}; bot flag on {bots_found:.2}% of {} Spider devices and on \
         {false_bots:.2}% of {} others",
        browsers.len(),
        systems.len(),
        spiders.len(),
        others.len()
    );
    [family, major, os, bots_found, false_bots]
}

/// Floors just under the rates measured (see BENCHMARKS.md): a change to the rules or to
/// the classifier that loses accuracy fails here.
fn assert_floors([family, major, os, bots_found, false_bots]: [f64; 5]) {
    assert!(family >= 99.0, "browser family {family:.2}%");
    assert!(major >= 98.0, "browser family and major {major:.2}%");
    assert!(os >= 99.0, "OS family {os:.2}%");
    assert!(bots_found >= 95.0, "bots found {bots_found:.2}%");
    assert!(false_bots <= 2.0, "non-bots flagged {false_bots:.2}%");
}

/// Every browser and OS case, every Spider, one in eight other devices: a cold parse costs
/// about 2 ms, and all 16 000 device cases take half a minute.
#[test]
fn uap_core_test_files_pass() {
    assert_floors(conformance(8));
}

/// All of test_device.yaml, for the figures in BENCHMARKS.md: `--ignored`.
#[test]
#[ignore]
fn uap_core_test_files_pass_in_full() {
    assert_floors(conformance(1));
}
