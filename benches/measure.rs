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

/// The unit a spread of times (measured in seconds) is printed in.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Seconds to two places: freshness through the chain.
    Seconds,
    /// Milliseconds to one place: an HTTP answer.
    Millis,
}

/// p50, p99 and max of times in seconds, as the programs print them; `counted` names what
/// each time is of.
pub fn percentiles(mut xs: Vec<f64>, unit: Unit, counted: &str) -> String {
    if xs.is_empty() {
        return "none arrived".into();
    }
    xs.sort_by(f64::total_cmp);
    let (scale, places, symbol) = match unit {
        Unit::Seconds => (1.0, 2, "s"),
        Unit::Millis => (1e3, 1, "ms"),
    };
    format!(
        "p50 {:.places$} {symbol}, p99 {:.places$} {symbol}, max {:.places$} {symbol} ({} {counted})",
        quantile(&xs, 0.5) * scale,
        quantile(&xs, 0.99) * scale,
        xs[xs.len() - 1] * scale,
        xs.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_print_in_the_unit_asked_nearest_rank() {
        let times: Vec<f64> = (1..=100).rev().map(|i| f64::from(i) / 1000.0).collect();
        assert_eq!(
            percentiles(times.clone(), Unit::Millis, "batches"),
            "p50 50.0 ms, p99 99.0 ms, max 100.0 ms (100 batches)"
        );
        assert_eq!(
            percentiles(times, Unit::Seconds, "followed"),
            "p50 0.05 s, p99 0.10 s, max 0.10 s (100 followed)"
        );
        assert_eq!(
            percentiles(Vec::new(), Unit::Seconds, "followed"),
            "none arrived"
        );
    }
}
