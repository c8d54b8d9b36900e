//! The aggregator's writes to ClickHouse. Idempotent: every table is a ReplacingMergeTree
//! keyed by session (and form, field or event), and the views read it `FINAL`.

use exatom_shared::warehouse::Warehouse;

use crate::encoder::Rows;

pub struct Writer {
    pub warehouse: Warehouse,
}

impl Writer {
    /// Writes every table; any failure is returned for the caller to retry the whole set
    /// (rewriting a table twice is harmless).
    pub async fn write(&self, rows: &Rows) -> Result<(), clickhouse::error::Error> {
        self.warehouse
            .insert_rows("form_sessions", &rows.forms)
            .await?;
        self.warehouse
            .insert_rows("field_interactions", &rows.fields)
            .await?;
        self.warehouse
            .insert_rows("conversions", &rows.conversions)
            .await?;
        self.warehouse
            .insert_rows("tooltip_events", &rows.tooltips)
            .await?;
        Ok(())
    }
}
