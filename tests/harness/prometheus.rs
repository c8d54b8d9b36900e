//! The test stack's Prometheus (started by `make integration` with the rules of
//! `deploy/prometheus`, scraping and evaluating every second): which services it scrapes,
//! and what its query, rules and alerts APIs answer.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::{Pipeline, Stack};

#[derive(Debug, Clone)]
pub struct Prometheus {
    pub url: String,
    targets: PathBuf,
}

impl Prometheus {
    pub fn from_env(stack: &Stack) -> Self {
        Prometheus {
            url: std::env::var("STACK_PROMETHEUS_URL").expect(
                "STACK_PROMETHEUS_URL is not set: run the integration tests with `make integration`",
            ),
            targets: stack.state.join("prometheus/targets/tests.json"),
        }
    }

    /// Scrapes `pipeline`'s four services from now on, each under its job (`exatom-<name>`),
    /// instead of those of an earlier test. File discovery notices the file by itself.
    pub fn scrape(&self, pipeline: &Pipeline) {
        let mut groups = vec![json!({
            "targets": [format!("127.0.0.1:{}", pipeline.collector_port())],
            "labels": {"job": "exatom-collector"},
        })];
        for (name, port) in &pipeline.admin_ports {
            groups.push(json!({
                "targets": [format!("127.0.0.1:{port}")],
                "labels": {"job": format!("exatom-{name}")},
            }));
        }
        std::fs::create_dir_all(self.targets.parent().unwrap()).unwrap();
        // Written whole, then renamed: Prometheus never reads half a file.
        let partial = self.targets.with_extension("part");
        std::fs::write(&partial, Value::Array(groups).to_string()).unwrap();
        std::fs::rename(&partial, &self.targets).unwrap();
    }

    /// Scrapes nothing of the tests any more.
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.targets);
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(body.to_string());
        }
        Ok(body["data"].clone())
    }

    /// The series an instant query returns now (`Err` when Prometheus refuses the query).
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of the first series an instant query returns.
    pub async fn value(&self, expr: &str) -> Option<f64> {
        let series = self.query(expr).await.ok()?;
        series.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Every rule Prometheus loaded, recording and alerting, with its health.
    pub async fn rules(&self) -> Vec<Value> {
        let data = self.get("/api/v1/rules", &[]).await.expect("rules API");
        data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Alerts pending or firing now.
    pub async fn alerts(&self) -> Vec<Value> {
        self.get("/api/v1/alerts", &[])
            .await
            .map(|d| d["alerts"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}
