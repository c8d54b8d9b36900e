//! What the load programs share: ClickHouse over HTTP and quantiles of what they timed.

use anyhow::bail;

/// A ClickHouse query over HTTP, TSV out.
pub async fn query(http: &reqwest::Client, clickhouse: &str, sql: &str) -> anyhow::Result<String> {
    let response = http
        .post(clickhouse)
        .body(format!("{sql} FORMAT TSV"))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("ClickHouse: {status} {text}");
    }
    Ok(text)
}

/// The `p` quantile (0–1] of `sorted`, nearest rank.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// p50, p99 and max of seconds, as the programs print them.
pub fn percentiles(mut xs: Vec<f64>) -> String {
    if xs.is_empty() {
        return "none arrived".into();
    }
    xs.sort_by(f64::total_cmp);
    format!(
        "p50 {:.2} s, p99 {:.2} s, max {:.2} s ({} followed)",
        quantile(&xs, 0.5),
        quantile(&xs, 0.99),
        xs[xs.len() - 1],
        xs.len()
    )
}
